"""The case and work-order state machines, including property-based runs of random actions."""

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from onegrid.domain import lifecycle as lc


def _wo(status="dispatched", department="water", id="w-abc-water"):
    return {"id": id, "case_id": "c-abc", "department": department, "status": status}


def _case(status="registered", id="c-abc"):
    return {"id": id, "status": status}


def test_the_happy_path_from_report_to_closed():
    case, wo = _case(), _wo()
    case["status"] = lc.case_next(case, "dispatch")
    wo["status"] = lc.work_order_next(wo, "accept", "water")
    assert lc.case_after_parts(case["status"], [wo]) == "start"
    case["status"] = lc.case_next(case, "start")
    wo["status"] = lc.work_order_next(wo, "resolve", "water")
    assert lc.case_after_parts(case["status"], [wo]) == "resolve"
    for action in ("resolve", "verify", "satisfied"):
        case["status"] = lc.case_next(case, action)
    assert case["status"] == "closed"


def test_refusals_name_the_record_its_state_and_the_action():
    with pytest.raises(lc.TransitionRefused, match=r"case c-9 is resolved; cannot reject \(allowed: .*verify"):
        lc.case_next(_case("resolved", "c-9"), "reject")
    with pytest.raises(lc.TransitionRefused, match="work order w-1 of case c-abc is dispatched; cannot resolve"):
        lc.work_order_next(_wo(id="w-1"), "resolve")
    with pytest.raises(lc.TransitionRefused, match="belongs to water, not health"):
        lc.work_order_next(_wo(), "accept", "health")
    with pytest.raises(lc.TransitionRefused, match="command centre cannot return"):
        lc.work_order_next(_wo(department="governance"), "return", "governance")
    with pytest.raises(lc.TransitionRefused, match="cannot anything|allowed: nothing"):
        lc.case_next(_case("closed"), "verify")


def test_closed_not_fixed_is_reachable_from_every_open_state_and_terminal_states_are_final():
    for state in lc.OPEN_CASE:
        assert lc.case_next(_case(state), "close_not_fixed") == "closed"
    for state in ("closed", "rejected"):
        assert lc.allowed(lc.CASE_TRANSITIONS, state) == []
    # a merge is final for the machines; only a person undoes it (docs/duplicates.md)
    assert lc.allowed(lc.CASE_TRANSITIONS, "merged") == ["unmerge"]


def test_tables_only_name_known_states():
    for (state, _), nxt in lc.CASE_TRANSITIONS.items():
        assert state in lc.CASE_STATES and nxt in lc.CASE_STATES
    for (state, _), nxt in lc.WORK_ORDER_TRANSITIONS.items():
        assert state in lc.WORK_ORDER_STATES and nxt in lc.WORK_ORDER_STATES


def test_joint_dispatch_resolves_only_when_every_active_part_is_resolved():
    parts = [_wo("resolved", id="a"), _wo("accepted", id="b"), _wo("returned", id="c")]
    assert lc.case_after_parts("in_progress", parts) is None
    parts[1]["status"] = "resolved"
    assert lc.case_after_parts("in_progress", parts) == "resolve"
    assert lc.case_after_parts("dispatched", [_wo("returned")]) is None  # nobody holds it yet
    assert lc.case_after_parts("in_progress", [_wo("cancelled")]) is None


CASE_ACTIONS = sorted({a for (_, a) in lc.CASE_TRANSITIONS} - {"start", "resolve"})
DEPT_ACTIONS = list(lc.DEPARTMENT_ACTIONS) + ["grant_extension", "deny_extension"]


class CaseLife(RuleBasedStateMachine):
    """A case with parts, driven by random actions through the same rules the services use;
    refused actions change nothing. At the end it is closed by the command centre."""

    def __init__(self):
        super().__init__()
        self.case = _case()
        self.parts: list[dict] = []

    def _follow(self):
        while (action := lc.case_after_parts(self.case["status"], self.parts)) is not None:
            self.case["status"] = lc.case_next(self.case, action)

    @rule(n=st.integers(1, 3))
    def dispatch(self, n):
        try:
            self.case["status"] = lc.case_next(self.case, "dispatch")
        except lc.TransitionRefused:
            return
        if not self.parts:
            self.parts = [_wo(id=f"w{i}", department=f"d{i}") for i in range(n)]
        for wo in self.parts:
            if wo["status"] == "resolved":
                wo["status"] = lc.work_order_next(wo, "reopen")

    @rule(i=st.integers(0, 2), action=st.sampled_from(DEPT_ACTIONS))
    def department_acts(self, i, action):
        if i >= len(self.parts) or self.case["status"] in lc.TERMINAL_CASE:
            return
        wo = self.parts[i]
        try:
            wo["status"] = lc.work_order_next(wo, action, wo["department"])
        except lc.TransitionRefused:
            return
        self._follow()

    @rule(action=st.sampled_from(CASE_ACTIONS))
    def case_acts(self, action):
        try:
            nxt = lc.case_next(self.case, action)
        except lc.TransitionRefused:
            return
        if nxt in lc.TERMINAL_CASE:
            for wo in self.parts:
                if "cancel" in [a for (s, a) in lc.WORK_ORDER_TRANSITIONS if s == wo["status"]]:
                    wo["status"] = lc.work_order_next(wo, "cancel")
        self.case["status"] = nxt

    @invariant()
    def states_are_known(self):
        assert self.case["status"] in lc.CASE_STATES
        assert all(w["status"] in lc.WORK_ORDER_STATES for w in self.parts)

    @invariant()
    def a_terminal_case_holds_no_open_part(self):
        if self.case["status"] in lc.TERMINAL_CASE:
            assert all(w["status"] not in ("dispatched", "accepted", "extension_requested") for w in self.parts)

    def teardown(self):
        if self.case["status"] not in lc.TERMINAL_CASE:
            self.case["status"] = lc.case_next(self.case, "close_not_fixed")
        assert [self.case["status"] in lc.TERMINAL_CASE].count(True) == 1


TestCaseLife = CaseLife.TestCase
TestCaseLife.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
