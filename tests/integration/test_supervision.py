"""The command centre on the real bus, in compressed time (ONEGRID_TIME_SCALE=3600: an hour of
deadline passes in a second): deadlines that climb the ladder, the whistle and joint dispatch,
verification and the citizen's word, rejection, closure, and case queries."""

import json

import pytest
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ClusterRpcProxy

from onegrid.domain.cases import case_id
from tests.conftest import County
from tests.support import publish, wait_until

pytestmark = pytest.mark.integration
SCALE = 3600


@pytest.fixture(scope="module")
def centre(tmp_path_factory):
    c = County(
        tmp_path_factory.mktemp("centre"),
        services=("intake", "routing", "departments", "supervision"),
        env={"ONEGRID_TIME_SCALE": str(SCALE)},
        manifest={"lifecycle": {"feedback_window": "2h", "max_reopens": 1}},
    )
    c.services.start()
    yield c
    c.close()


def _case(centre, seed, severity="general", category="illegal_business"):
    sim = centre.simulator(seed=seed)
    while True:
        p = sim.good()
        if p.category == category and json.loads(p.body)["severity"] == severity and p.department != "governance":
            break
    publish(centre.uri, [p])
    cid = case_id(f"{p.department}|{p.headers['ce-source']}|{p.event_id}")
    return wait_until(lambda: (c := centre.store.case(cid)) and c["status"] == "dispatched" and c, what="dispatch")


def _steps(centre, cid, action):
    return [s for s in centre.store.timeline(cid) if s["action"] == action]


def test_an_unacknowledged_case_climbs_the_ladder_on_time(centre):
    case = _case(centre, seed=51)  # general: community level, acknowledge within 2h = 2 s here
    assert case["level"] == "community"
    [wo] = centre.store.work_orders_of(case["id"])
    esc = wait_until(lambda: _steps(centre, case["id"], "escalate"), timeout=10, what="first escalation")
    assert esc[0]["note"] == "overdue_acknowledge" and _steps(centre, case["id"], "supervise")
    assert centre.store.case(case["id"])["level"] == "street"
    wait_until(lambda: centre.store.case(case["id"])["level"] == "county", timeout=10, what="second rung")
    # the county is the top: flagged, listed as overdue, no further rung
    url = centre.services.url("supervision")
    listed = centre.http.get(f"{url}/cases", params={"overdue": "true", "level": "county"}, timeout=5).json()
    assert case["id"] in [c["id"] for c in listed["cases"]]
    scrape = centre.http.get(f"{url}/metrics", timeout=5).text
    assert "onegrid_cases_overdue{" in scrape and "onegrid_supervisions_total{" in scrape
    lag = [
        line
        for line in scrape.splitlines()
        if line.startswith('onegrid_timer_lag_seconds_bucket{kind="acknowledge",le="1.0"}')
    ]
    total = [
        line for line in scrape.splitlines() if line.startswith('onegrid_timer_lag_seconds_count{kind="acknowledge"}')
    ]
    assert lag and total and lag[0].split()[-1] == total[0].split()[-1]  # every firing within a second of due
    # accepted at last: no more supervision for acknowledging
    centre.http.post(
        f"{centre.services.url('departments')}/departments/{wo['department']}/work-orders/{wo['id']}/accept",
        json={"actor": "late"},
        timeout=5,
    ).raise_for_status()
    assert centre.store.timers.due_at(f"acknowledge|{wo['id']}") is None


def test_whistle_joint_dispatch_verify_and_the_citizens_word(centre):
    case = _case(centre, seed=52, severity="minor")
    sup, dep = centre.services.url("supervision"), centre.services.url("departments")
    r = centre.http.post(
        f"{sup}/cases/{case['id']}/whistle",
        timeout=5,
        json={
            "actor": "community-3",
            "note": "needs the fire brigade and water too",
            "level": "street",
            "departments": ["fire_rescue", "water"],
        },
    )
    assert r.status_code == 200, r.text
    orders = wait_until(lambda: (o := centre.store.work_orders_of(case["id"])) and len(o) == 3 and o, what="joint")
    assert {o["department"] for o in orders} >= {"fire_rescue", "water"}
    assert centre.store.case(case["id"])["level"] == "street"
    for o in orders:
        base = f"{dep}/departments/{o['department']}/work-orders/{o['id']}"
        centre.http.post(f"{base}/accept", json={"actor": "duty"}, timeout=5).raise_for_status()
    for o in orders[:-1]:
        base = f"{dep}/departments/{o['department']}/work-orders/{o['id']}"
        centre.http.post(f"{base}/resolve", json={"actor": "duty", "note": "done"}, timeout=5).raise_for_status()
        assert centre.store.case(case["id"])["status"] == "in_progress"  # not while a part is open
    last = orders[-1]
    r = centre.http.post(
        f"{dep}/departments/{last['department']}/work-orders/{last['id']}/resolve",
        json={"actor": "duty", "note": "done"},
        timeout=5,
    )
    assert r.json()["case_status"] == "resolved"
    r = centre.http.post(
        f"{sup}/cases/{case['id']}/verify",
        timeout=5,
        json={"actor": "grid-worker-12", "evidence_urls": ["https://evidence.onegrid.invalid/v.jpg"]},
    )
    assert r.json()["case"]["status"] == "verified"
    r = centre.http.post(f"{sup}/cases/{case['id']}/satisfied", json={"actor": "citizen"}, timeout=5)
    closed = r.json()["case"]
    assert (closed["status"], closed["outcome"], closed["satisfied"]) == ("closed", "fixed", True)
    r = centre.http.post(f"{sup}/cases/{case['id']}/reject", json={"actor": "x", "note": "n"}, timeout=5)
    assert r.status_code == 409 and f"case {case['id']} is closed; cannot reject" in r.json()["error"]


def test_no_answer_within_the_window_closes_and_not_satisfied_reopens_then_county(centre):
    quiet, unhappy = _case(centre, seed=53, severity="minor"), _case(centre, seed=54, severity="minor")
    sup, dep = centre.services.url("supervision"), centre.services.url("departments")
    for case in (quiet, unhappy):
        for o in centre.store.work_orders_of(case["id"]):
            base = f"{dep}/departments/{o['department']}/work-orders/{o['id']}"
            centre.http.post(f"{base}/accept", json={"actor": "d"}, timeout=5).raise_for_status()
            centre.http.post(f"{base}/resolve", json={"actor": "d", "note": "ok"}, timeout=5).raise_for_status()
        centre.http.post(f"{sup}/cases/{case['id']}/verify", json={"actor": "gw"}, timeout=5).raise_for_status()
    r = centre.http.post(
        f"{sup}/cases/{unhappy['id']}/not_satisfied", json={"actor": "citizen", "note": "still there"}, timeout=5
    )
    assert r.json()["case"]["status"] == "dispatched" and r.json()["case"]["reopen_count"] == 1
    # the feedback window is 2h = 2 s here: the quiet reporter's case closes by itself
    closed = wait_until(
        lambda: (c := centre.store.case(quiet["id"])) and c["status"] == "closed" and c,
        timeout=10,
        what="no-answer closure",
    )
    assert (closed["outcome"], closed["satisfied"]) == ("fixed", None)
    for o in centre.store.work_orders_of(unhappy["id"]):
        base = f"{dep}/departments/{o['department']}/work-orders/{o['id']}"
        centre.http.post(f"{base}/accept", json={"actor": "d"}, timeout=5).raise_for_status()
        centre.http.post(f"{base}/resolve", json={"actor": "d", "note": "again"}, timeout=5).raise_for_status()
    centre.http.post(f"{sup}/cases/{unhappy['id']}/verify", json={"actor": "gw"}, timeout=5).raise_for_status()
    r = centre.http.post(
        f"{sup}/cases/{unhappy['id']}/not_satisfied", json={"actor": "citizen", "note": "no"}, timeout=5
    )
    assert r.json()["case"]["level"] == "county"  # max_reopens=1: the county takes it
    wait_until(
        lambda: "governance" in {o["department"] for o in centre.store.work_orders_of(unhappy["id"])},
        what="the command centre's work order",
    )


def test_reject_close_not_fixed_and_queries_over_rpc(centre):
    a, b = _case(centre, seed=55, severity="minor"), _case(centre, seed=56, severity="minor")
    with ClusterRpcProxy({"AMQP_URI": centre.uri}) as rpc:
        with pytest.raises(RemoteError, match="needs a reason"):
            rpc.supervision.act(a["id"], "reject", "command-centre")
        rejected = rpc.supervision.act(a["id"], "reject", "command-centre", "a private contract dispute")["case"]
        assert rejected["status"] == "rejected"
        assert all(o["status"] == "cancelled" for o in centre.store.work_orders_of(a["id"]))
        closed = rpc.supervision.act(b["id"], "close_not_fixed", "command-centre", "the building was demolished")
        assert (closed["case"]["outcome"], closed["case"]["on_time"]) == ("not_fixed", False)
        page = rpc.supervision.list_cases(status="rejected", limit=10)
        assert a["id"] in [c["id"] for c in page["cases"]] and page["total"] >= 1
        full = rpc.supervision.get_case(b["id"])
        assert full["timeline"][-1]["action"] == "close_not_fixed" and full["work_orders"]
        since = rpc.supervision.list_cases(since=b["at"] - 0.001, limit=500)
        assert b["id"] in [c["id"] for c in since["cases"]]
        with pytest.raises(RemoteError, match="ValidationError"):
            rpc.supervision.list_cases(level="province")
    r = centre.http.get(
        f"{centre.services.url('supervision')}/cases", params={"status": "closed", "limit": 1}, timeout=5
    )
    assert r.status_code == 200 and r.json()["limit"] == 1 and len(r.json()["cases"]) == 1


def test_a_department_asks_for_more_time_and_the_command_centre_grants_it(centre):
    case = _case(centre, seed=57, severity="minor")
    [wo] = centre.store.work_orders_of(case["id"])
    dep, sup = centre.services.url("departments"), centre.services.url("supervision")
    base = f"{dep}/departments/{wo['department']}/work-orders/{wo['id']}"
    centre.http.post(f"{base}/accept", json={"actor": "d"}, timeout=5).raise_for_status()
    r = centre.http.post(f"{base}/extension", json={"actor": "d", "note": "waiting for a part"}, timeout=5)
    assert r.status_code == 400 and "extension" in r.json()["fields"]
    r = centre.http.post(
        f"{base}/extension", json={"actor": "d", "note": "waiting for a part", "extension": "2d"}, timeout=5
    )
    assert r.json()["work_order"]["status"] == "extension_requested"
    before = centre.store.timers.due_at(f"resolve|{wo['id']}")
    r = centre.http.post(f"{sup}/work-orders/{wo['id']}/extension/grant", json={"actor": "command-centre"}, timeout=5)
    assert r.json()["work_order"]["status"] == "accepted"
    assert centre.store.timers.due_at(f"resolve|{wo['id']}") == pytest.approx(before + 2 * 86400 / SCALE)
    r = centre.http.post(f"{sup}/work-orders/{wo['id']}/extension/grant", json={"actor": "command-centre"}, timeout=5)
    assert r.status_code == 409 and "is accepted; cannot grant_extension" in r.json()["error"]
