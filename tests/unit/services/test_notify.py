"""notify's use cases through in-memory fakes of its ports: a lifecycle event becomes the
deliveries it calls for, each once however often the event arrives; the tick starts as many as
there are free slots; operators' counts and the parked list."""

from __future__ import annotations

import copy

import pytest
from marshmallow import ValidationError

from onegrid.app.notify import Notify
from onegrid.domain import notify as nd
from onegrid.domain.notify import lease_of, names_of
from tests.lifecycle import T0, Story, as_event
from tests.unit.helpers import QINLING, registry

TENANT = registry().tenants[QINLING]
GRID = "410102-001-003-002"
CITIZEN = {"kind": "citizen", "id": "12345-0001", "phone": "13800138000"}
NOW = T0.timestamp()


def _config() -> nd.Config:
    doc = copy.deepcopy(TENANT.source)
    for channel in ("email", "sms"):
        doc["notify"]["channels"][channel]["enabled"] = True
    return nd.parse_config(doc)


class FakeOutbox:
    """Notifications by idempotency key, due times, leases, parked ones and the counts."""

    def __init__(self):
        self.records, self.due, self.claims, self.parked_keys = {}, {}, [], []

    def enqueue(self, n, now):
        if n.key in self.records:
            return False
        self.records[n.key], self.due[n.key] = n, now
        return True

    def claim(self, now, lease, limit):
        self.claims.append((now, lease, limit))
        keys = sorted(k for k, at in self.due.items() if at <= now)[: max(0, limit)]
        for k in keys:
            self.due[k] = now + lease
        return keys

    def pending(self):
        return len(self.due)

    def stats(self):
        return {"enqueued": len(self.records)}

    def parked(self, limit=1000):
        return [{"id": k} for k in self.parked_keys[:limit]]


class FakeDeliveries:
    def __init__(self, slots):
        self.slots, self.started = slots, []

    def free(self):
        return self.slots - len(self.started)

    def start(self, key):
        self.started.append(key)


class Clock:
    def __init__(self):
        self.t = NOW

    def now(self):
        return self.t

    def now_iso(self):
        return "2026-11-10T01:00:00.000Z"


@pytest.fixture
def notify():
    cfg = _config()
    return Notify(TENANT, cfg, names_of(TENANT, registry()), FakeOutbox(), FakeDeliveries(3), lease_of(cfg), Clock())


def _sent(notify):
    return [(n.kind, n.channel, n.recipient.id, n.address) for n in notify.outbox.records.values()]


def test_a_registered_case_is_a_receipt_to_the_reporter_once(notify):
    event = as_event(Story("c-1", grid=GRID, reporter=CITIZEN).registered())
    assert notify.on_event(event) == 2
    assert _sent(notify) == [
        ("receipt", "sms", "12345-0001", "13800138000"),
        ("receipt", "webhook", "12345-0001", "reporter:12345-0001"),
    ]
    [sms, _] = notify.outbox.records.values()
    assert sms.text.startswith("【郑州市中原区秦岭路街道】您反映的“楼道堆放杂物影响通行”已受理，编号 c-1。")
    assert set(notify.outbox.due.values()) == {NOW}  # due at once
    assert notify.on_event(event) == 0  # redelivered: nothing new
    assert len(notify.outbox.records) == 2


def test_a_dispatch_goes_to_each_department_and_a_supervision_to_them_and_their_leaders(notify):
    story = Story("c-2", grid=GRID, reporter=CITIZEN)
    story.registered()
    notify.on_event(as_event(story.dispatched("urban_management", "water", level="community")))
    assert _sent(notify) == [
        ("dispatch", "webhook", "urban_management", "department:urban_management"),
        ("dispatch", "email", "urban_management", "urban_management@qinling.zhongyuan.example.gov.cn"),
        ("dispatch", "webhook", "water", "department:water"),
        ("dispatch", "email", "water", "water@qinling.zhongyuan.example.gov.cn"),
    ]
    notify.outbox.records.clear()
    assert notify.on_event(as_event(story.supervised(department="water"))) == 4
    assert _sent(notify) == [
        ("overdue", "webhook", "water", "department:water"),
        ("overdue", "email", "water", "water@qinling.zhongyuan.example.gov.cn"),
        ("overdue_leader", "email", "water:leader", "water.leader@qinling.zhongyuan.example.gov.cn"),
        ("overdue_leader", "webhook", "water:leader", "leader:water:leader"),
    ]


def test_verification_asks_the_citizen_and_a_resolution_alone_says_nothing(notify):
    story = Story("c-3", grid=GRID, reporter=CITIZEN)
    assert notify.on_event(as_event(story.resolved())) == 0
    assert notify.on_event(as_event(story.verified())) == 4
    assert sorted({n.kind for n in notify.outbox.records.values()}) == ["resolution", "satisfaction"]


def test_the_tick_starts_as_many_as_there_are_free_slots(notify):
    story = Story("c-4", grid=GRID, reporter=CITIZEN)
    notify.on_event(as_event(story.registered()))
    notify.on_event(as_event(story.verified()))  # 2 + 4 due now
    assert notify.deliver_due() == 3
    assert notify.outbox.claims == [(NOW, notify.lease, 3)]
    assert notify.deliver_due() == 0  # no free slot
    notify.deliveries.slots = 10
    assert notify.deliver_due() == 3  # the rest; the claimed ones are leased
    assert len(set(notify.deliveries.started)) == 6
    notify.clock.t = NOW + notify.lease  # nobody finished them: the leases ran out
    notify.deliveries.started.clear()
    assert notify.deliver_due() == 6


def test_the_lease_outlasts_the_slowest_channel():
    assert lease_of(_config()) == 10 * 2 + 10  # email: 10 s
    assert lease_of(nd.parse_config({})) == 10 * 2 + 10  # no channel: 10 s assumed


def test_the_names_are_the_registrys_and_the_grid_trees():
    names = names_of(TENANT, registry())
    assert names.tenant_name == "郑州市中原区秦岭路街道"
    assert names.departments["water"] == registry().departments["water"]["name_zh"]
    assert names.nodes[GRID] == (TENANT.nodes[GRID].name, TENANT.nodes[GRID].parent)


def test_stats_and_the_parked_list(notify):
    notify.on_event(as_event(Story("c-5", grid=GRID, reporter=CITIZEN).registered()))
    assert notify.stats() == {"tenant": QINLING, "pending": 2, "enqueued": 2}
    notify.outbox.parked_keys = [f"n-{i}" for i in range(150)]
    assert len(notify.parked({})) == 100
    assert notify.parked({"limit": "2"}) == [{"id": "n-0"}, {"id": "n-1"}]
    with pytest.raises(ValidationError):
        notify.parked({"limit": "0"})
