"""Reconciling a run: every published event must end as exactly one case (a deliberate
duplicate as a case merged into its primary), or in quarantine with the reason it was sent to
provoke. Pure: the caller gathers what the store holds."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Reconciliation:
    published: int = 0
    cases_expected: int = 0
    cases_found: int = 0
    quarantine_expected: Counter = field(default_factory=Counter)
    quarantine_found: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def reconcile(planned, case_of: dict, reason_of: dict) -> Reconciliation:
    """`planned`: items with event_id, expect ("case", "merged" or a reason), department and
    duplicate_of;
    `case_of`: event id -> case record found; `reason_of`: event id -> quarantine reasons found."""
    rec = Reconciliation(published=len(planned))
    for p in planned:
        case, reasons = case_of.get(p.event_id), reason_of.get(p.event_id, [])
        if p.expect in ("case", "merged"):
            rec.cases_expected += 1
            original = case_of.get(getattr(p, "duplicate_of", None)) or {}
            if (
                p.expect == "merged"
                and case is not None
                and case["status"] != "merged"
                and original.get("merged_into") != case["id"]
            ):  # the two may arrive in either order
                rec.problems.append(
                    f"{p.event_id}: a duplicate of {p.duplicate_of}, but neither case was merged "
                    f"into the other ({case['id']} is {case['status']})"
                )
            if case is None:
                rec.problems.append(f"{p.event_id}: expected a case, found none (quarantined: {reasons or 'no'})")
            elif case["department"] != p.department:
                rec.problems.append(f"{p.event_id}: case {case['id']} is {case['department']}'s, not {p.department}'s")
            else:
                rec.cases_found += 1
            if reasons and case is not None:
                rec.problems.append(f"{p.event_id}: made a case and was quarantined too ({reasons})")
        else:
            rec.quarantine_expected[p.expect] += 1
            if case is not None:
                rec.problems.append(f"{p.event_id}: expected quarantine as {p.expect}, made case {case['id']}")
            if reasons == [p.expect]:
                rec.quarantine_found[p.expect] += 1
            else:
                rec.problems.append(f"{p.event_id}: expected one quarantine entry {p.expect!r}, found {reasons}")
    return rec
