"""routing through fakes of its ports: a registered case is dispatched to the departments
its rule names (or the command centre), a duplicate merged into its primary, a returned work
order sent to the next alternate; and an event's whole path from intake's entrypoint to a
department's queue, down the layers."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import REGISTRY

from onegrid.adapters.nameko.reliable import ATTEMPT, Inbound
from onegrid.app.routing import Dispatched, Merged
from onegrid.kernel import topology
from onegrid.kernel.tenant import COMMAND_CENTRE
from services.intake.service import IntakeService
from services.routing.service import RoutingService
from tests.unit.helpers import QINLING, registry

from .fakes import County, grid_report

GRIDS = [g.code for g in registry().tenants[QINLING].grids()]


@pytest.fixture
def county() -> County:
    return County(registry().tenants[QINLING], registry())


def _registered(county: County, event_id: str, **report) -> str:
    out = county.intake().ingest(grid_report(county, event_id, **report), "governance")
    assert out.outcome == "registered" and out.case_id, out
    county.bus.published.clear()
    return out.case_id


def test_a_case_goes_to_the_departments_its_rule_names(county):
    cid = _registered(county, "r-1", category="illegal_business", severity="minor", grid=GRIDS[0])
    result = county.routing().case_registered(cid)
    assert isinstance(result, Dispatched)
    [wo] = result.recorded
    assert (wo["department"], wo["level"], wo["reason"], wo["rule"]) == ("market_regulation", "grid", "rule", 4)
    assert wo["unit"] == GRIDS[0] and wo["ack_due"] < wo["resolve_due"]
    case = county.store.case(cid)
    assert (case["status"], case["level"]) == ("dispatched", "grid")
    assert county.store.department_queue("market_regulation") == (1, [wo])
    order, dispatched = county.bus.published
    assert (order.exchange, order.routing_key, order.mandatory) == (topology.WORKORDERS, "market_regulation", True)
    assert order.env.type == "work_order.dispatched" and order.env.id == f"{wo['id']}.dispatched"
    assert order.data == wo
    assert (dispatched.exchange, dispatched.env.type, dispatched.mandatory) == (
        topology.EVENTS,
        "case.dispatched",
        False,
    )
    assert dispatched.data["status"] == "dispatched" and dispatched.data["work_orders"] == [wo]
    assert dispatched.env.id == f"{cid}.dispatched.{wo['id']}" and dispatched.env.source == f"/{QINLING}/routing"


def test_a_case_no_rule_covers_goes_to_the_command_centre(county):
    cid = _registered(county, "r-2", category="other", severity="general", grid=GRIDS[1])
    [wo] = county.routing().case_registered(cid).recorded
    assert (wo["department"], wo["level"], wo["reason"]) == (COMMAND_CENTRE, "county", "no_rule_matched")
    assert wo["unit"] == county.tenant.root


def test_a_redelivery_records_nothing_and_publishes_again_only_if_it_may_have_been_lost(county):
    cid = _registered(county, "r-3", category="illegal_production", severity="major", grid=GRIDS[2])
    first = county.routing().case_registered(cid)
    assert sorted(w["department"] for w in first.recorded) == ["emergency_management", "market_regulation"]
    sent = [(p.env.id, p.routing_key) for p in county.bus.published]
    county.bus.published.clear()

    quiet = county.routing().case_registered(cid, again=False)
    assert quiet.recorded == [] and not county.bus.published
    again = county.routing().case_registered(cid, again=True)  # a retry: the first may have died before publishing
    assert again.recorded == [] and [(p.env.id, p.routing_key) for p in county.bus.published] == sent
    assert len(county.store.work_orders_of(cid)) == 2


TWIN = {"summary": "秦岭路12号门前聚集人员争吵", "location": {"lat": 34.7512, "lon": 113.6221}}


def test_a_duplicate_is_merged_into_its_primary_not_dispatched(county):
    primary = _registered(county, "r-4", category="public_order", grid=GRIDS[3], **TWIN)
    county.routing().case_registered(primary)
    county.bus.published.clear()
    twin = _registered(
        county, "r-5", category="public_order", grid=GRIDS[3], occurred_at="2024-05-01T08:10:00+08:00", seed=7, **TWIN
    )
    result = county.routing().case_registered(twin)
    assert result == Merged(twin, primary)
    assert county.work.calls == [("merge", twin, primary)]
    assert county.outbox.announced == [["e-1"]]
    assert county.store.case(twin)["status"] == "merged" and not county.store.work_orders_of(twin)
    # its department is told: merged, into which case (no work order of its own will come)
    [told] = county.bus.published
    assert (told.exchange, told.routing_key, told.env.type) == (topology.RECEIPTS, "governance", "event.merged")
    assert (told.env.subject, told.env.id) == ("r-5", "r-5.merged")
    assert (told.data["case_id"], told.data["merged_into"]) == (twin, primary)
    assert county.store.receipt("governance", "r-5") == told.data
    county.bus.published.clear()
    assert county.routing().case_registered(twin) is None  # merged meanwhile: nothing to do
    assert not county.bus.published
    # a redelivery may follow a crash before the receipt: told again, the same receipt id
    assert county.routing().case_registered(twin, again=True) is None
    assert [p.env.id for p in county.bus.published] == ["r-5.merged"]


def test_a_likely_duplicate_is_dispatched_and_suggested_to_the_command_centre(county):
    """No location to go by: the same grid and summary are not enough to merge without a person."""
    words = {"summary": "秦岭路12号门前聚集人员争吵"}
    primary = _registered(county, "r-14", category="public_order", grid=GRIDS[2], seed=1, **words)  # no location
    county.routing().case_registered(primary)
    twin = _registered(county, "r-15", category="public_order", grid=GRIDS[2], seed=4, **words)
    assert isinstance(county.routing().case_registered(twin), Dispatched)
    s = county.book.suggestion(twin)
    assert (s.primary_id, s.status, s.match.distance_m, s.match.text) == (primary, "open", None, 1.0)
    assert county.routing().case_registered(twin, again=True) and county.book.counters == {"suggested": 1}


def test_an_unmerged_case_is_routed_as_any_other(county):
    primary = _registered(county, "r-16", category="public_order", grid=GRIDS[1], **TWIN)
    county.routing().case_registered(primary)
    twin = _registered(county, "r-17", category="public_order", grid=GRIDS[1], seed=2, **TWIN)
    assert isinstance(county.routing().case_registered(twin), Merged)
    county.work.unmerge(twin, "op-1")
    [wo] = county.routing().dispatch_requested(twin, [], "unmerged").recorded
    assert (wo["case_id"], wo["level"]) == (twin, county.store.case(primary)["level"])
    assert county.store.case(twin)["status"] == "dispatched"
    assert county.store.receipt("governance", "r-17")["outcome"] == "accepted"  # no longer merged


def test_not_a_duplicate_outside_the_window(county):
    first = _registered(county, "r-6", category="public_order", grid=GRIDS[4])
    county.routing().case_registered(first)
    later = _registered(county, "r-7", category="public_order", grid=GRIDS[4], occurred_at="2024-05-02T08:00:00+08:00")
    assert isinstance(county.routing().case_registered(later), Dispatched)


def test_a_returned_work_order_goes_to_the_alternate_then_the_command_centre(county):
    cid = _registered(county, "r-8", category="illegal_business", severity="minor", grid=GRIDS[5])
    [first] = county.routing().case_registered(cid).recorded
    county.work.department_act(first["id"], "market_regulation", "return", "li", "not ours")
    [alternate] = county.routing().work_order_returned(cid).recorded
    assert (alternate["department"], alternate["reason"]) == ("urban_management", "alternate")
    assert county.store.department_queue("urban_management")[0] == 1

    county.work.department_act(alternate["id"], "urban_management", "return", "zhao", "not ours either")
    [last] = county.routing().work_order_returned(cid).recorded
    assert (last["department"], last["level"], last["reason"]) == (COMMAND_CENTRE, "county", "returned_by_all")


def test_more_departments_at_the_case_level_when_asked(county):
    cid = _registered(county, "r-9", category="illegal_business", severity="general", grid=GRIDS[6])
    county.routing().case_registered(cid)
    [wo] = county.routing().dispatch_requested(cid, ["public_security"], "whistle").recorded
    assert (wo["department"], wo["level"], wo["reason"]) == ("public_security", "community", "whistle")
    assert wo["unit"] == county.tenant.ancestor(GRIDS[6], "community").code


def test_a_closed_case_takes_no_more_work_orders(county):
    cid = _registered(county, "r-10", grid=GRIDS[7])
    county.routing().case_registered(cid)
    county.store.records[cid]["status"] = "closed"
    assert county.routing().dispatch_requested(cid, ["public_security"], "whistle") is None
    assert county.routing().work_order_returned(cid) is None
    assert county.routing().case_registered(cid) is None


def test_an_unknown_case_is_a_fault_to_retry(county):
    with pytest.raises(LookupError, match="announced but not in the store"):
        county.routing().case_registered("c-0000000000000000")
    with pytest.raises(LookupError, match="unknown case"):
        county.routing().work_order_returned("c-0000000000000000")
    assert county.routing().dispatch_requested("c-0000000000000000", ["water"], "whistle") is None


# -- a batch: its cases read together, each routed as the earlier ones left things -------


def test_a_batch_reads_its_cases_together_and_arms_each_arrival_with_its_dispatch(county):
    days = [f"2024-05-0{i + 1}T08:00:00+08:00" for i in range(3)]  # a day apart: no duplicates
    ids = [_registered(county, f"r-2{i}", grid=GRIDS[i], occurred_at=day) for i, day in enumerate(days)]
    county.store.reads.clear()
    results = county.routing().route_batch([(cid, False) for cid in ids])
    assert [type(r) for r in results] == [Dispatched] * 3
    assert county.store.reads == [ids]  # one read for the batch, none per case
    assert county.book.windows_read == [3]  # their candidates' ids too
    assert county.store.dispatch_calls == [ids]  # and their dispatches recorded together
    after = county.work.policy.arrival  # so long after each one's dispatch
    orders = [r.recorded[0] for r in results]
    assert county.store.arrivals == {wo["case_id"]: wo["dispatched_epoch"] + after for wo in orders}
    due = county.store.arrivals[ids[0]]
    county.clock.t += 60  # a redelivery later keeps the deadline the first dispatch armed
    county.routing().route_batch([(ids[0], True)])
    assert county.store.arrivals[ids[0]] == due and county.store.case(ids[0])["arrival_due"] == due


def test_a_case_twice_in_a_batch_is_read_again_the_second_time_and_dispatched_once(county):
    cid = _registered(county, "r-30", grid=GRIDS[0])
    other = _registered(county, "r-31", grid=GRIDS[1], occurred_at="2024-05-02T08:00:00+08:00")
    county.store.reads.clear()
    first, second, _ = county.routing().route_batch([(cid, False), (cid, False), (other, False)])
    assert county.store.reads == [[cid, other], [cid]]  # the second time: as the first left it
    assert county.book.windows_read == [2]  # the second time: dispatched, no duplicate to look for
    assert county.store.dispatch_calls == [[cid], [cid, other]]  # recorded before it is read again
    assert len(first.recorded) == 1 and second.recorded == []
    assert [p.env.subject for p in county.bus.of_type("work_order.dispatched")] == [
        first.recorded[0]["id"],
        county.store.work_orders_of(other)[0]["id"],
    ]


def test_a_duplicate_later_in_the_batch_is_merged_into_its_primary_dispatched_earlier_in_it(county):
    primary = _registered(county, "r-32", category="public_order", grid=GRIDS[3], **TWIN)
    twin = _registered(
        county, "r-33", category="public_order", grid=GRIDS[3], occurred_at="2024-05-01T08:10:00+08:00", seed=7, **TWIN
    )
    county.store.reads.clear()
    dispatched, merged = county.routing().route_batch([(primary, False), (twin, False)])
    assert isinstance(dispatched, Dispatched) and merged == Merged(twin, primary)
    assert county.store.reads == [[primary, twin]]
    assert county.store.dispatch_calls == [[primary]]  # recorded before its duplicate looked at it
    assert county.store.case(twin)["status"] == "merged" and not county.store.work_orders_of(twin)


def test_a_primary_later_in_the_batch_than_its_duplicate_is_read_again_after_the_merge(county):
    """The duplicate comes first (a retry, say) and merges into its still registered primary:
    the primary's record read with the batch no longer holds, so it is read again, and its
    dispatch announces it with the duplicate linked."""
    primary = _registered(county, "r-34", category="public_order", grid=GRIDS[4], **TWIN)
    twin = _registered(
        county, "r-35", category="public_order", grid=GRIDS[4], occurred_at="2024-05-01T08:10:00+08:00", seed=7, **TWIN
    )
    county.store.reads.clear()
    merged, dispatched = county.routing().route_batch([(twin, False), (primary, False)])
    assert merged == Merged(twin, primary) and isinstance(dispatched, Dispatched)
    assert county.store.reads == [[twin, primary], [primary]]
    assert county.book.windows_read == [2, 1]  # the primary's candidates looked for again too
    [announced] = county.bus.of_type("case.dispatched")
    assert [x["case_id"] for x in announced.data["linked"]] == [twin]


def test_a_case_missing_from_the_batch_read_is_still_a_fault_to_retry(county):
    cid = _registered(county, "r-36", grid=GRIDS[5])
    with pytest.raises(LookupError, match="announced but not in the store"):
        county.routing().route_batch([(cid, False), ("c-0000000000000000", False)])


# -- the entrypoints: intake's AMQP message to a department's queue ---------------------


def _inbound(published, again: bool = False) -> Inbound:
    body = json.dumps(published.data).encode()
    return Inbound(body, {ATTEMPT: 1} if again else {}, "application/json", published.routing_key, False, None)


def test_an_event_from_intake_to_a_department_queue_through_the_entrypoints(county):
    ctx = SimpleNamespace(tenant=county.tenant, registry=county.registry, locator=None)
    intake: Any = IntakeService()  # its dependencies: the fakes
    routing: Any = RoutingService()
    intake.ctx, intake.store, intake.bus, intake.usage = ctx, county.store, county.bus, county.usage
    routing.ctx, routing.store, routing.work, routing.bus = ctx, county.store, county.work, county.bus
    routing.books = lambda _store: county.book
    raw = grid_report(county, "r-11", category="illegal_construction", severity="major", grid=GRIDS[8])
    intake.on_department_event([Inbound(raw.body, raw.headers, raw.content_type, raw.routing_key, False, None)])

    labels = {"tenant": QINLING, "department": "urban_management", "level": "street", "reason": "rule"}
    before = REGISTRY.get_sample_value("onegrid_work_orders_dispatched_total", labels) or 0
    [registered] = county.bus.of_type("case.registered")
    routing.on_case_registered([_inbound(registered)])
    routing.on_case_registered([_inbound(registered, again=True)])  # a retry counts nothing twice
    assert (REGISTRY.get_sample_value("onegrid_work_orders_dispatched_total", labels) or 0) - before == 1
    total, [wo] = county.store.department_queue("urban_management")
    assert total == 1 and wo["case_id"] == registered.data["id"]
    assert [p.routing_key for p in county.bus.of_type("work_order.dispatched")] == ["urban_management"] * 2


# -- the layers: down, never back up ------------------------------------------------------

ROOT = Path(__file__).resolve().parents[3]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def _below(package: str, *forbidden: str) -> list[str]:
    return [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for name in sorted(_imports(path))
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    ]


def test_the_path_from_intake_to_a_queue_goes_down_the_layers():
    """services -> app -> domain, with the adapters beneath the services: nothing below
    reaches back up, and the app knows no transport or store technology."""
    assert _below("onegrid/domain", "onegrid.app", "onegrid.adapters", "services") == []
    # the adapters implement the app's ports and load the registry with it; no use case
    assert (
        _below(
            "onegrid/adapters",
            "onegrid.app.intake",
            "onegrid.app.routing",
            "onegrid.app.departments",
            "onegrid.app.supervision",
            "onegrid.app.scoring",
            "onegrid.app.notify",
            "services",
        )
        == []
    )
    technology = ("nameko", "kombu", "amqp", "redis", "eventlet", "werkzeug", "onegrid.adapters", "services")
    assert _below("onegrid/app", *technology) == []
