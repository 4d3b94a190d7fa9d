"""On-site resolution on the real bus and Redis (intake, routing, supervision, scoring as
processes): a grid worker's report that says it was settled on the spot becomes a case closed
fixed with the report's evidence and no work order; it counts as solved in the month's report
and in the closure metric, and earns its reporter the resolved_on_site points once (a resent
report changes nothing). A sampled one waits at resolved for its check; "not fixed" reopens it
and routing dispatches it as any case.

The sample is a share by case id (lifecycle.on_site_sample: 0.5 here), so the test picks
reports whose ids fall on each side of it. Compressed time (ONEGRID_TIME_SCALE=3600)."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client.parser import text_string_to_metric_families

from onegrid.domain.cases import case_id
from onegrid.domain.onsite import sampled
from tests.conftest import County
from tests.support import publish, queue_depth, wait_until

pytestmark = pytest.mark.integration
BEIJING = timezone(timedelta(hours=8))
SHARE = 0.5
WORKER = "GW-onsite-1"
PHOTOS = [
    "https://evidence.onegrid.invalid/photos/onsite-before.jpg",
    "https://evidence.onegrid.invalid/photos/after.jpg",
]


@pytest.fixture(scope="module")
def county(tmp_path_factory):
    c = County(
        tmp_path_factory.mktemp("onsite"),
        services=("intake", "routing", "departments", "supervision", "scoring"),
        env={"ONEGRID_TIME_SCALE": "3600"},
        manifest={"lifecycle": {"feedback_window": "2h", "on_site_sample": SHARE}},
    )
    c.services.start()
    yield c
    c.close()


def _on_site_report(sim, want_sampled: bool):
    """A grid report settled on site, by WORKER with photos, whose case is (not) in the sample."""
    while True:
        p = sim.good()
        if p.routing_key != "governance.grid_report_submitted":
            continue
        cid = case_id(f"{p.department}|{p.headers['ce-source']}|{p.event_id}")
        if sampled(cid, SHARE) != want_sampled:
            continue
        data = json.loads(p.body)
        data.update(resolved_on_site=True, reporter={"kind": "grid_worker", "id": WORKER}, evidence_urls=PHOTOS)
        return replace(p, body=json.dumps(data, ensure_ascii=False).encode()), cid


def _metric(county, service: str, name: str) -> Counter:
    text = county.http.get(county.services.url(service) + "/metrics", timeout=5).text
    out: Counter = Counter()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels.get("tenant") == county.id:
                out[(s.labels.get("category"), s.labels.get("outcome"))] += int(s.value)
    return out


def _quiet(county) -> None:
    for _ in range(2):
        wait_until(
            lambda: all(queue_depth(county.uri, q) == 0 for q in ("scoring.case-events", "routing.case-registered")),
            timeout=30,
            what="scoring and routing idle",
        )
        time.sleep(1)


def _points(county) -> dict:
    month = datetime.now(BEIJING).strftime("%Y-%m")
    url = f"{county.services.url('scoring')}/scoring/workers/{WORKER}"
    return county.http.get(url, params={"month": month}, timeout=5).json()


def test_an_on_site_report_is_closed_fixed_with_its_evidence_and_counted_once(county):
    sim = county.simulator(seed=1401)
    report, cid = _on_site_report(sim, want_sampled=False)
    publish(county.uri, [report])
    case = wait_until(lambda: (c := county.store.case(cid)) and c["status"] == "closed" and c, what="on-site closure")
    assert (case["outcome"], case["resolution"], case["level"], case["on_time"]) == ("fixed", "on_site", "grid", True)
    assert case["evidence_urls"] == PHOTOS
    assert county.store.work_orders_of(cid) == []  # never dispatched
    lines = county.store.timeline(cid)
    assert [x["action"] for x in lines] == ["register", "close_on_site"]
    assert lines[-1]["evidence"]  # the photos' hash is on the chained line

    _quiet(county)
    closed = _metric(county, "routing", "onegrid_cases_closed_total")
    assert closed[(case["category"], "fixed")] == 1
    month = datetime.now(BEIJING).strftime("%Y-%m")
    report_json = county.http.get(f"{county.services.url('scoring')}/reports/{month}", timeout=30).json()
    row = next(r for r in report_json["closure"] if r["category"] == case["category"])
    assert (row["problems"], row["solved"], row["on_site"], row["open"]) == (1, 1, 1, 0)
    assert _points(county)["rules"] == {"resolved_on_site": 1}

    publish(county.uri, [report])  # the app sends it again: same case, nothing more
    _quiet(county)
    assert county.store.case(cid)["status"] == "closed" and county.store.work_orders_of(cid) == []
    assert _metric(county, "routing", "onegrid_cases_closed_total")[(case["category"], "fixed")] == 1
    assert _points(county)["rules"] == {"resolved_on_site": 1}


def test_a_sampled_on_site_case_is_checked_and_not_fixed_reopens_it_into_dispatch(county):
    sim = county.simulator(seed=1402)
    report, cid = _on_site_report(sim, want_sampled=True)
    publish(county.uri, [report])
    case = wait_until(lambda: (c := county.store.case(cid)) and c["status"] == "resolved" and c, what="held for check")
    assert (case["resolution"], case["on_site_sampled"]) == ("on_site", 1)
    assert county.store.work_orders_of(cid) == []

    url = f"{county.services.url('supervision')}/cases/{cid}/verify_failed"
    r = county.http.post(url, json={"actor": "community-checker", "note": "the cylinders are still there"}, timeout=5)
    assert r.status_code == 200, r.text
    case = wait_until(lambda: (c := county.store.case(cid)) and c["status"] == "dispatched" and c, what="dispatch")
    assert case["resolution"] == "" and case["on_site_reopened"] == 1 and case["reopen_count"] == 1
    orders = county.store.work_orders_of(cid)
    assert orders and all(w["status"] == "dispatched" and w["resolve_due"] for w in orders)
    actions = [x["action"] for x in county.store.timeline(cid)]
    assert actions[:3] == ["register", "resolve_on_site", "verify_failed"] and "dispatch" in actions[3:]


def test_a_reported_risk_colour_holds_its_grid_up_until_the_case_is_dealt_with(county):
    """risk_colour (五色管控) on a key-person report: the grid is at least that colour, with who
    said so, on scoring's risk and the console's map, until the case is closed."""
    sim = county.simulator(seed=1403)
    p = next(p for p in iter(sim.good, None) if p.routing_key == "governance.key_person_visit_overdue")
    data = json.loads(p.body)
    grid = county.tenant.grids()[-1].code
    data.update(grid=grid, severity="minor", risk_colour="red", reporter={"kind": "grid_worker", "id": "GW-red"})
    data.pop("location", None)
    p = replace(p, body=json.dumps(data, ensure_ascii=False).encode())
    publish(county.uri, [p])
    cid = case_id(f"{p.department}|{p.headers['ce-source']}|{p.event_id}")
    wait_until(lambda: (c := county.store.case(cid)) and c["status"] == "dispatched", what="dispatch")
    _quiet(county)
    risk = county.http.get(f"{county.services.url('scoring')}/scoring/risk", timeout=5).json()["grids"][grid]
    assert risk["colour"] == "red" and risk["label"] == {"colour": "red", "by": "GW-red", "case_id": cid}
    assert risk["score"] < 24  # the score alone would not make it red: the label does

    url = f"{county.services.url('supervision')}/cases/{cid}/close_not_fixed"
    r = county.http.post(url, json={"actor": "centre", "note": "visited, moved away"}, timeout=5)
    assert r.status_code == 200, r.text
    _quiet(county)
    risk = county.http.get(f"{county.services.url('scoring')}/scoring/risk", timeout=5).json()["grids"][grid]
    assert risk["colour"] != "red" and "label" not in risk
