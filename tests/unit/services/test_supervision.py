"""supervision's use cases through in-memory fakes of its ports: the tick (an overdue deadline
fired once, the citizen's silence closing a verified case), the actions it refuses before any
transition, the whistle's checks, extension decisions and case queries."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field

import pytest
from marshmallow import ValidationError
from prometheus_client import REGISTRY

from onegrid.app.supervision import Supervision
from onegrid.domain.casework import Closure
from onegrid.domain.lifecycle import TransitionRefused
from onegrid.domain.supervision import member
from tests.unit.helpers import QINLING, registry

TENANT = registry().tenants[QINLING]


@dataclass
class Outcome:
    case: dict
    events: list[tuple[str, dict]] = field(default_factory=list)
    work_order: dict | None = None
    outbox: list[str] = field(default_factory=list)
    closure: Closure | None = None


class FakeCasework:
    """Records each transition asked for; a deadline is supervised once per (work order, kind, due)."""

    def __init__(self, cases: dict[str, dict]):
        self.cases = cases
        self.calls: list[tuple] = []
        self.fired: set[tuple[str, str, float]] = set()

    def _out(self, case_id: str, *events: tuple[str, dict]) -> Outcome:
        return Outcome(self.cases[case_id], list(events), outbox=[f"ev-{len(self.calls)}"])

    def case_act(self, case_id, action, actor, note="", evidence=None):
        self.calls.append(("case_act", case_id, action, actor, note, evidence))
        out = self._out(case_id)
        if action in ("satisfied", "no_answer", "close_not_fixed"):
            fixed = action != "close_not_fixed"
            outcome = "fixed" if fixed else "not_fixed"
            self.cases[case_id].update(status="closed", outcome=outcome, on_time=fixed)
            out.events = [("case.closed", {})]
            out.closure = Closure(self.cases[case_id]["category"], outcome, fixed, ("construction", "water"))
        return out

    def whistle(self, case_id, actor, to_level, departments, note):
        self.calls.append(("whistle", case_id, actor, to_level, departments, note))
        return self._out(case_id, ("case.whistled", {}))

    def extension(self, wo_id, grant, actor, seconds=None, note=""):
        self.calls.append(("extension", wo_id, grant, actor, note))
        out = self._out("c-1")
        out.work_order = {"id": wo_id, "status": "accepted"}
        return out

    def overdue(self, kind, wo_id, due):
        self.calls.append(("overdue", kind, wo_id, due))
        if (wo_id, kind, due) in self.fired:
            return None
        self.fired.add((wo_id, kind, due))
        return self._out("c-1", ("case.supervised", {"level": "community", "reason": f"overdue_{kind}"}))


class FakeCases:
    def __init__(self, cases: dict[str, dict]):
        self.cases = cases
        self.queries: list[dict] = []

    def case(self, case_id):
        return self.cases.get(case_id)

    def work_orders_of(self, case_id):
        return [{"id": "wo-1", "case_id": case_id}]

    def timeline(self, case_id):
        return [{"action": "register"}]

    def query(
        self,
        status=None,
        department=None,
        grid=None,
        level=None,
        overdue=False,
        since=None,
        until=None,
        offset=0,
        limit=50,
    ):
        self.queries.append(
            dict(
                status=status,
                department=department,
                grid=grid,
                level=level,
                overdue=overdue,
                since=since,
                until=until,
                offset=offset,
                limit=limit,
            )
        )
        return len(self.cases), list(self.cases.values())


class FakeTimers:
    """Due timers by member; a claimed one is in flight until done (a lease that runs out puts
    it back: `expire`)."""

    def __init__(self):
        self.due, self.inflight, self.finished = {}, {}, []

    def arm(self, m, due):
        self.due[m] = due

    def claim(self, now):
        taken = sorted((m, d) for m, d in self.due.items() if d <= now)
        for m, _ in taken:
            self.inflight[m] = self.due.pop(m)
        return taken

    def done(self, m):
        self.inflight.pop(m)
        self.finished.append(m)


class FakeAnnouncer:
    def __init__(self):
        self.announced, self.swept = [], 0

    def announce(self, event_ids):
        self.announced += event_ids
        return len(event_ids)

    def sweep(self):
        self.swept += 1
        return 0


class Clock:
    def __init__(self, now=1_000.0):
        self.t = now

    def now(self):
        return self.t

    def now_iso(self):
        return "2026-11-10T01:00:00.000Z"


def _case(case_id="c-1", status="dispatched"):
    return {"id": case_id, "status": status, "department": "urban_management", "category": "city_appearance"}


@pytest.fixture
def centre():
    cases = {"c-1": _case()}
    return Supervision(TENANT, FakeCasework(cases), FakeCases(cases), FakeTimers(), FakeAnnouncer(), Clock())


def _count(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


# -- the tick ------------------------------------------------------------------------------------
def test_the_tick_fires_an_overdue_deadline_once(centre):
    supervised = dict(tenant=QINLING, level="community", reason="overdue_acknowledge")
    before = _count("onegrid_supervisions_total", **supervised)
    centre.timers.arm(member("acknowledge", "wo-1"), 990.0)
    centre.timers.arm(member("resolve", "wo-1"), 2_000.0)  # not due yet
    assert centre.tick() == 1
    assert centre.work.calls == [("overdue", "acknowledge", "wo-1", 990.0)]
    assert centre.announcer.announced == ["ev-1"]
    assert centre.timers.finished == ["acknowledge|wo-1"] and not centre.timers.inflight
    assert _count("onegrid_supervisions_total", **supervised) == before + 1
    assert centre.tick() == 0  # nothing more is due
    # the same firing again (a process died before `done`, its lease ran out): moot
    centre.timers.arm(member("acknowledge", "wo-1"), 990.0)
    assert centre.tick() == 1
    assert centre.announcer.announced == ["ev-1"]
    assert _count("onegrid_supervisions_total", **supervised) == before + 1


def test_the_citizens_silence_closes_a_verified_case_as_no_answer(centre):
    centre.cases.cases["c-1"]["status"] = "verified"
    centre.timers.arm(member("feedback", "c-1"), 999.0)
    assert centre.tick() == 1
    assert centre.work.calls == [
        ("case_act", "c-1", "no_answer", "supervision", "no answer within the feedback window", None)
    ]
    assert centre.announcer.announced == ["ev-1"]


def test_feedback_on_a_case_no_longer_verified_does_nothing(centre):
    centre.cases.cases["c-1"]["status"] = "reopened"  # the citizen answered meanwhile
    centre.timers.arm(member("feedback", "c-1"), 999.0)
    centre.timers.arm(member("feedback", "c-gone"), 999.0)
    assert centre.tick() == 2
    assert centre.work.calls == [] and centre.announcer.announced == []
    assert sorted(centre.timers.finished) == ["feedback|c-1", "feedback|c-gone"]


def test_the_sweep_is_the_announcers(centre):
    centre.sweep()
    assert centre.announcer.swept == 1


# -- actions -------------------------------------------------------------------------------------
@pytest.mark.parametrize("action", ["reject", "close_not_fixed", "verify_failed", "not_satisfied"])
def test_an_action_that_ends_or_undoes_work_needs_a_reason(centre, action):
    with pytest.raises(TransitionRefused, match="needs a reason in `note`"):
        centre.act("c-1", action, "centre")
    assert centre.work.calls == [] and centre.announcer.announced == []


def test_an_unknown_action_is_refused_before_anything_is_asked(centre):
    with pytest.raises(TransitionRefused, match="unknown case action 'merge'; one of verify, "):
        centre.act("c-1", "merge", "centre", "x")
    assert centre.work.calls == []


def test_an_action_without_an_actor_is_an_invalid_request(centre):
    with pytest.raises(ValidationError):
        centre.act("c-1", "verify", "")


def test_verify_passes_the_evidence_and_announces(centre):
    out = centre.act("c-1", "verify", "grid-worker", "现场复核", ["https://example.org/1.jpg"])
    assert out == {"case": centre.cases.cases["c-1"]}
    assert centre.work.calls == [
        ("case_act", "c-1", "verify", "grid-worker", "现场复核", ["https://example.org/1.jpg"])
    ]
    assert centre.announcer.announced == ["ev-1"]


CLOSING = ("satisfied", "no_answer", "close_not_fixed")


def _closure_counts() -> dict[str, float]:
    t, cat = dict(tenant=QINLING), dict(category="city_appearance")
    figures = {
        f"{outcome}": _count("onegrid_cases_closed_total", **t, **cat, outcome=outcome)
        for outcome in ("fixed", "not_fixed")
    }
    figures["on_time"] = _count("onegrid_cases_closed_on_time_total", **t, **cat)
    for dept in ("construction", "water", "urban_management"):
        for outcome in ("fixed", "not_fixed"):
            figures[f"{dept}:{outcome}"] = _count(
                "onegrid_department_cases_closed_total", **t, department=dept, outcome=outcome
            )
        figures[f"{dept}:on_time"] = _count("onegrid_department_cases_closed_on_time_total", **t, department=dept)
    return figures


@pytest.mark.parametrize("action", CLOSING)
def test_a_closure_is_counted_once_by_outcome_and_by_the_handling_departments(centre, action):
    before = _closure_counts()
    if action == "no_answer":  # the clock closes it: no act at all
        centre.cases.cases["c-1"]["status"] = "verified"
        centre.timers.arm(member("feedback", "c-1"), 999.0)
        centre.tick()
    else:
        centre.act("c-1", action, "citizen" if action == "satisfied" else "centre", "满意/未解决")
    outcome = "not_fixed" if action == "close_not_fixed" else "fixed"
    on_time = int(outcome == "fixed")
    after = _closure_counts()
    moved = {k: after[k] - before[k] for k in after if after[k] != before[k]}
    assert moved == {
        outcome: 1,
        f"construction:{outcome}": 1,
        f"water:{outcome}": 1,
        **({"on_time": 1, "construction:on_time": 1, "water:on_time": 1} if on_time else {}),
    }  # the reporting department (urban_management) is not a handling one: nothing moved there


# -- the whistle ---------------------------------------------------------------------------------
def test_a_whistle_names_a_level_or_departments(centre):
    with pytest.raises(TransitionRefused, match="a whistle names a higher level, departments, or both"):
        centre.whistle("c-1", "street-chief", "看一下")
    assert centre.work.calls == []


def test_a_whistle_to_departments_the_tenant_has_not_enabled_is_refused(centre):
    with pytest.raises(LookupError, match=r"departments not enabled for zhongyuan-qinling: \['navy'\]"):
        centre.whistle("c-1", "street-chief", "联合处置", departments=["water", "navy"])
    assert centre.work.calls == []


def test_a_whistle_needs_a_note_and_a_known_level(centre):
    with pytest.raises(ValidationError):
        centre.whistle("c-1", "street-chief", "", level="county")
    with pytest.raises(ValidationError):
        centre.whistle("c-1", "street-chief", "x", level="galaxy")


def test_a_whistle_goes_to_casework_and_is_announced(centre):
    out = centre.whistle("c-1", "street-chief", "联合处置", level="street", departments=["water"])
    assert out == {"case": centre.cases.cases["c-1"]}
    assert centre.work.calls == [("whistle", "c-1", "street-chief", "street", ["water"], "联合处置")]
    assert centre.announcer.announced == ["ev-1"]


# -- extensions and queries ----------------------------------------------------------------------
def test_an_extension_decision(centre):
    out = centre.decide_extension("wo-1", 1, "centre", "同意")
    assert centre.work.calls == [("extension", "wo-1", True, "centre", "同意")]
    assert out["work_order"] == {"id": "wo-1", "status": "accepted"} and out["case"]["id"] == "c-1"
    with pytest.raises(ValidationError):
        centre.decide_extension("wo-1", False, "")


def test_a_case_with_its_parts_and_timeline_or_none(centre):
    assert centre.get_case("c-1") == {
        **_case(),
        "work_orders": [{"id": "wo-1", "case_id": "c-1"}],
        "timeline": [{"action": "register"}],
    }
    with pytest.raises(LookupError, match="no case c-9 in zhongyuan-qinling"):
        centre.get_case("c-9")


def test_a_query_is_checked_and_paged(centre):
    out = centre.list_cases({"status": "dispatched", "overdue": "true", "limit": "5"})
    assert out == {"total": 1, "offset": 0, "limit": 5, "cases": [_case()]}
    assert centre.cases.queries[-1] == {
        "status": "dispatched",
        "department": None,
        "grid": None,
        "level": None,
        "overdue": True,
        "since": None,
        "until": None,
        "offset": 0,
        "limit": 5,
    }
    with pytest.raises(ValidationError):
        centre.list_cases({"status": "sleeping"})


def test_the_use_cases_import_no_transport_or_store():
    """onegrid/app stays pure: the later lifecycle's use cases run without nameko, kombu, redis,
    eventlet or werkzeug (a fresh interpreter, so no other test's imports count)."""
    code = (
        "import sys, onegrid.app.supervision, onegrid.app.scoring, onegrid.app.notify\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'nameko', 'kombu', 'redis', 'eventlet', 'werkzeug'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
