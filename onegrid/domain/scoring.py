"""Scoring: grid workers' points (积分制), department assessment, five-colour risk, rankings.

Pure functions over the lifecycle events (docs/lifecycle.md) and one case's scoring state;
`apply` says what an event changes, the adapter (onegrid/adapters/redis/scores.py) stores it.
Everything is counted, never summed as it arrives: a worker's points under a rule are
min(cap, count x points), so the totals do not depend on the order events are applied in,
and an event applied twice (same ce-id) changes nothing. docs/scoring.md explains the rules.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from onegrid.domain.lifecycle import TERMINAL_EVENTS
from onegrid.domain.onsite import settled_on_site

RULES = ("report_verified", "grid_resolved", "on_time", "overdue", "satisfied", "resolved_on_site")
COLOURS = ("red", "orange", "yellow", "blue", "green")  # worst first
SEVERITIES = ("minor", "general", "major", "critical")
UNRESOLVED = ("registered", "dispatched", "in_progress", "reopened")  # what counts towards risk
GONE = ("returned", "cancelled")  # a department's part that is no longer its business
DEFAULTS: dict[str, Any] = {
    "timezone": "+08:00",
    "points": {
        "report_verified": {"points": 2, "monthly_cap": 60},
        "grid_resolved": {"points": 3, "monthly_cap": 90},
        "on_time": {"points": 1, "monthly_cap": 30},
        "overdue": {"points": -2, "monthly_cap": 20},
        "satisfied": {"points": 1, "monthly_cap": 30},
        # settled in the grid on the spot (onegrid.domain.onsite): less than a dispatched case's
        # grid_resolved, since most are never checked; the cap bounds what unchecked claims earn
        "resolved_on_site": {"points": 1, "monthly_cap": 40},
    },
    "risk": {
        "severity_weights": {"minor": 1, "general": 2, "major": 4, "critical": 8},
        "overdue_factor": 2,
        "key_person_weight": 1,
        "thresholds": {"red": 24, "orange": 16, "yellow": 8, "blue": 3},
    },
    "assessment_weights": {"closure": 0.4, "on_time": 0.3, "satisfaction": 0.3},
    "key_persons": {},
    "grid_workers": {},
}
_KEYS = set(DEFAULTS)
_OFFSET = re.compile(r"^([+-])([01][0-9]|2[0-3]):([0-5][0-9])$")


@dataclass(frozen=True)
class Rule:
    points: int
    monthly_cap: int

    def total(self, count: int) -> int:
        """Points from `count` awards: the cap bounds the magnitude (a deduction too)."""
        raw = count * self.points
        return max(-self.monthly_cap, min(self.monthly_cap, raw))


@dataclass(frozen=True)
class Config:
    tz: timezone
    rules: dict
    severity_weights: dict
    overdue_factor: float
    key_person_weight: float
    thresholds: dict
    weights: dict
    key_persons: dict = field(default_factory=dict)
    grid_workers: dict = field(default_factory=dict)


# -- the manifest's `scoring:` section -------------------------------------------------------
def check_manifest(doc: dict, tenant=None) -> list[tuple[str, str]]:
    """Every (path, reason) problem in a manifest's `scoring:` section (absent: defaults)."""
    sec = (doc or {}).get("scoring")
    if sec is None:
        return []
    if not isinstance(sec, dict):
        return [("scoring", "must be a map")]
    problems = [(f"scoring.{k}", f"unknown key; one of {', '.join(sorted(_KEYS))}") for k in sec if k not in _KEYS]
    if "timezone" in sec and not (isinstance(sec["timezone"], str) and _OFFSET.match(sec["timezone"])):
        problems.append(("scoring.timezone", "must be a UTC offset like +08:00"))
    for name, rule in (sec.get("points") or {}).items():
        where = f"scoring.points.{name}"
        if name not in RULES:
            problems.append((where, f"unknown rule; one of {', '.join(RULES)}"))
        elif not isinstance(rule, dict) or set(rule) - {"points", "monthly_cap"}:
            problems.append((where, "a rule is a map with points and monthly_cap"))
        else:
            if not _int(rule.get("points", 0)):
                problems.append((f"{where}.points", "must be an integer"))
            if not _int(rule.get("monthly_cap", 1)) or rule.get("monthly_cap", 1) < 1:
                problems.append((f"{where}.monthly_cap", "must be a positive integer"))
    risk = sec.get("risk") or {}
    problems += [(f"scoring.risk.{k}", "unknown key") for k in risk if k not in DEFAULTS["risk"]]
    for sev, w in (risk.get("severity_weights") or {}).items():
        if sev not in SEVERITIES or not _num(w) or w < 0:
            problems.append((f"scoring.risk.severity_weights.{sev}", "a known severity with a weight >= 0"))
    for key in ("overdue_factor", "key_person_weight"):
        if key in risk and (not _num(risk[key]) or risk[key] < 0):
            problems.append((f"scoring.risk.{key}", "must be a number >= 0"))
    thresholds = {**DEFAULTS["risk"]["thresholds"], **(risk.get("thresholds") or {})}
    if set(thresholds) != set(COLOURS[:-1]) or not all(_num(v) and v > 0 for v in thresholds.values()):
        problems.append(("scoring.risk.thresholds", "red, orange, yellow and blue, each a number > 0"))
    elif not thresholds["red"] > thresholds["orange"] > thresholds["yellow"] > thresholds["blue"]:
        problems.append(("scoring.risk.thresholds", "must fall: red > orange > yellow > blue"))
    for key, ok in (("closure", 1), ("on_time", 1), ("satisfaction", 1)):
        w = (sec.get("assessment_weights") or {}).get(key, ok)
        if not _num(w) or w < 0:
            problems.append((f"scoring.assessment_weights.{key}", "must be a number >= 0"))
    grids = {g.code for g in tenant.grids()} if tenant is not None else None
    for key, valid, what in (
        ("key_persons", lambda v: _int(v) and v >= 0, "a count >= 0"),
        ("grid_workers", lambda v: isinstance(v, str) and 0 < len(v) <= 64, "a worker id"),
    ):
        for grid, value in (sec.get(key) or {}).items():
            if grids is not None and grid not in grids:
                problems.append((f"scoring.{key}.{grid}", "is not a grid of this tenant's grid tree"))
            elif not valid(value):
                problems.append((f"scoring.{key}.{grid}", f"must be {what}"))
    return problems


def parse_config(doc: dict, tenant=None) -> Config:
    problems = check_manifest(doc, tenant)
    if problems:
        raise ValueError("; ".join(f"{p}: {r}" for p, r in problems))
    sec = (doc or {}).get("scoring") or {}
    points = {**DEFAULTS["points"], **(sec.get("points") or {})}
    risk = {**DEFAULTS["risk"], **(sec.get("risk") or {})}
    zone = _OFFSET.match(sec.get("timezone", DEFAULTS["timezone"]))
    if zone is None:  # check_manifest refused it already; this says so to the type checker
        raise ValueError("scoring.timezone: must be a UTC offset like +08:00")
    sign, hh, mm = zone.groups()
    offset = timedelta(hours=int(hh), minutes=int(mm)) * (-1 if sign == "-" else 1)
    return Config(
        tz=timezone(offset),
        rules={
            n: Rule(
                int(r.get("points", DEFAULTS["points"][n]["points"])),
                int(r.get("monthly_cap", DEFAULTS["points"][n]["monthly_cap"])),
            )
            for n, r in points.items()
        },
        severity_weights={**DEFAULTS["risk"]["severity_weights"], **(risk.get("severity_weights") or {})},
        overdue_factor=float(risk["overdue_factor"]),
        key_person_weight=float(risk["key_person_weight"]),
        thresholds={**DEFAULTS["risk"]["thresholds"], **(risk.get("thresholds") or {})},
        weights={**DEFAULTS["assessment_weights"], **(sec.get("assessment_weights") or {})},
        key_persons=dict(sec.get("key_persons") or {}),
        grid_workers=dict(sec.get("grid_workers") or {}),
    )


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# -- time ----------------------------------------------------------------------------------
def epoch(value) -> float | None:
    """Epoch seconds from epoch seconds or an RFC 3339 / ISO 8601 string ('Z' or an offset)."""
    if value in (None, ""):
        return None
    if _num(value):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        pass
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def month_of(ts: float, tz: timezone) -> str:
    return datetime.fromtimestamp(ts, tz).strftime("%Y-%m")


def week_of(ts: float, tz: timezone) -> str:
    year, week, _ = datetime.fromtimestamp(ts, tz).isocalendar()
    return f"{year}-W{week:02d}"


def periods(ts: float, tz: timezone) -> tuple[str, str]:
    """The assessment periods a moment falls in: ('month:2026-11', 'week:2026-W47')."""
    return f"month:{month_of(ts, tz)}", f"week:{week_of(ts, tz)}"


# -- applying one event --------------------------------------------------------------------
@dataclass
class Event:
    id: str
    type: str
    time: str | None
    data: dict

    @property
    def at(self) -> float:
        step = self.data.get("step") or {}
        return epoch(step.get("at")) or epoch(self.time) or 0.0


def read_event(headers: dict, body: bytes, routing_key: str | None = None) -> Event:
    """A lifecycle event from its `ce-` headers and JSON body (the case snapshot). A
    work_order.* body that is the bare work order (the skeleton's shape) is wrapped as
    {id: its case, work_order: it}."""
    h = {str(k).lower(): v for k, v in (headers or {}).items()}
    data = json.loads(body)
    if not isinstance(data, dict) or not h.get("ce-id"):
        raise ValueError("a lifecycle event needs a ce-id and a JSON object body")
    kind = h.get("ce-type") or routing_key or ""
    if kind.startswith("work_order.") and "work_order" not in data and "case_id" in data:
        data = {"id": data["case_id"], "work_order": data}
    return Event(str(h["ce-id"]), kind, h.get("ce-time"), data)


@dataclass
class Outcome:
    state: dict
    counters: list = field(default_factory=list)  # (key parts, field, increment)
    duplicate: bool = False
    tz: timezone = UTC


def new_state() -> dict:
    return {"seen": [], "once": [], "depts": {}, "at": 0.0, "supervised_at": 0.0, "cleared_at": 0.0}


def apply(state: dict | None, event: Event, cfg: Config) -> Outcome:
    """What `event` changes for its case. `state` is the case's scoring state (None: first)."""
    state = copy.deepcopy(state) if state else new_state()
    if event.id in state["seen"]:
        return Outcome(state, duplicate=True)
    state["seen"].append(event.id)
    d, at, out = event.data, event.at, Outcome(state, tz=cfg.tz)
    for key in ("grid", "severity", "reporter", "category"):
        if d.get(key) is not None:
            state[key] = d[key]
    if at >= state["at"] and d.get("status"):
        state["at"], state["status"] = at, d["status"]
    if d.get("level"):
        state["level"] = d["level"]
    _label(state, d)
    kind = event.type
    if kind == "case.dispatched":
        _parts(state, d, at, cfg, out)
    elif kind.startswith("work_order.") and d.get("work_order"):
        _work_order(state, kind.split(".", 1)[1], d["work_order"], at, cfg, out)
    elif kind == "case.supervised":
        state["supervised_at"] = max(state["supervised_at"], at)
        _parts(state, d, at, cfg, out)
        # an office's missed escalation item (`item`) is the office's, not the departments'
        for dept in _event_active(state, d) if not d.get("item") else ():
            _count(state, dept, "supervised", 1, out)
        if d.get("level") == "grid":
            _award(state, "overdue", None, at, cfg, out, d)
    elif kind == "case.resolved":
        state["cleared_at"] = max(state["cleared_at"], at)
    elif kind == "case.verified":
        reporter = state.get("reporter") or {}
        if reporter.get("kind") == "grid_worker":
            _award(
                state, "report_verified", reporter.get("id"), epoch(d.get("verified_at")) or at, cfg, out, d, once=True
            )
    elif kind == "case.reopened":
        _parts(state, d, at, cfg, out)
        unhappy = (d.get("step") or {}).get("action") == "not_satisfied" or d.get("satisfied") is False
        for dept in _event_active(state, d):
            _count(state, dept, "reopened", 1, out)
            if unhappy:
                _count(state, dept, "unsatisfied", 1, out)
    elif kind == "case.closed" and "closed" not in state["once"]:
        state["once"].append("closed")
        _parts(state, d, at, cfg, out)
        _closed(state, d, epoch(d.get("closed_at")) or at, cfg, out)
    if kind in TERMINAL_EVENTS:
        state["cleared_at"] = max(state["cleared_at"], at)
    return out


def _parts(state, d: dict, at: float, cfg: Config, out: Outcome) -> None:
    """The work orders an event carries (`work_orders`, or its `work_order`)."""
    for wo in d.get("work_orders") or ([d["work_order"]] if d.get("work_order") else []):
        _part(state, wo, at, cfg, out)


def _part(state, wo: dict, at: float, cfg: Config, out: Outcome) -> None:
    """Learn of a department's part. Its cohort is the periods of its first dispatch; its
    status is the latest event's (by the event's time, whatever order events arrive in)."""
    dept = wo["department"]
    if dept not in state["depts"]:
        state["depts"][dept] = {"at": epoch(wo.get("dispatched_at")) or at, "st": None, "st_at": -1.0}
        _count(state, dept, "received", 1, out)
    part = state["depts"][dept]
    if wo.get("status") and at >= part.get("st_at", -1.0):
        part["st"], part["st_at"] = wo["status"], at


def _work_order(state, action: str, wo: dict, at: float, cfg: Config, out: Outcome) -> None:
    _part(state, {**wo, "status": wo.get("status") or action}, at, cfg, out)
    dept, start = wo["department"], epoch(wo.get("dispatched_at"))
    if action == "accepted":
        done, due = epoch(wo.get("accepted_at")) or at, epoch(wo.get("ack_due"))
        _timed(state, dept, "acked", "ack", start, done, due, out)
    elif action == "resolved":
        done, due = epoch(wo.get("resolved_at")) or at, epoch(wo.get("resolve_due"))
        _timed(state, dept, "resolved", "resolve", start, done, due, out)
    elif action == "returned":
        _count(state, dept, "returned", 1, out)


def _timed(state, dept, counter, prefix, start, done, due, out) -> None:
    _count(state, dept, counter, 1, out)
    if start is not None:
        _count(state, dept, f"{prefix}_seconds", max(0, int(round(done - start))), out)
        _count(state, dept, f"{prefix}_timed", 1, out)
    if due is not None:
        _count(state, dept, f"{prefix}_with_due", 1, out)
        _count(state, dept, f"{prefix}_on_time", int(done <= due), out)


def _closed(state, d: dict, at: float, cfg: Config, out: Outcome) -> None:
    fixed = d.get("outcome") == "fixed"
    satisfied = d.get("satisfied")
    answer = "no_answer" if satisfied is None else ("satisfied" if satisfied else "unsatisfied")
    for dept in _event_active(state, d):
        _count(state, dept, "closed_fixed" if fixed else "closed_not_fixed", 1, out)
        _count(state, dept, answer, 1, out)
        _count(state, dept, "closed_on_time", int(bool(d.get("on_time"))), out)
    if fixed and settled_on_site(d):  # the reporter settled it: their award, not a dispatch's
        reporter = state.get("reporter") or {}
        if reporter.get("kind") == "grid_worker":
            _award(state, "resolved_on_site", reporter.get("id"), at, cfg, out, d, once=True)
    elif fixed and state.get("level") == "grid":
        _award(state, "grid_resolved", None, at, cfg, out, d, once=True)
        if d.get("on_time"):
            _award(state, "on_time", None, at, cfg, out, d, once=True)
    if satisfied is True:
        _award(state, "satisfied", None, at, cfg, out, d, once=True)


def _active(state) -> list[str]:
    return sorted(k for k, v in state["depts"].items() if v.get("st") not in GONE)


def _event_active(state, d: dict) -> list[str]:
    """The departments an event concerns: its own work order, else the active ones it lists,
    else (an event that carries none) those this case's earlier events named."""
    if d.get("work_order"):
        return [d["work_order"]["department"]]
    if d.get("work_orders"):
        return sorted({w["department"] for w in d["work_orders"] if w.get("status") not in GONE})
    return _active(state)


def _count(state, dept: str, name: str, n: int, out: Outcome) -> None:
    if n:
        for period in periods(state["depts"][dept]["at"], out.tz) if dept in state["depts"] else ():
            out.counters.append((("assess", period, dept), name, n))


def worker_of(state: dict, d: dict, cfg: Config) -> str | None:
    """Who a case's points go to: who verified it, else the grid's rostered worker, else the
    reporter when a grid worker reported it. Who verified is read from the event's own snapshot
    only, never remembered from another event: scoring takes case.* and work_order.* from two
    queues and redeliveries come late, so a case.verified may be applied before an earlier
    case.supervised, and the overdue deduction would go to whoever verified in one order and to
    the grid's worker in the other (make chaos's replay of the history found it)."""
    reporter = state.get("reporter") or {}
    return (
        d.get("verified_by")
        or cfg.grid_workers.get(state.get("grid"))
        or (reporter.get("id") if reporter.get("kind") == "grid_worker" else None)
    )


def _award(state, rule: str, worker, at: float, cfg: Config, out: Outcome, d: dict, once: bool = False) -> None:
    if once:
        if rule in state["once"]:
            return
        state["once"].append(rule)
    worker = worker or worker_of(state, d, cfg)
    month = month_of(at, cfg.tz)
    if worker:
        out.counters.append((("points", month), f"{worker}|{rule}", 1))
        if state.get("grid"):  # counted, not overwritten: the same figure in whatever order events come
            out.counters.append((("worker_grids",), f"{worker}|{state['grid']}", 1))
    if state.get("grid"):
        out.counters.append((("grid_points", month), f"{state['grid']}|{rule}", 1))


# -- five-colour risk -----------------------------------------------------------------------
def contribution(state: dict, cfg: Config) -> float:
    """A case's weight in its grid's risk: unresolved cases by severity, more when overdue."""
    if state.get("status") not in UNRESOLVED:
        return 0.0
    weight = float(cfg.severity_weights.get(state.get("severity"), 1))
    overdue = state["supervised_at"] > state["cleared_at"]
    return weight * (cfg.overdue_factor if overdue else 1.0)


def _label(state: dict, d: dict) -> None:
    """A five-colour label the report carried (`risk_colour`, 五色管控: a grid worker's
    assessment of a key person), kept with who gave it; the first one stands."""
    data = d.get("data")
    colour = data.get("risk_colour") if isinstance(data, dict) else None
    if colour in COLOURS and "label" not in state:
        reporter = d.get("reporter") or state.get("reporter") or {}
        state["label"] = {"colour": colour, "by": str(reporter.get("id") or ""), "case_id": str(d.get("id") or "")}


def label_of(state: dict) -> dict | None:
    """The reported label while its case is unresolved: it holds the grid's colour at least that
    high until the case is dealt with (closed, merged or rejected), then it no longer counts."""
    return state.get("label") if state.get("status") in UNRESOLVED else None


def floored(colour: str, labels) -> tuple[str, dict | None]:
    """The grid's colour: the worse of its score's colour and every standing label; and the
    worst label (who said so), or None when no label stands."""
    worst = min(labels, key=lambda x: (COLOURS.index(x["colour"]), x["case_id"]), default=None)
    if worst is not None and COLOURS.index(worst["colour"]) < COLOURS.index(colour):
        colour = worst["colour"]
    return colour, worst


def grid_score(contributions, grid: str, cfg: Config) -> float:
    return float(sum(contributions)) + cfg.key_person_weight * cfg.key_persons.get(grid, 0)


def colour_of(score: float, cfg: Config) -> str:
    for colour in COLOURS[:-1]:
        if score >= cfg.thresholds[colour]:
            return colour
    return "green"


# -- figures --------------------------------------------------------------------------------
def worker_points(counts: dict, adjustments: dict, cfg: Config) -> dict[str, dict]:
    """{worker: {points, rules: {rule: capped points}, adjusted}} from `worker|rule` counts."""
    out: dict[str, dict] = {}
    for key, n in counts.items():
        worker, rule = key.rsplit("|", 1)
        if rule in cfg.rules:
            out.setdefault(worker, {"rules": {}, "adjusted": 0})["rules"][rule] = cfg.rules[rule].total(int(n))
    for worker, pts in adjustments.items():
        out.setdefault(worker, {"rules": {}, "adjusted": 0})["adjusted"] = int(pts)
    for row in out.values():
        row["points"] = sum(row["rules"].values()) + row["adjusted"]
    return out


def grid_points(counts: dict, cfg: Config) -> dict[str, int]:
    """{grid: points its cases earned}: uncapped (the caps bound a worker, not a grid)."""
    out: dict[str, int] = {}
    for key, n in counts.items():
        grid, rule = key.rsplit("|", 1)
        if rule in cfg.rules:
            out[grid] = out.get(grid, 0) + int(n) * cfg.rules[rule].points
    return out


def assessment(c: dict, cfg: Config) -> dict:
    """Rates for one department and period from its counters (cohort: the work orders it
    received in the period). A rate with nothing to divide by is None."""
    g = lambda k: int(c.get(k, 0))  # noqa: E731
    handled = g("received") - g("returned")
    answered = g("satisfied") + g("unsatisfied")
    row: dict[str, Any] = {
        k: g(k)
        for k in (
            "received",
            "returned",
            "closed_fixed",
            "closed_not_fixed",
            "acked",
            "resolved",
            "satisfied",
            "unsatisfied",
            "no_answer",
            "reopened",
            "supervised",
        )
    }
    row.update(
        closure_rate=rate(g("closed_fixed"), handled),
        not_fixed_rate=rate(g("closed_not_fixed"), handled),
        on_time_rate=rate(g("resolve_on_time"), g("resolve_with_due")),
        ack_on_time_rate=rate(g("ack_on_time"), g("ack_with_due")),
        satisfaction_rate=rate(g("satisfied"), answered),
        return_rate=rate(g("returned"), g("received")),
        avg_ack_seconds=rate(g("ack_seconds"), g("ack_timed"), 1),
        avg_resolve_seconds=rate(g("resolve_seconds"), g("resolve_timed"), 1),
    )
    parts = [
        (cfg.weights[k], row[f"{k}_rate"])
        for k in ("closure", "on_time", "satisfaction")
        if row[f"{k}_rate"] is not None and cfg.weights[k] > 0
    ]
    total = sum(w for w, _ in parts)
    row["score"] = round(100 * sum(w * r for w, r in parts) / total, 2) if total else None
    return row


def rate(num: int, den: int, digits: int = 4):
    """num ÷ den rounded (4 digits: a percentage with two decimals), None with nothing to divide by.
    Every rate OneGrid reports is made here: the assessment's and the monthly report's."""
    return round(num / den, digits) if den > 0 else None


def home_grids(counts: dict) -> dict[str, str]:
    """Each worker's grid: where most of their points were earned (ties: the lower code).
    `counts` maps "<worker>|<grid>" to the awards there."""
    best: dict[str, tuple[int, str]] = {}
    for key, n in counts.items():
        worker, grid = key.rsplit("|", 1)
        n = int(n)
        if worker not in best or (n, best[worker][1]) > (best[worker][0], grid):
            best[worker] = (n, grid)
    return {w: g for w, (_, g) in best.items()}


def rank(scores: dict, limit: int | None = None) -> list[dict]:
    """Standard competition ranking (1, 2, 2, 4), highest first, ties by name."""
    rows = sorted(((v, k) for k, v in scores.items() if v is not None), key=lambda x: (-x[0], x[1]))
    out, prev, place = [], None, 0
    for i, (value, name) in enumerate(rows, 1):
        if value != prev:
            place, prev = i, value
        out.append({"rank": place, "name": name, "score": value})
    return out[:limit] if limit else out
