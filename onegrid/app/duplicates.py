"""The command centre's duplicates desk: the suggestions routing left (likely duplicates it did
not merge on its own), confirmed (merged) or dismissed (distinct, never suggested again), and
un-merging a case merged by mistake. Every decision is idempotent: the first one stands, and
asking again answers what it did."""

from __future__ import annotations

from dataclasses import dataclass, field

from onegrid.app.inputs import DuplicateDecision, Page
from onegrid.app.ports import CaseReader, Casework, Clock, DuplicateBook, Outbox
from onegrid.domain.duplicates import DECISIONS, Suggestion
from onegrid.domain.lifecycle import TransitionRefused
from onegrid.kernel import metrics
from onegrid.kernel.clock import SystemClock
from onegrid.kernel.tenant import Tenant


@dataclass
class DuplicateDesk:
    tenant: Tenant
    work: Casework
    cases: CaseReader
    book: DuplicateBook
    announcer: Outbox
    clock: Clock = field(default_factory=SystemClock)

    def suggestions(self, offset: int = 0, limit: int = 50) -> dict:
        """The open suggestions (oldest first), each with both cases' summaries, and the counts."""
        page = Page().load({"offset": offset, "limit": limit})
        total, found = self.book.open(page["offset"], page["limit"])
        rows = [{**s.as_dict(), "case": self._brief(s.case_id), "primary": self._brief(s.primary_id)} for s in found]
        return {**page, "total": total, "suggestions": rows, "counts": self.book.counts()}

    def confirm(self, case_id: str, actor: str, note: str = "") -> dict:
        """The case is merged into the suggested primary (its own parts, if any, cancelled)."""
        req, s = self._open(case_id, actor, note, "confirm")
        case = self.cases.case(case_id) or {}
        if s.status == "open":
            if not (case.get("status") == "merged" and case.get("merged_into") == s.primary_id):  # not a retry
                out = self.work.merge(case_id, s.primary_id, req["actor"], req["note"] or "confirmed duplicate")
                self.announcer.announce(out.outbox)
            self._decide(s, "confirm", req)
        return {"suggestion": self._current(case_id), "case": self.cases.case(case_id)}

    def dismiss(self, case_id: str, actor: str, note: str = "") -> dict:
        """Not the same incident: the two stay apart and are never suggested again."""
        req, s = self._open(case_id, actor, note, "dismiss")
        if s.status == "open":
            self._decide(s, "dismiss", req)
        return {"suggestion": self._current(case_id), "case": self.cases.case(case_id)}

    def unmerge(self, case_id: str, actor: str, note: str = "") -> dict:
        """A merged case becomes its own again (routed as it would have been); `unmerged` is
        False when it was un-merged already."""
        req = DuplicateDecision().load({"actor": actor, "note": note})
        case = self.cases.case(case_id)
        if case is None:
            raise LookupError(f"no case {case_id} in {self.tenant.id}")
        if case["status"] != "merged":
            if case.get("unmerged_from"):  # asked again: done already
                self.book.mark_distinct(case_id, case["unmerged_from"])
                return {"case": case, "unmerged": False}
            raise TransitionRefused(f"case {case_id} is {case['status']}; only a merged case can be un-merged")
        out = self.work.unmerge(case_id, req["actor"], req["note"])
        self.book.mark_distinct(case_id, case["merged_into"])
        self.announcer.announce(out.outbox)
        metrics.DUPLICATES.labels(self.tenant.id, "unmerged").inc()
        return {"case": out.case, "unmerged": True}

    # --
    def _open(self, case_id: str, actor: str, note: str, decision: str) -> tuple[dict, Suggestion]:
        """The request checked and the case's suggestion; refused when the other decision was taken."""
        req = DuplicateDecision().load({"actor": actor, "note": note})
        s = self.book.suggestion(case_id)
        if s is None:
            raise LookupError(f"no duplicate suggestion for case {case_id} in {self.tenant.id}")
        if s.status not in ("open", DECISIONS[decision]):
            raise TransitionRefused(f"the suggestion for {case_id} was {s.status} by {s.decided_by}; cannot {decision}")
        return req, s

    def _decide(self, s: Suggestion, decision: str, req: dict) -> None:
        if self.book.decide(s.decided(decision, req["actor"], self.clock.now_iso(), req["note"])):
            metrics.DUPLICATES.labels(self.tenant.id, DECISIONS[decision]).inc()

    def _current(self, case_id: str) -> dict:
        s = self.book.suggestion(case_id)
        return s.as_dict() if s else {}

    def _brief(self, case_id: str) -> dict:
        c = self.cases.case(case_id) or {}
        keys = ("id", "status", "category", "grid", "summary", "location", "occurred_at", "merged_into")
        return {k: c.get(k) for k in keys if k in c}
