"""The departments service over RPC and HTTP, with routing re-routing what is returned."""

import pytest
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ClusterRpcProxy

from onegrid.domain.cases import case_id
from tests.support import department_bearer, publish, wait_until

pytestmark = pytest.mark.integration


def _dispatched_case(county, seed, category="illegal_business", severity="minor"):
    sim = county.simulator(seed=seed)
    while True:
        p = sim.good()
        data = __import__("json").loads(p.body)
        if p.category == category and data["severity"] == severity and p.department != "governance":
            break
    publish(county.uri, [p])
    cid = case_id(f"{p.department}|{p.headers['ce-source']}|{p.event_id}")
    return wait_until(lambda: (c := county.store.case(cid)) and c["status"] == "dispatched" and c, what="case")


def test_rpc_accept_return_reroute_resolve(county):
    case = _dispatched_case(county, seed=31)
    # zhongyuan-qinling: illegal_business/minor -> market_regulation, alternate urban_management
    with ClusterRpcProxy({"AMQP_URI": county.uri}) as rpc:
        listing = rpc.departments.list_work_orders("market_regulation", 0, 500)
        wo = next(w for w in listing["work_orders"] if w["case_id"] == case["id"])
        with pytest.raises(RemoteError) as refused:
            rpc.departments.resolve("market_regulation", wo["id"], "li", "done")
        assert "TransitionRefused" in str(refused.value) and "is dispatched; cannot resolve" in str(refused.value)
        with pytest.raises(RemoteError, match="belongs to market_regulation"):
            rpc.departments.accept("public_security", wo["id"], "wang")

        assert rpc.departments.accept("market_regulation", wo["id"], "li")["work_order"]["status"] == "accepted"
        back = rpc.departments.return_work_order("market_regulation", wo["id"], "li", "street vendor: not ours")
        assert back["work_order"]["status"] == "returned"

        alt = wait_until(
            lambda: [w for w in county.store.work_orders_of(case["id"]) if w["department"] == "urban_management"],
            what="re-route",
        )[0]
        assert alt["reason"] == "alternate"
        rpc.departments.accept("urban_management", alt["id"], "zhao")
        done = rpc.departments.resolve(
            "urban_management", alt["id"], "zhao", "vendor moved on", ["https://evidence.onegrid.invalid/a.jpg"]
        )
        assert done["case_status"] == "resolved"

        full = rpc.departments.get_case(case["id"])
        actions = [(s["actor"], s["action"]) for s in full["timeline"]]
        assert actions[-7:] == [
            ("market_regulation/li", "accept"),
            ("departments", "start"),
            ("market_regulation/li", "return"),
            ("routing", "dispatch"),
            ("urban_management/zhao", "accept"),
            ("urban_management/zhao", "resolve"),
            ("departments", "resolve"),
        ]
        assert full["status"] == "resolved"
        assert all(set(s) >= {"at", "actor", "action", "to_state"} for s in full["timeline"])


def test_returned_by_every_alternate_goes_to_the_command_centre(county):
    case = _dispatched_case(county, seed=32, category="petition_stability")
    base = county.services.url("departments")
    tried = set()
    while True:
        wo = wait_until(
            lambda: [
                w
                for w in county.store.work_orders_of(case["id"])
                if w["status"] == "dispatched" and w["department"] not in tried
            ],
            what="next",
        )[0]
        if wo["department"] == "governance":
            break
        tried.add(wo["department"])
        r = county.http.post(
            f"{base}/departments/{wo['department']}/work-orders/{wo['id']}/return",
            json={"actor": "x", "note": "not ours"},
            timeout=5,
        )
        assert r.status_code == 200, r.text
    assert wo["reason"] == "returned_by_all" and wo["level"] == "county"
    r = county.http.post(
        f"{base}/departments/governance/work-orders/{wo['id']}/return", json={"actor": "x", "note": "no"}, timeout=5
    )
    assert r.status_code == 409 and "command centre cannot return" in r.json()["error"]


def test_http_errors_are_specific(county):
    base = county.services.url("departments")
    assert county.http.get(f"{base}/departments/tourism/work-orders", timeout=5).status_code == 404
    r = county.http.post(f"{base}/departments/water/work-orders/w-nope/accept", json={"actor": "a"}, timeout=5)
    assert r.status_code == 404 and "no work order w-nope" in r.json()["error"]
    case = _dispatched_case(county, seed=33)
    wo = county.store.work_orders_of(case["id"])[0]
    url = f"{base}/departments/{wo['department']}/work-orders/{wo['id']}"
    # a department's system names the member of its staff who acted ...
    machine = department_bearer(county.tenant, wo["department"])
    r = county.http.post(f"{url}/accept", json={}, headers=machine, timeout=5)
    assert r.status_code == 400 and "actor" in r.json()["fields"]
    r = county.http.post(f"{url}/accept", data=b"{not json", timeout=5)
    assert r.status_code == 400
    r = county.http.post(f"{url}/escalate", json={"actor": "a"}, timeout=5)
    assert r.status_code == 404 and "unknown action" in r.json()["error"]
    # ... a signed-in person is the actor, whatever the body says
    county.http.post(f"{url}/accept", json={"actor": "mallory"}, timeout=5).raise_for_status()
    [step] = [s for s in county.store.timeline(case["id"]) if s["action"] == "accept"]
    assert step["actor"] == f"{wo['department']}/{county.http.subject(url)}"  # the department, then who
    r = county.http.post(f"{url}/resolve", json={"actor": "a"}, timeout=5)
    assert r.status_code == 400 and "note" in r.json()["fields"]
    r = county.http.post(f"{url}/resolve", json={"actor": "a", "note": "ok", "evidence_urls": ["ftp://x"]}, timeout=5)
    assert r.status_code == 400
    listing = county.http.get(f"{base}/departments/{wo['department']}/work-orders", params={"limit": 500}, timeout=5)
    assert wo["id"] in [w["id"] for w in listing.json()["work_orders"]]
