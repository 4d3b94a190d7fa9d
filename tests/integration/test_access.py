"""People on the running services of a county that trusts no unauthenticated HTTP: every route
of the catalogue × every role (allowed, 403, 401 without a token), generated from the
catalogue so a new route without a rule fails here; bad tokens of every kind refused; the
actor of a timeline entry is the signed-in person; refusals and reads of personal data in the
audit; phone numbers masked; ids checked at the edge; the issuer's keys served and rotated."""

from __future__ import annotations

import dataclasses
import json
import time

import jwt
import pytest
import requests

from onegrid.adapters.identity import AUDIENCE, EmbeddedIssuer
from onegrid.catalogue import COMMON_ROUTES, services
from onegrid.domain import access
from onegrid.domain.access import PUBLIC, ROUTE_ACTIONS, Principal, Resource, case_resource, decide
from onegrid.domain.cases import case_id
from tests.conftest import County
from tests.support import publish, wait_until

pytestmark = pytest.mark.integration
PHONE = "13812345678"
ALL = ("intake", "routing", "departments", "supervision", "scoring", "notify", "open311", "registry", "console")


@pytest.fixture(scope="module")
def county(tmp_path_factory):
    c = County(
        tmp_path_factory.mktemp("access"),
        services=ALL,
        env={"ONEGRID_WEBHOOK_SECRET": "s3cret", "NOTIFY_WEBHOOK_URL": "http://127.0.0.1:9/hook"},
        manifest={"trust_unauthenticated_http": False},
    )
    c.services.start()
    yield c
    c.close()


def _case(county, seed: int, reporter: str) -> dict:
    sim = county.simulator(seed=seed)
    while True:
        p = sim.good()
        if p.department != "governance":
            break
    data = json.loads(p.body)
    data["reporter"] = {"kind": "citizen", "id": reporter, "phone": PHONE}
    p = dataclasses.replace(p, body=json.dumps(data).encode())
    publish(county.uri, [p])
    cid = case_id(f"{p.department}|{p.headers['ce-source']}|{p.event_id}")
    wait_until(lambda: (c := county.store.case(cid)) and c["status"] == "dispatched", what="dispatch")
    return {**county.store.case(cid), "work_orders": county.store.work_orders_of(cid)}


@pytest.fixture(scope="module")
def world(county):
    """A case, and one person of every role fitted to it (their scope contains the case)."""
    case = _case(county, 71, "citizen-7171")
    issuer = EmbeddedIssuer(county.store.r, county.tenant)
    t, grid, dept = county.tenant, case["grid"], case["work_orders"][0]["department"]
    scopes = {
        access.STREET_OFFICER: t.ancestor(grid, "street").code,
        access.COMMUNITY_OFFICER: t.ancestor(grid, "community").code,
        access.GRID_WORKER: grid,
        access.DEPARTMENT_STAFF: dept,
    }
    people = {}
    for role in access.ROLES:
        subject = "citizen-7171" if role == access.CITIZEN else f"{role.replace('_', '-')}-1"
        issuer.add(subject, role, scopes.get(role, ""))
        people[role] = Principal(subject, role, scopes.get(role, ""))
    tokens = {role: issuer.token(p.subject) for role, p in people.items()}
    return {
        "case": case,
        "issuer": issuer,
        "people": people,
        "tokens": tokens,
        "dept": dept,
        "open311": _open311_request(county, grid),
    }


def _open311_request(county, grid: str) -> dict:
    """A request through the Open311 door, in the case's grid: its token and its id."""
    from onegrid.adapters.geo import shape_of
    from onegrid.adapters.redis.open311 import Clients

    spot = shape_of(county.tenant.geography.areas[grid]).representative_point()
    key = Clients(county.store.r, county.id).issue("access-test")
    form = {"api_key": key, "service_code": "other", "lat": spot.y, "long": spot.x, "description": "路灯不亮已三天"}
    answer = requests.post(county.services.url("open311") + "/open311/v2/requests.json", data=form, timeout=10)
    assert answer.status_code == 201, answer.text
    got = answer.json()[0]
    token = got.get("token")
    if token is None:  # answered with the id: the token is the event id of the case
        token = county.store.case(got["service_request_id"])["event_id"]
    url = county.services.url("open311") + f"/open311/v2/tokens/{token}.json"
    request_id = wait_until(lambda: requests.get(url, timeout=10).json()[0]["service_request_id"], what="request")
    return {"token": token, "id": request_id}


def _request(county, world, service: str, route: str) -> tuple[str, str, dict | None, Resource]:
    """A concrete request for a catalogue route, harmless once allowed (a bad body, action or
    decision answered after the access check), and the resource the policy judges."""
    case, dept = world["case"], world["dept"]
    wo = next(w for w in case["work_orders"] if w["department"] == dept)
    method, url = route.split(" ", 1)
    fill = {
        "<string:case_id>": case["id"],
        "<string:department>": dept,
        "<string:work_order_id>": wo["id"],
        "<string:action>": "no-such-action",
        "<string:decision>": "no-such-decision",
        "<string:worker>": world["people"][access.GRID_WORKER].subject,
        "<path:event_id>": case["event_id"],
        "<path:name>": "console.css",  # console: a file of the page
        "<string:lang>": "en",
        "<string:name>": "0" * 64 + ".png",  # a photo the case does not have
        "<string:month>": "2026-11",
        "<string:file>": "closure.csv",
        "<string:fmt>": "json",
        "<string:service_code>": "other",
        "<string:request_id>": world["open311"]["id"],
        "<string:token>": world["open311"]["token"],
        "<string:key>": case["event_type"],  # the registry: an event type of the county ...
        "<int:version>": "99",  # ... and a version it does not have (retiring it is a 404, harmless)
        "<string:item_id>": f"e-{case['id'][2:]}-street",  # the street office's item (none yet: a 404)
    }
    for k, v in fill.items():
        url = url.replace(k, v)
    resource = Resource()
    if "<string:item_id>" in route:  # an escalation item: judged at its office's unit
        resource = Resource(grid=county.tenant.ancestor(case["grid"], "street").code)
    elif "<string:case_id>" in route:
        resource = case_resource(case)
    elif "<string:department>" in route:
        resource = Resource(departments=(dept,))
    elif "<string:worker>" in route:
        resource = Resource(worker=fill["<string:worker>"])
    body = {} if method == "POST" else None
    return method, county.services.url(service) + url, body, resource


def _expected(county, who: Principal, route: str, resource: Resource) -> bool:
    action = ROUTE_ACTIONS[route]
    listing = action in ("cases.list", "console.inbox", "reports.read", "escalations.list")
    if listing and who.role in access.SCOPE_LEVEL:
        resource = Resource(grid=who.scope)  # a scoped role lists (reports on) its own subtree
    return decide(county.tenant, who, action, resource).allowed


def _routes():
    return [(s.name, r) for s in services() for r in s.routes if r.split(" ", 1)[1] not in COMMON_ROUTES]


def test_every_route_has_a_rule():
    missing = [f"{name}: {route}" for name, route in _routes() if route not in ROUTE_ACTIONS]
    assert not missing, f"routes without an access rule in onegrid/domain/access.py: {missing}"


@pytest.mark.parametrize(("service", "route"), _routes(), ids=[f"{s}:{r}" for s, r in _routes()])
def test_route_by_role(county, world, service, route):
    method, url, body, resource = _request(county, world, service, route)
    action = ROUTE_ACTIONS[route]
    anonymous = requests.request(method, url, json=body, timeout=10)
    if action == PUBLIC:
        assert anonymous.status_code == 200, anonymous.text
        return
    assert anonymous.status_code == 401, (route, anonymous.text)
    if action not in access.GATEWAYS_ONLY:  # the SMS gateway signs its push; it has no bearer token
        assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    for role, who in world["people"].items():
        r = requests.request(method, url, json=body, headers=_auth(world["tokens"][role]), timeout=10)
        if action in access.MACHINES_ONLY | access.GATEWAYS_ONLY:  # a person's JWT is no token, no signature
            assert r.status_code == 401, (role, r.text)
        elif action in access.CLIENTS_ONLY:  # the Open311 door: a person's JWT is no client's api_key
            assert r.status_code == 403 and r.json()[0]["code"] == 403, (role, r.text)
        elif _expected(county, who, route, resource):
            assert r.status_code not in (401, 403, 500), (role, route, r.status_code, r.text)
        else:
            assert r.status_code == 403, (role, route, r.status_code, r.text)
            assert r.json()["error"]


def _auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def _get_case(county, world, token: str) -> requests.Response:
    return requests.get(
        f"{county.services.url('supervision')}/cases/{world['case']['id']}", headers=_auth(token), timeout=10
    )


def test_bad_tokens_are_refused(county, world):
    issuer, operator = world["issuer"], world["people"][access.OPERATOR]
    assert _get_case(county, world, world["tokens"][access.OPERATOR]).status_code == 200
    key = issuer._keys()[jwt.get_unverified_header(world["tokens"][access.OPERATOR])["kid"]]
    now = int(time.time())
    claims = {"iss": issuer.issuer, "aud": AUDIENCE, "sub": operator.subject, "tenant": county.id, "role": "operator"}
    kid = {"kid": jwt.get_unverified_header(world["tokens"][access.OPERATOR])["kid"]}
    expired = jwt.encode({**claims, "iat": now - 7200, "exp": now - 3600}, key["private"], "ES256", headers=kid)
    wrong_aud = issuer.token(operator.subject, audience="somebody-else")
    wrong_iss = jwt.encode(
        {**claims, "iss": "https://evil.example", "iat": now, "exp": now + 60}, key["private"], "ES256", headers=kid
    )
    other = EmbeddedIssuer(county.store.r, dataclasses.replace(county.tenant, id=f"{county.id}-other"))
    other.add(operator.subject, access.OPERATOR)
    other_tenant = other.token(operator.subject)
    good = world["tokens"][access.OPERATOR]
    head, payload, sig = good.split(".")
    bad_sig = f"{head}.{payload}.{sig[:-6]}{'A' * 6 if not sig.endswith('AAAAAA') else 'B' * 6}"
    promoted = {**jwt.decode(good, options={"verify_signature": False}), "role": "supervisor"}
    forged = f"{head}.{jwt.utils.base64url_encode(json.dumps(promoted).encode()).decode()}.{sig}"
    try:
        for name, token in [
            ("expired", expired),
            ("wrong audience", wrong_aud),
            ("wrong issuer", wrong_iss),
            ("another county's", other_tenant),
            ("bad signature", bad_sig),
            ("forged claims", forged),
            ("garbage", "not-a-jwt"),
        ]:
            r = _get_case(county, world, token)
            assert r.status_code == 401, (name, r.text)
            assert r.json()["error"] == "invalid_token" and r.json()["detail"], name
    finally:
        county.store.r.delete(*county.store.r.keys(f"og:{{{county.id}-other}}:*"))


def test_revocation_takes_effect_at_once(county, world):
    issuer = world["issuer"]
    issuer.add("operator-2", access.OPERATOR)
    first, second = issuer.token("operator-2"), issuer.token("operator-2")
    assert _get_case(county, world, first).status_code == 200
    issuer.revoke(jti=jwt.decode(first, options={"verify_signature": False})["jti"])
    assert _get_case(county, world, first).status_code == 401
    assert _get_case(county, world, second).status_code == 200
    issuer.revoke(subject="operator-2")
    r = _get_case(county, world, second)
    assert r.status_code == 401 and "revoked" in r.json()["detail"]


def test_key_rotation_keeps_old_tokens_until_they_expire(county, world):
    issuer = world["issuer"]
    old = world["tokens"][access.SUPERVISOR]
    old_kid = jwt.get_unverified_header(old)["kid"]
    new_kid = issuer.rotate_key()
    new = issuer.token(world["people"][access.SUPERVISOR].subject)
    assert jwt.get_unverified_header(new)["kid"] == new_kid != old_kid
    assert _get_case(county, world, old).status_code == 200
    assert _get_case(county, world, new).status_code == 200
    sup = county.services.url("supervision")
    jwks = requests.get(f"{sup}/.well-known/jwks.json", timeout=5).json()
    assert {old_kid, new_kid} <= {k["kid"] for k in jwks["keys"]}
    conf = requests.get(f"{sup}/.well-known/openid-configuration", timeout=5).json()
    assert conf["issuer"] == issuer.issuer and conf["jwks_uri"].endswith("/.well-known/jwks.json")
    # verified against the served JWKS with PyJWT alone, as any relying party would
    key = jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == new_kid)).key
    assert jwt.decode(new, key, algorithms=["ES256"], audience=AUDIENCE, issuer=conf["issuer"])["sub"]


def test_the_actor_is_the_signed_in_person_and_phones_are_masked(county, world):
    case = _case(county, 72, "citizen-7272")
    sup = county.services.url("supervision")
    operator = world["people"][access.OPERATOR]
    # a body's actor of the wrong type is a 400 even for a person, whose token decides who is recorded
    for wrong in ({"name": "mallory"}, "", None):
        r = requests.post(
            f"{sup}/cases/{case['id']}/reject",
            json={"actor": wrong, "note": "not our business"},
            headers=_auth(world["tokens"][access.OPERATOR]),
            timeout=10,
        )
        assert r.status_code == 400 and "actor" in r.json()["fields"], r.text
    r = requests.post(
        f"{sup}/cases/{case['id']}/reject",
        json={"actor": "mallory", "note": "not our business"},
        headers=_auth(world["tokens"][access.OPERATOR]),
        timeout=10,
    )
    assert r.status_code == 200, r.text
    [step] = [s for s in county.store.timeline(case["id"]) if s["action"] == "reject"]
    assert step["actor"] == operator.subject
    seen = {
        role: requests.get(f"{sup}/cases/{case['id']}", headers=_auth(world["tokens"][role]), timeout=10).json()
        for role in (access.OPERATOR, access.SUPERVISOR, access.AUDITOR)
    }
    assert seen[access.OPERATOR]["reporter"]["phone"] == PHONE
    assert seen[access.SUPERVISOR]["reporter"]["phone"] == seen[access.AUDITOR]["reporter"]["phone"] == "138****5678"


def test_refusals_and_personal_reads_are_audited_for_the_auditor(county, world):
    sup = county.services.url("supervision")
    cid = world["case"]["id"]
    requests.get(f"{sup}/cases/{cid}", headers=_auth(world["tokens"][access.CITIZEN]), timeout=10)  # their own
    requests.post(
        f"{sup}/cases/{cid}/reject", json={"note": "x"}, headers=_auth(world["tokens"][access.AUDITOR]), timeout=10
    )
    assert requests.get(f"{sup}/audit", headers=_auth(world["tokens"][access.OPERATOR]), timeout=10).status_code == 403
    r = requests.get(f"{sup}/audit", params={"limit": 500}, headers=_auth(world["tokens"][access.AUDITOR]), timeout=10)
    assert r.status_code == 200, r.text
    entries = r.json()["entries"]
    assert any(e["subject"] == "citizen-7171" and e["outcome"] == "read" and e["target"] == cid for e in entries)
    assert any(e["subject"] == "auditor-1" and e["outcome"] == "refused" and e["action"] == "case.act" for e in entries)
    assert any(e["outcome"] == "unauthenticated" for e in entries)


@pytest.mark.parametrize("service", ["departments", "supervision"])
@pytest.mark.parametrize("bad", ["c-0123:timeline", "c-0123456789abcdef:work_orders", "x", "c-ZZZZZZZZZZZZZZZZ"])
def test_a_malformed_case_id_is_a_404(county, world, service, bad):
    r = requests.get(
        f"{county.services.url(service)}/cases/{bad}", headers=_auth(world["tokens"][access.OPERATOR]), timeout=10
    )
    assert r.status_code == 404 and "case id" in r.json()["error"], r.text


def test_a_malformed_work_order_id_is_a_404(county, world):
    url = f"{county.services.url('departments')}/departments/{world['dept']}/work-orders/w-nope:x/accept"
    r = requests.post(url, json={}, headers=_auth(world["tokens"][access.DEPARTMENT_STAFF]), timeout=10)
    assert r.status_code == 404 and "work order id" in r.json()["error"], r.text


def test_the_console_masks_phones_audits_the_read_and_keeps_each_inbox_in_its_scope(county, world):
    """The command-centre page shows a case as supervision's GET /cases/<id> does (the phone
    masked for a supervisor, whole for the operator, each read of it audited), and a person's
    inbox holds only their part of the county."""
    page = county.services.url("console")
    cid = world["case"]["id"]

    def html(role: str, path: str) -> str:
        r = requests.get(page + path, headers={**_auth(world["tokens"][role]), "Accept": "text/html"}, timeout=10)
        assert r.status_code == 200, (role, path, r.status_code, r.text[:300])
        return r.text

    assert PHONE in html(access.OPERATOR, f"/console/cases/{cid}")
    supervisor = html(access.SUPERVISOR, f"/console/cases/{cid}")
    assert PHONE not in supervisor and "138****5678" in supervisor
    r = requests.get(
        county.services.url("supervision") + "/audit",
        params={"limit": 500, "subject": world["people"][access.SUPERVISOR].subject},
        headers=_auth(world["tokens"][access.AUDITOR]),
        timeout=10,
    )
    assert any(e["outcome"] == "read" and e["target"] == cid for e in r.json()["entries"]), r.text
    # a community officer of another community sees none of this case on the map; the case's own officer does
    own = world["people"][access.COMMUNITY_OFFICER]
    other = next(n.code for n in county.tenant.nodes.values() if n.level == "community" and n.code != own.scope)
    world["issuer"].add("community-officer-2", access.COMMUNITY_OFFICER, other)
    token = world["issuer"].token("community-officer-2")
    mine = requests.get(
        page + "/console/map/cases.json", headers=_auth(world["tokens"][access.COMMUNITY_OFFICER]), timeout=10
    )
    theirs = requests.get(page + "/console/map/cases.json", headers=_auth(token), timeout=10)
    assert cid in {c["id"] for c in mine.json()["cases"]}
    assert cid not in {c["id"] for c in theirs.json()["cases"]}
    assert all(access.within(county.tenant, c["grid"], other) for c in theirs.json()["cases"])
