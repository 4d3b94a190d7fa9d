"""The Redis store: idempotent writes, atomic department actions, walls between tenants."""
import threading
import uuid

import pytest
import redis

from onegrid import settings
from onegrid.adapters.store import Store
from onegrid.domain.cases import TransitionRefused, new_work_order
from onegrid.domain.routing import Decision

pytestmark = pytest.mark.integration


@pytest.fixture
def store():
    s = Store(redis.Redis.from_url(settings.redis_url()), f"test-{uuid.uuid4().hex[:8]}")
    yield s
    s.purge()


def _case(store, cid="c-0000000000000001"):
    return {"id": cid, "tenant": store.tenant, "department": "market_regulation", "event_type": "x.y",
            "event_id": "e1", "source": "/s", "version": 1, "category": "illegal_business", "severity": "minor",
            "grid": "410102-001-001-001", "summary": "s", "occurred_at": "t", "reporter": {"kind": "citizen"},
            "data": {"a": 1}, "status": "registered", "received_at": "t", "transport": "amqp", "digest": "d1"}


def _dispatch(store, case, depts):
    decision = Decision("grid", case["grid"], tuple(depts), (), 0, "rule")
    return store.dispatch(case, decision, [new_work_order(case, d, decision, "rule", "t") for d in depts], "t")


def test_register_is_idempotent(store):
    case = _case(store)
    assert store.register_case(case, "k") == (True, case["id"], "d1", "registered")
    assert store.register_case({**case, "digest": "other"}, "k") == (False, case["id"], "d1", "registered")
    assert store.stats()["cases"] == 1
    assert store.case(case["id"])["data"] == {"a": 1}
    assert [s["action"] for s in store.timeline(case["id"])] == ["register"]


def test_dispatch_is_idempotent_and_marks_the_case(store):
    case = _case(store)
    store.register_case(case, "k")
    assert sorted(_dispatch(store, case, ["market_regulation", "urban_management"])) == [
        "w-0000000000000001-market_regulation", "w-0000000000000001-urban_management"]
    assert _dispatch(store, case, ["market_regulation", "urban_management"]) == []
    stats = store.stats()
    assert (stats["work_orders"], stats["cases_dispatched"], stats["level:grid"]) == (2, 1, 2)
    assert store.case(case["id"])["status"] == "dispatched"
    total, orders = store.department_queue("urban_management")
    assert total == 1 and orders[0]["case_id"] == case["id"]


def test_siblings_resolving_at_once_resolve_the_case(store):
    depts = [f"d{i}" for i in range(6)]  # the midnight manhole cover: six bodies at once
    case = _case(store)
    store.register_case(case, "k")
    _dispatch(store, case, depts)
    for d in depts:
        store.act(f"w-0000000000000001-{d}", d, "accept", "duty")
    barrier = threading.Barrier(len(depts))

    def resolve(d):
        barrier.wait()
        store.act(f"w-0000000000000001-{d}", d, "resolve", "duty", "fixed")

    threads = [threading.Thread(target=resolve, args=(d,)) for d in depts]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert store.case(case["id"])["status"] == "resolved"
    assert [s["action"] for s in store.timeline(case["id"])].count("case_resolved") == 1


def test_refused_actions_change_nothing(store):
    case = _case(store)
    store.register_case(case, "k")
    _dispatch(store, case, ["market_regulation"])
    wo = "w-0000000000000001-market_regulation"
    with pytest.raises(TransitionRefused, match="is dispatched; cannot resolve"):
        store.act(wo, "market_regulation", "resolve", "duty", "x")
    with pytest.raises(TransitionRefused, match="belongs to market_regulation"):
        store.act(wo, "public_security", "accept", "duty")
    with pytest.raises(LookupError):
        store.act("w-nope", "market_regulation", "accept", "duty")
    assert store.work_order(wo)["status"] == "dispatched"
    assert len(store.timeline(case["id"])) == 2  # register, dispatch


def test_quarantine_keeps_bytes_once_and_release_forgets(store):
    body = b"\xff\xfe not utf-8"
    first = store.quarantine(body, {"ce-id": "1"}, "application/json", "a.b", "amqp", "invalid_encoding", "why", "unknown")
    again = store.quarantine(body, {"ce-id": "1"}, "application/json", "a.b", "amqp", "invalid_encoding", "why", "unknown")
    assert first[0] is True and again == (False, first[1])
    [entry] = store.quarantined()
    assert entry["body"] == body and entry["reason"] == "invalid_encoding" and entry["detail"] == "why"
    store.release(entry)
    assert store.quarantined() == [] and store.stats()["quarantined"] == 0
    assert store.quarantine(body, {"ce-id": "1"}, "application/json", "a.b", "amqp", "invalid_encoding", "why",
                            "unknown")[0] is True


def test_tenants_are_walls(store):
    other = Store(store.r, store.tenant + "-b")
    case = _case(store)
    store.register_case(case, "k")
    assert other.case(case["id"]) is None
    assert other.register_case({**case, "tenant": other.tenant}, "k")[0] is True  # same key, other county
    other.purge()
    assert store.case(case["id"]) is not None
