"""Lifecycle transitions on the real Redis: atomic, idempotent, and the timers behind them."""

import threading
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import redis

from onegrid.adapters.calendar import CHINA
from onegrid.adapters.redis.casework import Casework
from onegrid.adapters.redis.store import Store
from onegrid.app.registry import load_strict
from onegrid.domain import timeline as tl
from onegrid.domain.calendar import schedule
from onegrid.domain.cases import new_work_order
from onegrid.domain.lifecycle import TransitionRefused
from onegrid.domain.routing import Decision
from onegrid.domain.supervision import Policy
from onegrid.kernel import settings
from onegrid.kernel.spans import parse_span

pytestmark = pytest.mark.integration
GRID = "410102-001-001-001"


class Clock:
    def __init__(self, now=1_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def work():
    tenant = load_strict("contracts").tenants["zhongyuan-qinling"]
    store = Store(redis.Redis.from_url(settings.redis_url()), f"test-{uuid.uuid4().hex[:8]}")
    w = Casework(store, tenant, Policy(max_reopens=1, feedback_window=3600), clock=Clock())
    yield w
    store.purge()


def _case(work, n=1, depts=("market_regulation",), level="grid", spans=None):
    """A dispatched case; `spans` (acknowledge, resolve) as a manifest writes them, found on
    the Chinese calendar as routing does, else 600 s and 3600 s."""
    cid = f"c-{n:016x}"
    case = {
        "id": cid,
        "tenant": work.store.tenant,
        "department": "governance",
        "event_type": "x.y",
        "event_id": f"e{n}",
        "source": "/s",
        "version": 1,
        "category": "illegal_business",
        "severity": "minor",
        "grid": GRID,
        "summary": "s",
        "occurred_at": "t",
        "reporter": {"kind": "citizen", "id": "r1"},
        "data": {},
        "status": "registered",
        "received_at": "t",
        "transport": "amqp",
        "digest": "d",
        "at": 1000.0 + n,
        "level": "",
        "reopen_count": 0,
        "location": None,
    }
    work.store.register_case(case, cid)
    decision = Decision(level, GRID, tuple(depts), (), 0, "rule")
    now = work.clock()
    seconds, written = (600.0, 3600.0), None
    if spans:
        sched = schedule(work.tenant, CHINA)
        seconds = tuple(sched.due(now, parse_span(s)) - now for s in spans)
        written = spans
    orders = [new_work_order(case, d, decision, "rule", "t", seconds, now, written) for d in depts]
    work.store.dispatch(case, decision, orders, "t")
    return cid, [f"w-{cid[2:]}-{d}" for d in depts]


def test_six_bodies_resolving_at_once_resolve_the_case_once(work):
    depts = [
        "urban_management",
        "emergency_management",
        "water",
        "housing_construction",
        "civil_affairs",
        "public_security",
    ]  # the midnight manhole cover
    cid, wos = _case(work, depts=depts)
    for d, w in zip(depts, wos, strict=True):
        work.department_act(w, d, "accept", "duty")
    barrier = threading.Barrier(len(depts))

    def resolve(d, w):
        barrier.wait()
        work.department_act(w, d, "resolve", "duty", "fixed")

    threads = [threading.Thread(target=resolve, args=pair) for pair in zip(depts, wos, strict=True)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert work.store.case(cid)["status"] == "resolved"
    assert [s["action"] for s in work.store.timeline(cid)].count("resolve") == 1 + len(depts)
    assert work.store.timers.pending() == 0  # every deadline of the resolved parts is cancelled
    assert _chain_intact(work, cid)  # six writers appended at once: the chain did not fork


def _chain_intact(work, cid) -> bool:
    verdict = tl.verify(work.store.tenant, cid, work.store.timeline(cid), work.store.case(cid)["chainhead"])
    assert verdict.intact, verdict.finding
    return verdict.head.length == len(work.store.timeline(cid))


def test_dispatches_and_transitions_appending_at_once_keep_one_chain(work):
    """routing's dispatch (a Lua script) and casework (WATCH/MULTI) append to one timeline
    at the same moment: each line is chained on the head it read, or read again."""
    first = ["market_regulation", "urban_management", "water"]
    cid, wos = _case(work, depts=first)
    case = work.store.case(cid)
    more = ["emergency_management", "housing_construction", "civil_affairs", "public_security", "fire_rescue"]
    decision = Decision("grid", GRID, tuple(more), (), 0, "rule")
    barrier = threading.Barrier(len(first) + len(more))
    errors = []

    def accept(d, w):
        barrier.wait()
        work.department_act(w, d, "accept", "duty")

    def dispatch(d):
        order = new_work_order(case, d, decision, "whistle", "t", (600.0, 3600.0), work.clock())
        barrier.wait()
        work.store.dispatch(case, decision, [order], "t")

    def guarded(fn, *args):
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 -- reported below, not lost in a thread
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(accept, d, w)) for d, w in zip(first, wos, strict=True)]
    threads += [threading.Thread(target=guarded, args=(dispatch, d)) for d in more]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors
    actions = [s["action"] for s in work.store.timeline(cid)]
    assert actions.count("dispatch") == len(first) + len(more) and actions.count("accept") == len(first)
    assert _chain_intact(work, cid)


def test_refused_actions_change_nothing(work):
    cid, [wo] = _case(work)
    before = work.store.timeline(cid)
    with pytest.raises(TransitionRefused, match="is dispatched; cannot resolve"):
        work.department_act(wo, "market_regulation", "resolve", "duty", "x")
    with pytest.raises(TransitionRefused, match="belongs to market_regulation"):
        work.department_act(wo, "public_security", "accept", "duty")
    with pytest.raises(TransitionRefused, match=f"case {cid} is dispatched; cannot verify"):
        work.case_act(cid, "verify", "grid-worker-7")
    assert work.store.timeline(cid) == before and work.store.work_order(wo)["status"] == "dispatched"


def test_overdue_acknowledgement_supervises_escalates_rearms_and_is_applied_once(work):
    cid, [wo] = _case(work)
    due = work.store.timers.due_at(f"acknowledge|{wo}")
    work.clock.now = due + 0.5
    [(member, fired_due)] = work.store.timers.claim(work.clock.now)
    out = work.overdue("acknowledge", wo, fired_due)
    assert [e for e, _ in out.events] == ["case.supervised", "case.escalated"]
    assert out.case["level"] == "community" and out.case["overdue"] == 1
    assert work.overdue("acknowledge", wo, fired_due) is None  # a second fire of the same timer
    work.store.timers.done(member)
    assert work.store.timers.due_at(f"acknowledge|{wo}") == pytest.approx(work.clock.now + 600)
    assert work.store.query(overdue=True)[0] == 1
    work.department_act(wo, "market_regulation", "accept", "duty")
    assert work.store.timers.due_at(f"acknowledge|{wo}") is None
    work.clock.now += 10_000
    assert work.overdue("acknowledge", wo, 1.0) is None  # accepted meanwhile: moot


def test_at_the_county_an_overdue_case_stays_flagged(work):
    cid, [wo] = _case(work, level="county")
    work.clock.now += 700
    out = work.overdue("acknowledge", wo, work.store.timers.due_at(f"acknowledge|{wo}"))
    assert [e for e, _ in out.events] == ["case.supervised"] and out.case["level"] == "county"
    assert out.case["overdue"] == 1


def test_timers_claim_only_what_is_due_and_recover_from_a_dead_claimer(work):
    t = work.store.timers
    t.arm("acknowledge|a", 10.0)
    t.arm("acknowledge|b", 20.0)
    assert t.claim(5.0) == []
    assert t.claim(15.0, lease=30) == [("acknowledge|a", 10.0)]
    assert t.claim(16.0) == []  # claimed, not yet released
    assert t.claim(44.0, lease=30) == [("acknowledge|b", 20.0)]
    t.done("acknowledge|b")
    assert t.claim(46.0) == [("acknowledge|a", 10.0)]  # a's lease (15 + 30) ran out: back, fires again
    t.done("acknowledge|a")
    assert t.claim(1e12) == [] and t.pending() == 0


def test_verify_feedback_reopen_then_county_then_close(work):
    cid, [wo] = _case(work)
    work.department_act(wo, "market_regulation", "accept", "duty")
    work.department_act(wo, "market_regulation", "resolve", "duty", "fixed", ["https://e.invalid/1.jpg"])
    out = work.case_act(cid, "verify", "grid-worker-7", "checked on site")
    assert out.case["status"] == "verified" and work.store.timers.due_at(f"feedback|{cid}") is not None
    out = work.case_act(cid, "not_satisfied", "citizen", "still blocked")
    assert out.case["status"] == "dispatched" and out.case["reopen_count"] == 1
    assert work.store.work_order(wo)["status"] == "dispatched"
    work.department_act(wo, "market_regulation", "accept", "duty")
    work.department_act(wo, "market_regulation", "resolve", "duty", "fixed again")
    work.case_act(cid, "verify", "grid-worker-7")
    out = work.case_act(cid, "not_satisfied", "citizen", "still not")  # max_reopens=1: the county takes it
    assert out.case["level"] == "county" and tuple(e for e, _ in out.events if e == "case.dispatch_requested") == (
        "case.dispatch_requested",
    )
    out = work.case_act(cid, "close_not_fixed", "command-centre", "owner cannot be found")
    assert (out.case["status"], out.case["outcome"], out.case["on_time"]) == ("closed", "not_fixed", False)
    assert work.store.stats()["closed:illegal_business:not_fixed"] == 1


def test_satisfied_closes_fixed_and_on_time(work):
    cid, [wo] = _case(work)
    work.department_act(wo, "market_regulation", "accept", "duty")
    work.department_act(wo, "market_regulation", "resolve", "duty", "done")
    work.case_act(cid, "verify", "gw")
    out = work.case_act(cid, "satisfied", "citizen")
    assert (out.case["outcome"], out.case["on_time"], out.case["satisfied"]) == ("fixed", True, True)
    assert work.store.timers.pending() == 0


def test_merge_links_the_second_report_to_the_primary(work):
    first, _ = _case(work, 1)
    second = f"c-{2:016x}"
    case = {
        **work.store.case(first),
        "id": second,
        "event_id": "e2",
        "status": "registered",
        "reporter": {"kind": "grid_worker", "id": "gw-3"},
    }
    work.store.register_case(case, second)
    out = work.merge(second, first)
    assert out.case["status"] == "merged" and out.case["merged_into"] == first
    primary = work.store.case(first)
    assert primary["linked"][0]["case_id"] == second and primary["linked"][0]["reporter"]["id"] == "gw-3"
    assert work.store.case(second)["data"] == case["data"]  # the second report is kept
    with pytest.raises(TransitionRefused):
        work.merge(second, first)


def test_queries_filter_and_page(work):
    for n in range(1, 8):
        _case(work, n, level="grid" if n % 2 else "street")
    total, page = work.store.query(level="street", limit=2)
    assert total == 3 and len(page) == 2 and page[0]["at"] > page[1]["at"]
    assert work.store.query(level="grid", since=1003.5)[0] == 2
    assert work.store.query(department="market_regulation", status="dispatched", offset=6)[0] == 7
    assert work.store.query(grid="nowhere")[0] == 0


def test_a_working_day_deadline_is_stored_fires_and_rearms_on_the_chinese_calendar(work):
    # dispatched the day before National Day 2026: 3 working days are Thu 8th, Fri 9th and the
    # 调休 Saturday 10th; escalated then, the next 3 are Mon 12th to Wed 14th (closes 17:30)
    bj = timezone(timedelta(hours=8))
    work.clock.now = datetime(2026, 9, 30, 10, 0, tzinfo=bj).timestamp()
    cid, [wo] = _case(work, spans=("1wh", "3wd"))
    stored = work.store.work_order(wo)
    assert (stored["ack_deadline"], stored["resolve_deadline"]) == ("1wh", "3wd")
    due = work.store.timers.due_at(f"resolve|{wo}")
    assert due == datetime(2026, 10, 10, 17, 30, tzinfo=bj).timestamp() == stored["resolve_due"]
    work.clock.now = due + 1
    out = work.overdue("resolve", wo, due)
    assert [e for e, _ in out.events] == ["case.supervised", "case.escalated"]
    assert work.store.timers.due_at(f"resolve|{wo}") == datetime(2026, 10, 14, 17, 30, tzinfo=bj).timestamp()
