"""scoring's use cases through in-memory fakes of its ports: an event applied once (a
redelivery changes nothing, but announces a colour change again), events it ignores or
refuses, inspectors' adjustments (idempotent on their id, checked), and the queries."""

from __future__ import annotations

import pytest
from marshmallow import ValidationError
from prometheus_client import REGISTRY

from onegrid.app.scoring import Scoring
from onegrid.domain import scoring as sc
from onegrid.domain.scoring import Event
from tests.lifecycle import T0, Story, as_event
from tests.unit.helpers import QINLING, registry

TENANT = registry().tenants[QINLING]
CONFIG = sc.parse_config(TENANT.source, TENANT)
GRID = "410102-001-001-001"
NOW = T0.timestamp()  # 2026-11-10, Tuesday of 2026-W46


class FakeScores:
    """What onegrid/adapters/redis/scores.py keeps, in dicts: each case's state, the counters,
    each grid's weights and colour (a change recorded with the event that caused it)."""

    def __init__(self):
        self.states, self.counters, self.weights, self.colour = {}, {}, {}, {}
        self.adjusted, self.entries = {}, {}

    def apply(self, event, case_id, cfg):
        before = self.states.get(case_id)
        out = sc.apply(before, event, cfg)
        if out.duplicate:
            return out, (before or {}).get("changes", {}).get(event.id)
        grid, change = out.state.get("grid"), None
        if grid:
            weights = self.weights.setdefault(grid, {})
            old = self.colour.get(grid) or sc.colour_of(sc.grid_score([], grid, cfg), cfg)
            weights.pop(case_id, None)
            if weight := sc.contribution(out.state, cfg):
                weights[case_id] = weight
            score = sc.grid_score(weights.values(), grid, cfg)
            self.colour[grid] = sc.colour_of(score, cfg)
            if self.colour[grid] != old:
                change = {"grid": grid, "from": old, "to": self.colour[grid], "score": score, "cause": event.id}
                out.state.setdefault("changes", {})[event.id] = change
        self.states[case_id] = out.state
        for parts, name, n in out.counters:
            bucket = self.counters.setdefault(parts, {})
            bucket[name] = bucket.get(name, 0) + n
        return out, change

    def adjust(self, worker, points, reason, inspector, month, adjustment_id, at):
        if adjustment_id in self.entries:
            return False, dict(self.entries[adjustment_id])
        entry = dict(
            id=adjustment_id, worker=worker, points=points, reason=reason, inspector=inspector, month=month, at=at
        )
        self.entries[adjustment_id] = entry
        by_worker = self.adjusted.setdefault(month, {})
        by_worker[worker] = by_worker.get(worker, 0) + points
        return True, dict(entry)

    def audit(self, month=None, worker=None):
        return [
            e
            for e in self.entries.values()
            if (month is None or e["month"] == month) and (worker is None or e["worker"] == worker)
        ]

    def workers(self, month, cfg):
        return sc.worker_points(self.counters.get(("points", month), {}), self.adjusted.get(month, {}), cfg)

    def grid_points(self, month, cfg):
        return sc.grid_points(self.counters.get(("grid_points", month), {}), cfg)

    def assessment(self, period, departments, cfg):
        return {d: sc.assessment(self.counters.get(("assess", period, d), {}), cfg) for d in departments}

    def colours(self):
        return {g: {"colour": c, "score": 0.0} for g, c in sorted(self.colour.items())}

    def worker_grid(self):
        return sc.home_grids(self.counters.get(("worker_grids",), {}))


class FakeBus:
    def __init__(self):
        self.sent = []

    def publish(self, env, data, *, mandatory=True):
        self.sent.append((env, data, mandatory))


class Clock:
    def now(self):
        return NOW

    def now_iso(self):
        return "2026-11-10T01:00:00.000Z"


@pytest.fixture
def scoring():
    return Scoring(TENANT, CONFIG, FakeScores(), FakeBus(), Clock())


def _count(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_an_event_is_applied_once_and_its_colour_change_announced_once(scoring):
    changes = dict(tenant=QINLING, colour="yellow")
    before = _count("onegrid_grid_colour_changes_total", **changes)
    event = as_event(Story("c-1", grid=GRID, severity="critical").registered())
    assert scoring.apply(event) == "applied"
    [(env, data, mandatory)] = scoring.publisher.sent
    assert (env.type, env.department, env.subject, env.source) == (
        "grid.colour_changed",
        "governance",
        GRID,
        f"/{QINLING}/scoring",
    )
    assert env.id == f"{GRID}.colour.{event.id}" and mandatory is False
    assert data["from"] == "green" and data["to"] == "yellow"
    counters = {k: dict(v) for k, v in scoring.scores.counters.items()}
    # delivered again, as after a crash between the store and the announcement
    assert scoring.apply(event) == "duplicate"
    assert len(scoring.publisher.sent) == 1  # not known to be a redelivery: nothing to say again
    assert scoring.apply(event, again=True) == "duplicate"
    assert [e.id for e, _, _ in scoring.publisher.sent] == [env.id, env.id]  # the same id: deduplicated downstream
    assert scoring.scores.counters == counters  # the figures moved once
    assert _count("onegrid_grid_colour_changes_total", **changes) == before + 1


def test_a_history_delivered_twice_scores_as_once(scoring):
    events = [as_event(e) for e in Story("c-2", grid=GRID).full("urban_management").events]
    once = Scoring(TENANT, CONFIG, FakeScores(), FakeBus(), Clock())
    for event in events:
        once.apply(event)
    assert [scoring.apply(e) for e in events + events] == ["applied"] * len(events) + ["duplicate"] * len(events)
    assert scoring.worker("GW-1", "2026-11") == once.worker("GW-1", "2026-11")
    assert scoring.worker("GW-1", "2026-11")["rules"]["report_verified"] == CONFIG.rules["report_verified"].points
    assert scoring.assessment("month", "2026-11") == once.assessment("month", "2026-11")


def test_events_it_does_not_score_are_ignored_and_one_without_a_case_refused(scoring):
    ignored = _count("onegrid_scoring_events_total", tenant=QINLING, outcome="ignored")
    assert scoring.apply(Event("e-1", "case.whistled", None, {"id": "c-1"})) == "ignored"
    assert _count("onegrid_scoring_events_total", tenant=QINLING, outcome="ignored") == ignored + 1
    with pytest.raises(ValueError, match="case.closed e-2 carries no case id in data.id"):
        scoring.apply(Event("e-2", "case.closed", None, {}))
    assert scoring.scores.states == {}


def test_an_adjustment_is_recorded_once_per_id(scoring):
    first = scoring.adjust_points("GW-1", -3, "台账不全", "inspector-1", adjustment_id="adj-1")
    assert first == {
        "created": True,
        "adjustment": {
            "id": "adj-1",
            "worker": "GW-1",
            "points": -3,
            "reason": "台账不全",
            "inspector": "inspector-1",
            "month": "2026-11",  # this month in the tenant's zone, by the clock
            "at": "2026-11-10T01:00:00.000Z",
        },
    }
    again = scoring.adjust_points("GW-1", -3, "台账不全", "inspector-1", adjustment_id="adj-1")
    assert again == {"created": False, "adjustment": first["adjustment"]}
    assert scoring.worker("GW-1")["points"] == -3
    assert scoring.worker("GW-1")["adjustments"] == [first["adjustment"]]
    fresh = scoring.adjust_points("GW-2", 2, "表扬加分", "inspector-1", month="2026-10")
    assert fresh["created"] and fresh["adjustment"]["id"].startswith("adj-")
    assert [e["worker"] for e in scoring.audit("2026-10")] == ["GW-2"]


@pytest.mark.parametrize(
    "change",
    [{"points": 5000}, {"points": "3"}, {"reason": "x"}, {"inspector": ""}, {"month": "2026-13"}],
)
def test_an_adjustment_is_checked(scoring, change):
    args = {"worker": "GW-1", "points": 3, "reason": "表扬加分", "inspector": "inspector-1", **change}
    with pytest.raises(ValidationError):
        scoring.adjust_points(**args)
    assert scoring.scores.entries == {}


def test_queries_check_their_periods(scoring):
    with pytest.raises(ValidationError):
        scoring.assessment("year")
    with pytest.raises(ValidationError):
        scoring.assessment("week", "2026-11")
    with pytest.raises(ValidationError):
        scoring.worker("GW-1", "November")
    out = scoring.assessment("week")
    assert out["key"] == "2026-W46" and set(out["departments"]) == set(TENANT.departments)


def test_risk_and_rankings(scoring):
    scoring.scores.colour.update({GRID: "red", "410102-001-001-002": "green"})
    risk = scoring.risk()
    assert risk["counts"] == {"red": 1, "orange": 0, "yellow": 0, "blue": 0, "green": 1}
    for e in Story("c-3", grid=GRID).full("urban_management").events:
        scoring.apply(as_event(e))
    ranks = scoring.rankings("2026-11", limit=5)
    assert ranks["month"] == "2026-11" and ranks["workers"][0]["name"] == "GW-1"
    assert ranks["workers"][0]["grid"] == GRID and ranks["grids"][0]["name"] == GRID
    assert ranks["communities"][0]["name"] == TENANT.ancestor(GRID, "community").code
