"""Cases and work orders: ids, transitions, and the case's status."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from onegrid.domain.cases import (CASE_STATES, WORK_ORDER_STATES, WORK_ORDER_TRANSITIONS, Step, TransitionRefused,
                                  act, case_id, case_status, new_case, new_work_order, work_order_id)
from onegrid.domain.intake import Accepted, admit
from onegrid.domain.routing import route

from .helpers import QINLING, binary, envelope_for, registry, sample_data

ACTIONS = ("accept", "return", "resolve")
TERMINAL = ("resolved", "returned")


def _wo(status="dispatched", department="water", id="w-abc-water"):
    return {"id": id, "case_id": "c-abc", "department": department, "status": status}


# -- ids --------------------------------------------------------------------------------

def test_case_id_is_deterministic():
    key = "water|/src|evt-1"
    assert case_id(key) == case_id(key)
    assert case_id(key).startswith("c-") and len(case_id(key)) == 18
    int(case_id(key)[2:], 16)


def test_case_ids_differ_for_different_keys():
    keys = [f"{d}|/src|evt-{i}" for d in ("water", "health") for i in range(500)]
    assert len({case_id(k) for k in keys}) == len(keys)
    assert case_id("water|/a|1") != case_id("water|/a|2") != case_id("health|/a|1")


def test_work_order_id():
    cid = case_id("water|/src|evt-1")
    assert work_order_id(cid, "water") == f"w-{cid[2:]}-water"
    assert work_order_id(cid, "water") != work_order_id(cid, "health")
    assert work_order_id(cid, "water") == work_order_id(cid, "water")


# -- records ------------------------------------------------------------------------------

def test_new_case_and_work_order_from_an_accepted_event():
    reg = registry()
    tenant = reg.tenants[QINLING]
    contract = reg.events[("water.flood_risk_reported", 1)]
    data = sample_data(contract, tenant, severity="major")
    accepted = admit(binary(envelope_for(contract, tenant), data), tenant, reg)
    assert isinstance(accepted, Accepted)
    case = new_case(accepted, "2024-05-01T00:00:00Z", "amqp")
    assert case["id"] == case_id(accepted.dedup_key)
    assert (case["status"], case["category"], case["severity"], case["grid"]) == (
        "registered", "water_hazard", "major", data["grid"])
    assert case["digest"] == accepted.digest and case["data"] == data and case["department"] == "water"
    assert case["status"] in CASE_STATES
    decision = route(tenant, case["category"], case["severity"], case["grid"])
    order = new_work_order(case, decision.departments[0], decision, decision.reason, "2024-05-01T00:00:01Z")
    assert order["id"] == work_order_id(case["id"], "water")
    assert (order["status"], order["level"], order["unit"], order["rule"]) == (
        "dispatched", "street", tenant.ancestor(case["grid"], "street").code, decision.rule)


def test_step_as_dict_drops_empty_values():
    step = Step("2024-05-01T00:00:00Z", "water", "accept", "dispatched", "accepted")
    assert step.as_dict() == {"at": "2024-05-01T00:00:00Z", "actor": "water", "action": "accept",
                              "from_state": "dispatched", "to_state": "accepted"}
    assert Step("t", "a", "register", None, "registered", note="n", work_order="w").as_dict()["work_order"] == "w"


# -- transitions ------------------------------------------------------------------------

@pytest.mark.parametrize("state,action,nxt", sorted((s, a, n) for (s, a), n in WORK_ORDER_TRANSITIONS.items()))
def test_allowed_transitions(state, action, nxt):
    assert act(_wo(state), "water", action) == nxt


def test_allowed_transitions_are_exactly_these():
    assert WORK_ORDER_TRANSITIONS == {
        ("dispatched", "accept"): "accepted", ("dispatched", "return"): "returned",
        ("accepted", "return"): "returned", ("accepted", "resolve"): "resolved"}


@pytest.mark.parametrize("state,action", [(s, a) for s in WORK_ORDER_STATES for a in ACTIONS + ("close",)
                                          if (s, a) not in WORK_ORDER_TRANSITIONS])
def test_refused_transitions_name_the_work_order_state_and_action(state, action):
    with pytest.raises(TransitionRefused) as info:
        act(_wo(state, id="w-123-water"), "water", action)
    message = str(info.value)
    assert "w-123-water" in message and state in message and action in message


def test_another_departments_work_order_is_refused():
    with pytest.raises(TransitionRefused) as info:
        act(_wo("dispatched", department="water", id="w-9-water"), "health", "accept")
    assert "w-9-water" in str(info.value) and "water" in str(info.value) and "health" in str(info.value)


@pytest.mark.parametrize("state", ["dispatched", "accepted"])
def test_governance_cannot_return(state):
    with pytest.raises(TransitionRefused) as info:
        act(_wo(state, department="governance", id="w-1-governance"), "governance", "return")
    assert "w-1-governance" in str(info.value)
    # ...but it can accept and resolve its own
    assert act(_wo("dispatched", department="governance"), "governance", "accept") == "accepted"
    assert act(_wo("accepted", department="governance"), "governance", "resolve") == "resolved"


def test_act_does_not_mutate_the_work_order():
    wo = _wo("dispatched")
    act(wo, "water", "accept")
    assert wo["status"] == "dispatched"


# -- case status ------------------------------------------------------------------------

def _orders(*states):
    return [{"status": s} for s in states]


@pytest.mark.parametrize("states,expected", [
    ((), "dispatched"),
    (("dispatched",), "dispatched"),
    (("accepted",), "dispatched"),
    (("resolved",), "resolved"),
    (("resolved", "resolved"), "resolved"),
    (("resolved", "accepted"), "dispatched"),
    (("resolved", "returned"), "resolved"),
    (("returned", "resolved", "returned"), "resolved"),
    (("returned",), "dispatched"),
    (("returned", "returned"), "dispatched"),
    (("returned", "dispatched"), "dispatched"),
])
def test_case_status(states, expected):
    assert case_status(_orders(*states)) == expected


# -- random action sequences ------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["water", "governance"]),
       st.lists(st.tuples(st.sampled_from(["water", "governance", "health"]), st.sampled_from(ACTIONS)),
                max_size=12))
def test_action_sequences_stay_in_known_states_and_terminal_states_stick(owner, steps):
    wo = _wo("dispatched", department=owner, id=f"w-x-{owner}")
    for actor, action in steps:
        before = wo["status"]
        try:
            wo["status"] = act(wo, actor, action)
        except TransitionRefused as exc:
            assert wo["id"] in str(exc)
            continue
        assert actor == owner
        assert before not in TERMINAL, f"{before} is terminal but {action} moved it"
        assert wo["status"] in WORK_ORDER_STATES
        assert (before, action) in WORK_ORDER_TRANSITIONS
        assert not (owner == "governance" and action == "return")


class WorkOrderMachine(RuleBasedStateMachine):
    """A work order driven by any department and action; the model tracks what must happen."""

    def __init__(self):
        super().__init__()
        self.wo = _wo("dispatched", department="water", id="w-m-water")
        self.history = ["dispatched"]

    @rule(actor=st.sampled_from(["water", "health", "governance"]), action=st.sampled_from(ACTIONS))
    def do(self, actor, action):
        before = self.wo["status"]
        expected = WORK_ORDER_TRANSITIONS.get((before, action)) if actor == "water" else None
        try:
            nxt = act(self.wo, actor, action)
        except TransitionRefused:
            assert expected is None
            return
        assert nxt == expected
        self.wo["status"] = nxt
        self.history.append(nxt)

    @invariant()
    def known_state(self):
        assert self.wo["status"] in WORK_ORDER_STATES

    @invariant()
    def terminal_states_are_last(self):
        for state in self.history[:-1]:
            assert state not in TERMINAL


WorkOrderMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=15, deadline=None)
TestWorkOrderMachine = WorkOrderMachine.TestCase
