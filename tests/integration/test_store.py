"""The Redis store: idempotent writes, atomic department actions, walls between tenants."""

import uuid

import pytest
import redis

from onegrid.adapters.redis.duplicates import DuplicateBook
from onegrid.adapters.redis.store import Store
from onegrid.domain.cases import new_work_order
from onegrid.domain.duplicates import Candidates, pair_key
from onegrid.domain.routing import Decision, Dispatch
from onegrid.domain.supervision import member
from onegrid.domain.timeline import verify as verify_chain
from onegrid.kernel import settings

pytestmark = pytest.mark.integration


@pytest.fixture
def store():
    s = Store(redis.Redis.from_url(settings.redis_url()), f"test-{uuid.uuid4().hex[:8]}")
    yield s
    s.purge()


def _case(store, cid="c-0000000000000001"):
    return {
        "id": cid,
        "tenant": store.tenant,
        "department": "market_regulation",
        "event_type": "x.y",
        "event_id": "e1",
        "source": "/s",
        "version": 1,
        "category": "illegal_business",
        "severity": "minor",
        "grid": "410102-001-001-001",
        "summary": "s",
        "occurred_at": "t",
        "reporter": {"kind": "citizen"},
        "data": {"a": 1},
        "status": "registered",
        "received_at": "t",
        "transport": "amqp",
        "digest": "d1",
        "at": 1000.0,
        "level": "",
        "reopen_count": 0,
        "location": None,
    }


def _dispatch(store, case, depts, now=1000.0, arrival=None):
    decision = Decision("grid", case["grid"], tuple(depts), (), 0, "rule")
    orders = [new_work_order(case, d, decision, "rule", "t", (600.0, 3600.0), now) for d in depts]
    return store.dispatch(case, decision, orders, "t", arrival)[0]


@pytest.fixture
def trips(monkeypatch):
    """Round trips to Redis: each send of one command or one pipeline's commands."""
    sent = [0]
    send = redis.connection.Connection.send_packed_command

    def counted(self, command, check_health=True):
        sent[0] += 1
        return send(self, command, check_health)

    monkeypatch.setattr(redis.connection.Connection, "send_packed_command", counted)
    return sent


def test_register_is_idempotent(store):
    case = _case(store)
    assert store.register_case(case, "k") == (True, case["id"], "d1", "registered")
    assert store.register_case({**case, "digest": "other"}, "k") == (False, case["id"], "d1", "registered")
    assert store.stats()["cases"] == 1
    assert store.case(case["id"])["data"] == {"a": 1}
    assert [s["action"] for s in store.timeline(case["id"])] == ["register"]


class CountingConnection(redis.Connection):
    """A connection that counts what it sends: one write of a command or a pipeline is one
    round trip."""

    sent = 0

    def send_packed_command(self, command, check_health=True):
        CountingConnection.sent += 1
        super().send_packed_command(command, check_health)


def test_register_cases_is_one_round_trip_in_order(store):
    counted = Store(redis.Redis.from_url(settings.redis_url(), connection_class=CountingConnection), store.tenant)
    counted.r.ping()  # the connection's own handshake is not the registrations'
    one, two = _case(store), _case(store, "c-0000000000000002")
    CountingConnection.sent = 0
    assert counted.register_cases([(one, "k1"), (one, "k1"), ({**one, "digest": "other"}, "k1"), (two, "k2")]) == [
        (True, one["id"], "d1", "registered"),
        (False, one["id"], "d1", "registered"),  # the second sees the first: a resend
        (False, one["id"], "d1", "registered"),  # ... or an id reused (the caller compares digests)
        (True, two["id"], "d1", "registered"),
    ]
    assert CountingConnection.sent == 1
    assert store.stats()["cases"] == 2 and [s["action"] for s in store.timeline(one["id"])] == ["register"]
    assert counted.register_cases([]) == [] and CountingConnection.sent == 1


def test_register_cases_loads_a_script_the_server_does_not_know(store):
    store._register.sha = "0" * 40  # as after a restart or a failover: NOSCRIPT
    case = _case(store)
    assert store.register_cases([(case, "k"), (case, "k")]) == [
        (True, case["id"], "d1", "registered"),
        (False, case["id"], "d1", "registered"),
    ]
    assert store.stats()["cases"] == 1


def test_dispatch_is_idempotent_and_marks_the_case(store):
    case = _case(store)
    store.register_case(case, "k")
    assert sorted(_dispatch(store, case, ["market_regulation", "urban_management"])) == [
        "w-0000000000000001-market_regulation",
        "w-0000000000000001-urban_management",
    ]
    assert _dispatch(store, case, ["market_regulation", "urban_management"]) == []
    stats = store.stats()
    assert (stats["work_orders"], stats["cases_dispatched"], stats["level:grid"]) == (2, 1, 2)
    assert store.case(case["id"])["status"] == "dispatched"
    total, orders = store.department_queue("urban_management")
    assert total == 1 and orders[0]["case_id"] == case["id"]
    # each work order's deadlines are armed timers
    assert store.timers.due_at("acknowledge|w-0000000000000001-urban_management") == 1600.0
    assert store.timers.due_at("resolve|w-0000000000000001-urban_management") == 4600.0
    assert store.query(status="dispatched", level="grid")[0] == 1


def test_a_first_dispatch_of_the_case_as_read_is_one_round_trip_and_arms_the_arrival_once(store, trips):
    warm, case = _case(store, "c-0000000000000002"), _case(store)
    for c in (warm, case):
        store.register_case(c, c["id"])
    _dispatch(store, store.case(warm["id"]), ["market_regulation"])  # the script is loaded now
    read = store.case(case["id"])
    trips[0] = 0
    assert _dispatch(store, read, ["market_regulation"], arrival=1600.0) == ["w-0000000000000001-market_regulation"]
    assert trips[0] == 1
    arrival = member("arrival", case["id"])
    assert store.case(case["id"])["arrival_due"] == 1600.0 and store.timers.due_at(arrival) == 1600.0
    # a redelivery, from the record read before the dispatch: nothing recorded, the first deadline kept
    assert _dispatch(store, read, ["market_regulation"], arrival=1900.0) == []
    assert store.case(case["id"])["arrival_due"] == 1600.0 and store.timers.due_at(arrival) == 1600.0
    assert store.case(warm["id"]).get("arrival_due") is None  # none asked for: none armed


def test_a_dispatch_from_a_record_whose_timeline_moved_reads_again_and_keeps_the_chain(store):
    case = _case(store)
    store.register_case(case, "k")
    read = store.case(case["id"])
    _dispatch(store, store.case(case["id"]), ["urban_management"])  # another writer moves the head
    assert _dispatch(store, read, ["market_regulation"]) == ["w-0000000000000001-market_regulation"]
    lines = store.timeline(case["id"])
    assert [x["action"] for x in lines] == ["register", "dispatch", "dispatch"]
    assert verify_chain(store.tenant, case["id"], lines, store.case(case["id"])["chainhead"]).intact


def test_a_batch_of_dispatches_is_one_round_trip_and_one_whose_head_moved_is_read_again(store, trips):
    """dispatch_many: the first tries of all in one pipeline; the one another writer got to
    first is refused by the script and goes on alone, reading the head, chained on it."""
    ids = [f"c-000000000000000{i}" for i in range(1, 5)]
    for cid in ids:
        store.register_case(_case(store, cid), cid)
    _dispatch(store, store.case(ids[0]), ["market_regulation"])  # the script is loaded now
    read = store.cases(ids[1:])
    _dispatch(store, store.case(ids[2]), ["urban_management"])  # another writer moves one head
    writes = []
    for case in read:
        decision = Decision("grid", case["grid"], ("market_regulation",), (), 0, "rule")
        orders = [new_work_order(case, "market_regulation", decision, "rule", "t", (600.0, 3600.0), 1000.0)]
        writes.append(Dispatch(case, decision, orders, "t", 1600.0))
    trips[0] = 0
    out = store.dispatch_many(writes)
    assert [created for created, _ in out] == [[f"w-{cid[2:]}-market_regulation"] for cid in ids[1:]]
    assert trips[0] == 3  # the batch; then the refused one's read, and its write
    for cid, (_, head) in zip(ids[1:], out, strict=True):
        lines = store.timeline(cid)
        assert store.case(cid)["chainhead"] == head and store.case(cid)["status"] == "dispatched"
        assert verify_chain(store.tenant, cid, lines, head).intact
    assert [x["action"] for x in store.timeline(ids[2])] == ["register", "dispatch", "dispatch"]
    assert store.stats()["cases_dispatched"] == 4 and store.stats()["work_orders"] == 5
    assert [created for created, _ in store.dispatch_many(writes)] == [[], [], []]  # a redelivery
    assert store.stats()["work_orders"] == 5


def test_candidates_are_read_with_the_distinct_pairs_in_two_round_trips_or_one_with_the_ids(store, trips):
    book = DuplicateBook(store)
    ids = [f"c-000000000000000{i}" for i in range(1, 4)]
    for i, cid in enumerate(ids):
        store.register_case({**_case(store, cid), "at": 1000.0 + i}, cid)
    book.mark_distinct(ids[0], ids[2])
    trips[0] = 0
    found = book.candidates(ids[0], "illegal_business", 900.0, 1100.0)
    assert [c["id"] for c in found.cases] == ids[1:] and found.distinct == {pair_key(ids[0], ids[2])}
    assert trips[0] == 2
    trips[0] = 0
    assert book.candidates(ids[0], "illegal_business", 999.0, 1000.5) == Candidates([], frozenset())
    assert trips[0] == 1  # nobody else: no records to read
    trips[0] = 0  # a batch's ids read together, then each case's candidates in one trip
    windows = [("illegal_business", 900.0, 1100.0), ("illegal_business", 1001.5, 1100.0), ("other", 0.0, 1.0)]
    assert book.recent_ids(windows) == [ids, ids[2:], []] and trips[0] == 1
    assert book.candidates(ids[0], "illegal_business", 900.0, 1100.0, ids=ids) == found and trips[0] == 2


def test_quarantine_keeps_bytes_once_and_release_forgets(store):
    body = b"\xff\xfe not utf-8"
    first = store.quarantine(
        body, {"ce-id": "1"}, "application/json", "a.b", "amqp", "invalid_encoding", "why", "unknown"
    )
    again = store.quarantine(
        body, {"ce-id": "1"}, "application/json", "a.b", "amqp", "invalid_encoding", "why", "unknown"
    )
    assert first[0] is True and again == (False, first[1])
    [entry] = store.quarantined()
    assert entry["body"] == body and entry["reason"] == "invalid_encoding" and entry["detail"] == "why"
    store.release(entry)
    assert store.quarantined() == [] and store.stats()["quarantined"] == 0
    assert (
        store.quarantine(body, {"ce-id": "1"}, "application/json", "a.b", "amqp", "invalid_encoding", "why", "unknown")[
            0
        ]
        is True
    )


def test_tenants_are_walls(store):
    other = Store(store.r, store.tenant + "-b")
    case = _case(store)
    store.register_case(case, "k")
    assert other.case(case["id"]) is None
    assert other.register_case({**case, "tenant": other.tenant}, "k")[0] is True  # same key, other county
    other.purge()
    assert store.case(case["id"]) is not None
