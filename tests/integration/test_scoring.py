"""scoring as a process on a real bus: lifecycle events published on onegrid.events become
points, assessments, colours and rankings; a colour change is announced; the same history
twice, or once in a fresh county, gives exactly the same figures."""

import json
import re

import pytest
import requests
from kombu import Connection, Queue
from nameko.standalone.rpc import ClusterRpcProxy

from onegrid.adapters.amqp import topology
from onegrid.adapters.amqp.bus import Bus
from tests.conftest import County
from tests.lifecycle import Story, publish
from tests.support import wait_until

pytestmark = pytest.mark.integration
KP3 = "410102-001-001-002"  # three key persons in the demo manifest: blue with no case open
GRID = "410102-001-002-001"


def history(tenant: str) -> list:
    """A month of cases in a few grids: fixed, not fixed, returned, overdue, reopened."""
    stories = []
    for i in range(6):  # fixed in the grid by GW-1..3, reported by GW-1..2
        s = Story(f"c-g{i}", tenant, grid=GRID, reporter={"kind": "grid_worker", "id": f"GW-{1 + i % 2}"})
        stories.append(
            s.full(
                "urban_management", level="grid", by=f"GW-{1 + i % 3}", satisfied=(True, None)[i % 2], on_time=i != 4
            )
        )
    s = Story(
        "c-mr",
        tenant,
        grid=GRID,
        severity="general",
        category="illegal_business",
        reporter={"kind": "citizen", "id": "12345-9", "phone": "13800000009"},
    )
    s.registered(), s.dispatched("market_regulation", "urban_management", level="community")
    s.work_order("urban_management", "return"), s.work_order("market_regulation", "accept", minutes=45)
    s.closed("not_fixed", on_time=False, satisfied=None)
    stories.append(s)
    hot = Story("c-hot", tenant, grid=KP3, severity="critical", category="work_safety")
    hot.registered(), hot.dispatched("emergency_management", level="county"), hot.supervised("overdue_resolve")
    stories.append(hot)
    again = Story("c-re", tenant, grid=GRID, severity="major")
    again.registered(), again.dispatched("water", level="street"), again.work_order("water", "accept")
    again.work_order("water", "resolve"), again.resolved(), again.verified("GW-3"), again.reopened()
    stories.append(again)
    return [e for st in stories for e in st.events]


def applied(county) -> int:
    text = requests.get(county.services.url("scoring") + "/metrics", timeout=5).text
    return sum(
        int(float(v))
        for v in re.findall(
            rf'^onegrid_scoring_events_total{{outcome="(?:applied|duplicate)",tenant="{county.id}"}} (\S+)', text, re.M
        )
    )


def figures(county) -> dict:
    base = county.services.url("scoring")
    get = lambda path, **params: county.http.get(base + path, params=params, timeout=10).json()  # noqa: E731
    out = {
        "rankings": get("/scoring/rankings", month="2026-11", limit=100),
        "month": get("/scoring/assessment", period="month", key="2026-11"),
        "week": get("/scoring/assessment", period="week", key="2026-W46"),
        "risk": get("/scoring/risk"),
        "workers": {w: get(f"/scoring/workers/{w}", month="2026-11") for w in ("GW-1", "GW-2", "GW-3")},
    }
    return json.loads(json.dumps(out).replace(county.id, "TENANT"))


def _county(tmp):
    c = County(tmp, services=("scoring",))
    c.services.start()
    return c


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    c = _county(tmp_path_factory.mktemp("scoring"))
    yield c
    c.close()


def test_history_becomes_points_assessments_colours_and_rankings(scored):
    county, events = scored, history(scored.id)
    with Connection(county.uri) as conn:  # a listener for the colour announcements
        listener = Queue("test.colours", topology.EVENTS, routing_key="grid.#", durable=False, auto_delete=False)
        listener(conn.default_channel).declare()
    publish(Bus(county.uri), county.id, events)
    wait_until(lambda: applied(county) >= len(events), timeout=30, what="every event applied")
    f = figures(county)

    workers = {r["name"]: r for r in f["rankings"]["workers"]}
    # GW-1: 4 verified reports (c-g0, c-g2, c-g4, c-re: 2 each) + grid fixes c-g0, c-g3 (3 each, on time
    # +1 each, c-g0 satisfied +1)
    assert workers["GW-1"]["score"] == 4 * 2 + 2 * 3 + 2 * 1 + 1 and workers["GW-1"]["grid"] == GRID
    assert [r["rank"] for r in f["rankings"]["workers"]] == sorted(r["rank"] for r in f["rankings"]["workers"])
    assert f["rankings"]["grids"][0]["name"] == GRID and f["rankings"]["grids"][0]["grid_name"] == "一棉社区第一网格"
    assert f["rankings"]["communities"][0]["name"] == "410102-001-002"

    depts = f["month"]["departments"]
    um, mr = depts["urban_management"], depts["market_regulation"]
    assert (um["received"], um["returned"], um["closed_fixed"], um["closure_rate"]) == (7, 1, 6, 1.0)
    assert (mr["closed_fixed"], mr["closed_not_fixed"], mr["not_fixed_rate"]) == (0, 1, 1.0)
    assert um["satisfaction_rate"] == 1.0 and um["no_answer"] == 3 and um["avg_ack_seconds"] == 600
    assert depts["water"]["reopened"] == 1 and depts["water"]["closure_rate"] == 0.0
    assert f["week"]["departments"]["urban_management"]["received"] == 7
    assert f["rankings"]["departments"][0]["name"] == "urban_management"

    assert f["risk"]["grids"][KP3] == {"colour": "orange", "score": 3 + 8 * 2}  # critical, overdue
    assert sum(f["risk"]["counts"].values()) == 44
    announced = [json.loads(body) for _, body in _drain(county.uri, "test.colours")]
    chain = [(a["from"], a["to"]) for a in sorted(announced, key=lambda a: a["seq"]) if a["grid"] == KP3]
    # blue -> yellow -> orange in order; concurrent handlers may apply the two steps as one
    assert chain in ([("blue", "yellow"), ("yellow", "orange")], [("blue", "orange")]), chain
    assert all(a["case_id"] == "c-hot" and a["score"] > 0 for a in announced if a["grid"] == KP3)

    with ClusterRpcProxy({"AMQP_URI": county.uri}) as rpc:
        assert rpc.scoring.rankings("2026-11", 100)["workers"] == f["rankings"]["workers"]
        assert rpc.scoring.risk()["counts"] == f["risk"]["counts"]


def test_redelivery_and_replay_give_the_same_figures(scored, tmp_path):
    county = scored
    events = history(county.id)
    before = figures(county)
    publish(Bus(county.uri), county.id, events)  # the whole history again: every ce-id is known
    wait_until(lambda: applied(county) >= 2 * len(events), timeout=30, what="the replay applied")
    _same(figures(county), before)
    fresh = _county(tmp_path)
    try:
        publish(Bus(fresh.uri), fresh.id, history(fresh.id))
        wait_until(lambda: applied(fresh) >= len(events), timeout=30, what="the fresh county applied")
        _same(figures(fresh), before)
    finally:
        fresh.close()


def test_inspector_adjustments_are_audited_and_idempotent(scored):
    base = scored.services.url("scoring") + "/scoring"
    body = {
        "worker": "GW-2",
        "points": -5,
        "reason": "上报信息不实",
        "month": "2026-11",
        "id": "adj-0001",
    }  # no inspector: the signed-in supervisor is the inspector
    before = scored.http.get(f"{base}/workers/GW-2", params={"month": "2026-11"}, timeout=5).json()["points"]
    r = scored.http.post(f"{base}/adjustments", json=body, timeout=5)
    assert r.status_code == 201 and r.json()["adjustment"]["reason"] == "上报信息不实"
    again = scored.http.post(f"{base}/adjustments", json=body, timeout=5)
    assert again.status_code == 200 and again.json()["created"] is False
    w = scored.http.get(f"{base}/workers/GW-2", params={"month": "2026-11"}, timeout=5).json()
    assert w["points"] == before - 5 and w["adjusted"] == -5
    assert [a["id"] for a in w["adjustments"]] == ["adj-0001"]
    audit = scored.http.get(f"{base}/adjustments", params={"month": "2026-11"}, timeout=5).json()
    inspector = scored.http.subject(f"{base}/adjustments")
    assert [(a["worker"], a["points"], a["inspector"]) for a in audit] == [("GW-2", -5, inspector)]
    for other in ("督查组-王", None):  # another inspector, or a null where the document says a string
        someone_else = scored.http.post(f"{base}/adjustments", json={**body, "inspector": other}, timeout=5)
        assert someone_else.status_code == 400 and "inspector" in someone_else.json()["fields"]
    bad = scored.http.post(f"{base}/adjustments", json={**body, "reason": "", "points": "5"}, timeout=5)
    assert bad.status_code == 400 and {"reason", "points"} <= set(bad.json()["fields"])
    assert scored.http.get(f"{base}/rankings", params={"month": "2026-13"}, timeout=5).status_code == 400


def test_gauges_have_bounded_labels(scored):
    text = requests.get(scored.services.url("scoring") + "/metrics", timeout=5).text
    colours = dict(re.findall(rf'^onegrid_grid_colour{{colour="(\w+)",tenant="{scored.id}"}} (\S+)', text, re.M))
    assert set(colours) == {"red", "orange", "yellow", "blue", "green"} and sum(map(float, colours.values())) == 44
    assert (
        re.search(r'^onegrid_department_closure_rate{department="\w+",tenant=', text, re.M)
        or "onegrid_department_closure_rate" in text
    )
    labels = set(re.findall(r'="([^"]*)"', text))
    assert not [v for v in labels if v.startswith(("GW-", "c-", "12345", "410102-"))], "ids leaked into labels"


def _same(got, want):
    for period in ("month", "week"):
        for dept, row in want[period]["departments"].items():
            assert got[period]["departments"][dept] == row, (period, dept)
    assert got == want


def _drain(uri, queue):
    from tests.support import drain

    return drain(uri, queue)
