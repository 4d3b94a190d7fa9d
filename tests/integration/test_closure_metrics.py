"""The closure figures supervision exports agree with the record: cases closed by the citizen's
word (satisfied), by the clock (no answer in the feedback window) and by the command centre
(close_not_fixed) each count once, by outcome and category, and by the departments that
HANDLED them (their work orders), never by the department that reported them.

Compressed time (ONEGRID_TIME_SCALE=3600): the 2 h feedback window passes in 2 s."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from prometheus_client.parser import text_string_to_metric_families

from onegrid.domain.cases import case_id
from onegrid.domain.lifecycle import ACTIVE_WORK_ORDER
from tests.conftest import County
from tests.support import publish, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def centre(tmp_path_factory):
    c = County(
        tmp_path_factory.mktemp("closures"),
        services=("intake", "routing", "departments", "supervision"),
        env={"ONEGRID_TIME_SCALE": "3600"},
        manifest={"lifecycle": {"feedback_window": "2h", "max_reopens": 1}},
    )
    c.services.start()
    yield c
    c.close()


def _case(centre, seed: int) -> dict:
    sim = centre.simulator(seed=seed)
    p = next(p for p in iter(sim.good, None) if json.loads(p.body)["severity"] == "minor")
    publish(centre.uri, [p])
    cid = case_id(f"{p.department}|{p.headers['ce-source']}|{p.event_id}")
    return wait_until(lambda: (c := centre.store.case(cid)) and c["status"] == "dispatched" and c, what="dispatch")


def _department(centre, wo: dict, action: str) -> None:
    url = f"{centre.services.url('departments')}/departments/{wo['department']}/work-orders/{wo['id']}/{action}"
    centre.http.post(url, json={"actor": "duty", "note": "done"}, timeout=5).raise_for_status()


def _act(centre, cid: str, action: str, **body) -> dict:
    r = centre.http.post(f"{centre.services.url('supervision')}/cases/{cid}/{action}", json=body, timeout=5)
    assert r.status_code == 200, r.text
    return r.json()["case"]


def _joint(centre, case: dict, also: str) -> list[dict]:
    """Call a second department in (吹哨): the case gets two handling departments."""
    _act(centre, case["id"], "whistle", actor="street-chief", note="joint", departments=[also])
    return wait_until(lambda: (o := centre.store.work_orders_of(case["id"])) and len(o) == 2 and o, what="joint")


def _scraped(centre, tenant: str) -> Counter:
    text = centre.http.get(centre.services.url("supervision") + "/metrics", timeout=5).text
    figures: Counter = Counter()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.labels.get("tenant") != tenant or not s.name.endswith("_total"):
                continue
            if s.name == "onegrid_cases_closed_total":
                figures[("case", s.labels["category"], s.labels["outcome"])] += s.value
            elif s.name == "onegrid_cases_closed_on_time_total":
                figures[("case_on_time", s.labels["category"])] += s.value
            elif s.name == "onegrid_department_cases_closed_total":
                figures[("department", s.labels["department"], s.labels["outcome"])] += s.value
            elif s.name == "onegrid_department_cases_closed_on_time_total":
                figures[("department_on_time", s.labels["department"])] += s.value
    return figures


def test_every_way_a_case_closes_counts_once_by_outcome_and_handling_department(centre):
    handling: dict[str, list[str]] = {}  # case -> its handling departments, read from the store before it closes

    def snapshot(cid: str) -> None:
        handling[cid] = sorted(
            {w["department"] for w in centre.store.work_orders_of(cid) if w["status"] in ACTIVE_WORK_ORDER}
        )

    # 1. two departments resolve, the grid worker verifies, the citizen is satisfied
    happy = _case(centre, seed=61)
    for wo in _joint(centre, happy, "water" if happy["department"] != "water" else "construction"):
        _department(centre, wo, "accept")
        _department(centre, wo, "resolve")
    _act(centre, happy["id"], "verify", actor="grid-worker")
    snapshot(happy["id"])
    _act(centre, happy["id"], "satisfied", actor="citizen")

    # 2. resolved and verified; the citizen never answers: the clock closes it
    quiet = _case(centre, seed=62)
    for wo in centre.store.work_orders_of(quiet["id"]):
        _department(centre, wo, "accept")
        _department(centre, wo, "resolve")
    _act(centre, quiet["id"], "verify", actor="grid-worker")
    snapshot(quiet["id"])
    wait_until(lambda: centre.store.case(quiet["id"])["status"] == "closed", timeout=15, what="no-answer close")

    # 3. one part resolved, the other still accepted: the command centre closes it not fixed
    stuck = _case(centre, seed=63)
    first, second = _joint(centre, stuck, "water" if stuck["department"] != "water" else "construction")
    for wo in (first, second):
        _department(centre, wo, "accept")
    _department(centre, first, "resolve")
    snapshot(stuck["id"])
    _act(centre, stuck["id"], "close_not_fixed", actor="centre", note="beyond the county's means")

    # the record: each case's outcome, category and on-time flag, and the store's own counters
    expected: Counter = Counter()
    for cid, departments in handling.items():
        case = centre.store.case(cid)
        assert case["status"] == "closed"
        expected[("case", case["category"], case["outcome"])] += 1
        for dept in departments:
            expected[("department", dept, case["outcome"])] += 1
        if case.get("on_time"):
            expected[("case_on_time", case["category"])] += 1
            for dept in departments:
                expected[("department_on_time", dept)] += 1
    stats = centre.store.stats()
    from_stats = {k: v for k, v in expected.items() if k[0] == "case"}
    assert from_stats == {("case", *k.split(":")[1:]): v for k, v in stats.items() if k.startswith("closed:")}
    assert handling[happy["id"]] == sorted({w["department"] for w in centre.store.work_orders_of(happy["id"])})
    assert len(handling[stuck["id"]]) == 2  # the accepted part counts too: it was the department's

    try:  # the last closure is counted as its transition returns: a scrape may come just before
        wait_until(lambda: _scraped(centre, centre.id) == expected, timeout=5, what="the figures")
    except AssertionError:
        pass
    scraped = _scraped(centre, centre.id)
    assert scraped == expected
    assert sum(v for k, v in scraped.items() if k[0] == "case") == 3
    outcomes = {k[2] for k in scraped if k[0] == "case"}
    assert outcomes == {"fixed", "not_fixed"}
