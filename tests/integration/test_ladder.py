"""The ladder reaches people, on the real bus in compressed time (ONEGRID_TIME_SCALE=3600: an
hour of deadline per second): a case whose department does not report for duty climbs; the
office of each level it reaches gets its escalation item on its own queue; the street's
officer acknowledges and acts on it (as themselves); an office that does not acknowledge in
its rung's time sends the case up again; the grid worker and the lower offices are told
(notify's webhook); an officer of another street cannot see or act on it."""

import copy
import json
import threading

import pytest

from onegrid.domain import access
from onegrid.domain.cases import case_id
from tests.conftest import ROOT, County
from tests.integration.test_notify import Receiver
from tests.support import bearer, publish, wait_until

pytestmark = pytest.mark.integration
SCALE = 3600
SECRET = "ladder-webhook-secret"
# the default four rungs, the street's office given 10 h (10 s here) to acknowledge
LADDER = [
    {"level": "grid", "code": "[0-9]{3}", "office": "网格员", "acknowledge": "30m", "act": "4h"},
    {"level": "community", "code": "[0-9]{3}", "office": "社区居委会", "acknowledge": "2h", "act": "1d"},
    {"level": "street", "code": "[0-9]{3}", "office": "街道办", "acknowledge": "10h", "act": "2d"},
    {"level": "county", "code": "[0-9]{6}", "office": "区网格化服务管理中心", "acknowledge": "2h", "act": "2d"},
]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    webhook = Receiver()
    notify = {
        "timezone": "+08:00",
        "channels": {
            "webhook": {"url": f"http://127.0.0.1:{webhook.port}/hook", "secret_env": "ONEGRID_WEBHOOK_SECRET"}
        },
    }
    c = County(
        tmp_path_factory.mktemp("ladder"),
        services=("intake", "routing", "departments", "supervision", "notify", "console"),
        env={
            "ONEGRID_TIME_SCALE": str(SCALE),
            "ONEGRID_WEBHOOK_SECRET": SECRET,
            "ONEGRID_EVIDENCE_DIR": str(tmp_path_factory.mktemp("evidence")),
        },
        manifest={"ladder": LADDER, "notify": notify, "grid_tree": _with_another_street()},
    )
    c.services.start()
    yield c, webhook
    c.close()
    webhook.close()


def _with_another_street() -> dict:
    """Qinling's tree and a second street beside it (whose officer must not see the first's)."""
    from onegrid.app.registry import load_strict

    tree = copy.deepcopy(load_strict(ROOT / "contracts").tenants["zhongyuan-qinling"].source["grid_tree"])
    grid = {"level": "grid", "code": "410102-002-001-001", "name": "另一街道第一网格"}
    community = {"level": "community", "code": "410102-002-001", "name": "另一社区", "children": [grid]}
    tree["children"].append({"level": "street", "code": "410102-002", "name": "另一街道", "children": [community]})
    return tree


def _case(county, seed: int) -> dict:
    """A general case (the community's, 2 h = 2 s to be accepted) its department never accepts."""
    sim = county.simulator(seed=seed)
    while True:
        p = sim.good()
        data = json.loads(p.body)
        if data["severity"] == "general" and p.category == "illegal_business" and p.department != "governance":
            break
    publish(county.uri, [p])
    cid = case_id(f"{p.department}|{p.headers['ce-source']}|{p.event_id}")
    return wait_until(lambda: (c := county.store.case(cid)) and c["status"] == "dispatched" and c, what="dispatch")


def _item(county, cid: str, level: str) -> dict:
    def found():
        items = (county.store.case(cid) or {}).get("escalations") or []
        return next((i for i in items if i["level"] == level), None)

    return wait_until(found, timeout=30, what=f"the {level} office's item")


def _officer(county, role: str, scope: str) -> dict:
    return bearer(county.store.r, county.tenant, role, scope)


def _other_street(county, street: str) -> str:
    return next(n.code for n in county.tenant.nodes.values() if n.level == "street" and n.code != street)


def test_the_street_office_receives_acknowledges_and_acts(env):
    county, webhook = env
    case = _case(county, seed=81)
    t, sup = county.tenant, county.services.url("supervision")
    street = t.ancestor(case["grid"], "street").code
    community = t.ancestor(case["grid"], "community").code
    item = _item(county, case["id"], "street")  # the department did not accept in 2 s: up to the street
    assert (item["unit"], item["office"], item["status"]) == (street, "街道办", "open")
    # on the street office's queue, for its officer
    mine = _officer(county, access.STREET_OFFICER, street)
    listed = county.http.get(f"{sup}/escalations", headers=mine, timeout=5)
    assert listed.status_code == 200, listed.text
    assert item["id"] in [i["id"] for i in listed.json()["items"]] and listed.json()["office"] == "街道办"
    # an officer of another street neither sees nor acts on it; nor does the community below
    other = _officer(county, access.STREET_OFFICER, _other_street(county, street))
    assert county.http.get(f"{sup}/escalations", params={"unit": street}, headers=other, timeout=5).status_code == 403
    url = f"{sup}/escalations/{item['id']}"
    assert county.http.post(f"{url}/acknowledge", json={}, headers=other, timeout=5).status_code == 403
    below = _officer(county, access.COMMUNITY_OFFICER, community)
    assert county.http.post(f"{url}/acknowledge", json={}, headers=below, timeout=5).status_code == 403
    # the street's officer acknowledges (as themselves), then whistles the water company in
    r = county.http.post(f"{url}/acknowledge", json={"actor": "someone-else"}, headers=mine, timeout=5)
    assert r.status_code == 200, r.text
    acked = r.json()["item"]
    assert acked["status"] == "acknowledged" and acked["acknowledged_by"].startswith("test-street-officer")
    again = county.http.post(f"{url}/acknowledge", json={}, headers=mine, timeout=5)
    assert again.status_code == 409
    r = county.http.post(f"{url}/whistle", json={"departments": ["water"]}, headers=mine, timeout=5)
    assert r.status_code == 200, r.text
    assert r.json()["item"]["status"] == "acted" and r.json()["item"]["action"] == "whistle"
    wait_until(
        lambda: "water" in {w["department"] for w in county.store.work_orders_of(case["id"])}, what="water's part"
    )
    assert county.store.r.zscore(county.store.key("office", street, "queue"), item["id"]) is None
    actions = [s["action"] for s in county.store.timeline(case["id"])]
    assert "acknowledge_escalation" in actions and "whistle" in actions

    # the grid's worker and the community's office were told; the street's office got its item
    def told():
        got = {(n["kind"], n["recipient"]["id"]) for n in webhook.json() if n["case_id"] == case["id"]}
        want = {
            ("escalated", f"office:{street}"),
            ("escalated_below", f"grid:{case['grid']}"),
            ("escalated_below", f"office:{community}"),
        }
        return want <= got

    wait_until(told, timeout=20, what="the escalation notices")


def test_an_office_that_does_not_acknowledge_sends_the_case_up(env):
    county, _ = env
    case = _case(county, seed=82)
    street_item = _item(county, case["id"], "street")
    county_item = _item(county, case["id"], "county")  # 10 s later: the street office missed it
    items = {i["level"]: i for i in county.store.case(case["id"])["escalations"]}
    assert items["street"]["status"] == "passed_up" and items["county"]["status"] == "open"
    assert county_item["from_level"] == "street" and county_item["reason"] == "office_unacknowledged"
    street = street_item["unit"]
    queue = county.store.key("office", street, "queue")
    assert county.store.r.zscore(queue, street_item["id"]) is None  # off the street's queue
    sup = county.services.url("supervision")
    top = county.http.get(f"{sup}/escalations", timeout=5).json()  # the command centre: the root's queue
    assert county_item["id"] in [i["id"] for i in top["items"]]
    supervised = [s for s in county.store.timeline(case["id"]) if s.get("item") == street_item["id"]]
    assert [s["action"] for s in supervised] == ["supervise"]
    # the command centre closes it not fixed as the top's office
    r = county.http.post(
        f"{sup}/escalations/{county_item['id']}/close_not_fixed", json={"note": "not ours to fix"}, timeout=5
    )
    assert r.status_code == 200, r.text
    assert r.json()["case"]["status"] == "closed" and r.json()["item"]["status"] == "acted"
    scrape = county.http.get(f"{sup}/metrics", timeout=5).text
    assert "onegrid_office_escalations_total{" in scrape and 'outcome="missed"' in scrape


def test_the_grid_worker_checks_in_on_site_late_after_the_arrival_deadline(env):
    county, _ = env
    case = _case(county, seed=83)
    sup = county.services.url("supervision")
    # 10 minutes at 3600x is a sixth of a second: the deadline passes, the timeline says so
    missed = wait_until(
        lambda: [s for s in county.store.timeline(case["id"]) if s["action"] == "arrival_overdue"], what="the miss"
    )
    assert len(missed) == 1
    url = f"{sup}/cases/{case['id']}/check-in"
    worker = _officer(county, access.GRID_WORKER, case["grid"])
    elsewhere = next(g.code for g in county.tenant.grids() if g.code != case["grid"])
    stranger = _officer(county, access.GRID_WORKER, elsewhere)
    spot = {"lat": 34.75, "lon": 113.6}
    assert county.http.post(url, json=spot, headers=stranger, timeout=5).status_code == 403  # not their grid
    assert county.http.post(url, json={"lat": 91, "lon": 0}, headers=worker, timeout=5).status_code == 400
    r = county.http.post(url, json=spot, headers=worker, timeout=5)
    assert r.status_code == 200, r.text
    assert r.json()["case"]["arrival_late"] is True
    [line] = [s for s in county.store.timeline(case["id"]) if s["action"] == "check_in"]
    assert line["late"] is True and line["location"] == spot and "late by" in line["note"]
    assert line["actor"].startswith("test-grid-worker")
    assert county.http.post(url, json=spot, headers=worker, timeout=5).status_code == 409  # once
    scrape = county.http.get(f"{sup}/metrics", timeout=5).text
    assert 'onegrid_arrivals_total{outcome="late"' in scrape or 'outcome="late"' in scrape


def test_the_console_tray_shows_the_item_and_acknowledges_it(env):
    county, _ = env
    case = _case(county, seed=84)
    item = _item(county, case["id"], "street")
    street = item["unit"]
    mine = _officer(county, access.STREET_OFFICER, street)
    console = county.services.url("console")
    trays = county.http.get(f"{console}/console/inbox/trays", headers=mine, timeout=10)
    assert trays.status_code == 200 and f'data-item="{item["id"]}"' in trays.text
    assert f'action="/console/escalations/{item["id"]}/acknowledge"' in trays.text
    r = county.http.post(
        f"{console}/console/escalations/{item['id']}/acknowledge", headers=mine, allow_redirects=False, timeout=10
    )
    assert r.status_code == 303 and r.headers["Location"].endswith("done=escalation_acknowledge"), r.text
    items = {i["level"]: i for i in county.store.case(case["id"])["escalations"]}
    assert items["street"]["status"] == "acknowledged"
    assert items["street"]["acknowledged_by"] == f"test-street-officer-{street}"
    other = _officer(county, access.STREET_OFFICER, _other_street(county, street))
    refused = county.http.post(
        f"{console}/console/escalations/{item['id']}/take_over", headers=other, allow_redirects=False, timeout=10
    )
    assert refused.status_code == 403


def test_the_demos_simulated_offices_acknowledge_and_take_over(env):
    from sim.actors import Actors, Badges, offices_of

    county, _ = env
    case = _case(county, seed=85)
    item = _item(county, case["id"], "street")
    offices = offices_of(county.tenant)
    assert (item["unit"], access.STREET_OFFICER) in offices and (county.tenant.root, access.OPERATOR) in offices
    actors = Actors(
        county.uri,
        county.services.url("departments"),
        county.services.url("supervision"),
        county.tenant.departments,
        Badges.of(county.tenant),
        offices=[(item["unit"], access.STREET_OFFICER)],
    )
    threading.Thread(target=actors._clock, daemon=True).start()
    try:
        assert actors._office(item, item["unit"], access.STREET_OFFICER, "acknowledge") is True
        done = wait_until(
            lambda: next(
                (
                    i
                    for i in county.store.case(case["id"])["escalations"]
                    if i["id"] == item["id"] and i["status"] == "acted"
                ),
                None,
            ),
            timeout=20,
            what="the take-over",
        )
        assert done["action"] == "take_over"
    finally:
        actors.close()
