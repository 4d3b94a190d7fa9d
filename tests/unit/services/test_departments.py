"""departments through fakes of its ports: a department lists its queue and acts on its own
work orders (accept, resolve), is refused what the state or ownership does not allow, and
the lifecycle events are announced; the service counts what was done and what refused."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from marshmallow import ValidationError
from prometheus_client import REGISTRY

from onegrid.app.departments import Action, UnknownDepartment
from onegrid.app.routing import Dispatched
from onegrid.domain.lifecycle import TransitionRefused
from services.departments.service import DepartmentsService
from tests.unit.helpers import QINLING, registry

from .fakes import County, grid_report

GRID = registry().tenants[QINLING].grids()[0].code
MR = "market_regulation"


@pytest.fixture
def county() -> County:
    return County(registry().tenants[QINLING], registry())


def _work_order(county: County, event_id: str = "d-1", **report) -> dict:
    """A case routed to market regulation (illegal business, minor); its work order."""
    out = county.intake().ingest(grid_report(county, event_id, grid=GRID, **report), "governance")
    assert out.case_id is not None
    routed = county.routing().case_registered(out.case_id)
    assert isinstance(routed, Dispatched)
    [wo] = routed.recorded
    return wo


def _act(county: County, wo: dict, action: str, department: str = MR, **body) -> dict:
    departments = county.departments()
    return departments.act(department, wo["id"], departments.request(department, action, {"actor": "li", **body}))


def test_a_department_lists_its_queue_a_page_at_a_time(county):
    orders = [_work_order(county, f"d-{i}", occurred_at=f"2024-05-0{i + 1}T08:00:00+08:00") for i in range(3)]
    page = county.departments().list_work_orders(MR, offset=1, limit=1)
    assert page == {"department": MR, "total": 3, "offset": 1, "work_orders": [orders[1]]}
    assert county.departments().list_work_orders(MR, offset=-5, limit=10**6)["offset"] == 0  # clamped
    with pytest.raises(UnknownDepartment, match="not enabled"):
        county.departments().list_work_orders("space_agency")


def test_accept_then_resolve_takes_the_case_to_resolved(county):
    wo = _work_order(county)
    accepted = _act(county, wo, "accept")
    assert accepted == {"work_order": {**accepted["work_order"], "status": "accepted"}, "case_status": "in_progress"}
    resolved = _act(county, wo, "resolve", note="vendor licensed", evidence_urls=["https://evidence.invalid/a.jpg"])
    assert (resolved["work_order"]["status"], resolved["case_status"]) == ("resolved", "resolved")
    assert county.departments().list_work_orders(MR)["total"] == 0  # off the queue
    assert county.outbox.announced == [["e-1"], ["e-2"]]
    _, wo_id, dept, action, actor, note, evidence, extension = county.work.calls[-1]
    assert (wo_id, dept, action, actor, note) == (wo["id"], MR, "resolve", "li", "vendor licensed")
    assert (evidence, extension) == (["https://evidence.invalid/a.jpg"], None)


def test_what_the_state_or_ownership_does_not_allow_is_refused(county):
    wo = _work_order(county)
    with pytest.raises(TransitionRefused, match="is dispatched; cannot resolve"):
        _act(county, wo, "resolve", note="done")
    with pytest.raises(TransitionRefused, match=f"belongs to {MR}"):
        _act(county, wo, "accept", department="public_security")
    with pytest.raises(LookupError, match="no work order"):
        _act(county, {"id": "w-nothing-here"}, "accept")
    assert not county.outbox.announced and county.store.work_order(wo["id"])["status"] == "dispatched"


def test_a_request_is_checked_before_anything_is_done(county):
    departments = county.departments()
    with pytest.raises(ValidationError, match="note"):
        departments.request(MR, "return", {"actor": "li"})
    with pytest.raises(ValidationError, match="extension"):
        departments.request(MR, "request_extension", {"actor": "li", "note": "waiting for a permit"})
    with pytest.raises(ValidationError, match="actor"):
        departments.request(MR, "accept", {})
    with pytest.raises(UnknownDepartment):
        departments.request("space_agency", "accept", {"actor": "li"})
    asked = departments.request(MR, "request_extension", {"actor": "li", "note": "a permit", "extension": "2h"})
    assert asked == Action("request_extension", "li", "a permit", (), 7200)
    assert not county.work.calls


def test_a_case_with_its_work_orders_and_timeline(county):
    wo = _work_order(county)
    case = county.departments().get_case(wo["case_id"])
    assert case["work_orders"] == [wo] and [s["action"] for s in case["timeline"]] == ["register", "dispatch"]
    with pytest.raises(LookupError, match="no case"):
        county.departments().get_case("c-0000000000000000")


# -- the entrypoint: its metrics ---------------------------------------------------------


def _service(county: County) -> Any:
    svc: Any = DepartmentsService()  # its dependencies: the fakes
    svc.ctx = SimpleNamespace(tenant=county.tenant, registry=county.registry)
    svc.store, svc.work, svc.bus = county.store, county.work, SimpleNamespace()
    return svc


def _actions(action: str, outcome: str) -> float:
    labels = {"tenant": QINLING, "department": MR, "action": action, "outcome": outcome}
    return REGISTRY.get_sample_value("onegrid_work_order_actions_total", labels) or 0.0


def test_the_service_counts_actions_done_and_refused_but_not_invalid_requests(county, monkeypatch):
    import services.departments.service as module

    monkeypatch.setattr(module, "OutboxAnnouncer", lambda bus, store, source: county.outbox)
    svc, wo = _service(county), _work_order(county)
    before = {k: _actions(*k) for k in [("accept", "ok"), ("accept", "refused"), ("resolve", "refused")]}
    assert svc.accept(MR, wo["id"], "li")["work_order"]["status"] == "accepted"
    with pytest.raises(TransitionRefused):
        svc.accept(MR, wo["id"], "li")  # accepted already
    with pytest.raises(ValidationError):
        svc.resolve(MR, wo["id"], "li", "")  # no note: invalid, not refused
    assert {k: _actions(*k) - v for k, v in before.items()} == {
        ("accept", "ok"): 1,
        ("accept", "refused"): 1,
        ("resolve", "refused"): 0,
    }
