"""Cases and work orders: ids and records (the state machines: test_lifecycle.py)."""

from onegrid.domain.cases import Case, Step, WorkOrder, case_id, new_case, new_work_order, work_order_id
from onegrid.domain.intake import Accepted, admit
from onegrid.domain.lifecycle import CASE_STATES
from onegrid.domain.routing import route

from .helpers import QINLING, binary, envelope_for, registry, sample_data

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
        "registered",
        "water_hazard",
        "major",
        data["grid"],
    )
    assert case["digest"] == accepted.digest and case["data"] == data and case["department"] == "water"
    assert case["status"] in CASE_STATES
    decision = route(tenant, case["category"], case["severity"], case["grid"])
    order = new_work_order(
        case, decision.departments[0], decision, decision.reason, "2024-05-01T00:00:01Z", (600.0, 86400.0), 1714521601.0
    )
    assert order["id"] == work_order_id(case["id"], "water")
    assert (order["status"], order["level"], order["unit"], order["rule"]) == (
        "dispatched",
        "street",
        tenant.ancestor(case["grid"], "street").code,
        decision.rule,
    )
    assert (order["ack_due"], order["resolve_due"]) == (1714521601.0 + 600, 1714521601.0 + 86400)
    assert case["at"] == 1714521600.0 and case["reopen_count"] == 0
    # the typed records are the same records: read back, they give exactly these dicts
    assert Case.from_record(case).to_record() == case and list(Case.from_record(case).to_record()) == list(case)
    assert (
        WorkOrder.from_record(order).to_record() == order
        and WorkOrder.from_record(order).resolve_due == 1714521601.0 + 86400
    )


def test_step_as_dict_drops_empty_values():
    step = Step("2024-05-01T00:00:00Z", "water", "accept", "dispatched", "accepted")
    assert step.as_dict() == {
        "at": "2024-05-01T00:00:00Z",
        "actor": "water",
        "action": "accept",
        "from_state": "dispatched",
        "to_state": "accepted",
    }
    assert Step("t", "a", "register", None, "registered", note="n", work_order="w").as_dict()["work_order"] == "w"
