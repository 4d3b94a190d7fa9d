"""The registry service on the real bus: a contract version published over its HTTP API is
accepted by the RUNNING intake without a restart (and a manifest published changes what the
running routing does); validate and compatibility answer without touching the bus; usage is
counted per version and department, and retiring a version in use is refused."""

from __future__ import annotations

import json
import time

import pytest
import requests

from onegrid.cli.main import main as cli
from onegrid.domain import access
from onegrid.kernel import envelope as ce
from sim.runner import ServiceSet, free_port_base, port_span
from tests.conftest import County
from tests.support import bearer, department_bearer, wait_until

pytestmark = pytest.mark.integration
KEY = "market_regulation.food_safety_hazard_found"
MR = "market_regulation"


@pytest.fixture(scope="module")
def county(tmp_path_factory):
    c = County(
        tmp_path_factory.mktemp("registry"),
        services=("intake", "routing", "registry"),
        manifest={"trust_unauthenticated_http": False},
    )
    c.services.start()
    c.admin = bearer(c.store.r, c.tenant, access.TENANT_ADMIN)
    c.operator = bearer(c.store.r, c.tenant, access.OPERATOR)
    c.mr = department_bearer(c.tenant, MR)
    yield c
    c.close()


def _registry(county, path: str) -> str:
    return county.services.url("registry") + path


def _event(county, version: int, event_id: str, severity: str = "minor", grid: int = 0, **extra) -> dict:
    env = ce.new(tenant=county.id, department=MR, type=KEY, source="/mr/inspections", version=version, id=event_id)
    data = {
        "grid": county.tenant.grids()[grid].code,
        "severity": severity,
        "summary": "expired milk on the shelves",
        "occurred_at": "2024-05-01T08:00:00+08:00",
        "reporter": {"kind": "department_staff", "id": "mr-7"},
        "business_name": "Corner shop",
        "hazard": "expired",
        **extra,
    }
    return env.structured(data)


def _send(county, event: dict) -> requests.Response:
    headers = {**county.mr, "Content-Type": ce.STRUCTURED}
    return requests.post(county.services.url("intake") + "/events", data=json.dumps(event), headers=headers, timeout=10)


V3 = {
    "summary": "Food hazard with the inspector's id.",
    "category": "food_safety",
    "fields": {
        "business_name": {"type": "string", "required": True, "min_length": 1, "max_length": 200},
        "hazard": {
            "type": "enum",
            "required": True,
            "values": ["expired", "adulterated", "counterfeit", "unsafe_storage", "no_health_certificate", "other"],
        },
        "people_affected": {"type": "integer", "required": False, "min": 0, "max": 100000},
        "product": {"type": "string", "required": False, "min_length": 1, "max_length": 100},
        "batch_no": {"type": "string", "required": False, "max_length": 64},
        "samples_taken": {"type": "boolean", "required": False},
        "inspector": {"type": "string", "required": False, "max_length": 20},
    },
}


def test_a_published_version_is_accepted_by_the_running_intake_without_a_restart(county):
    before = _send(county, _event(county, 3, "v3-early", inspector="insp-1"))
    assert before.status_code == 422 and before.json()["reason"] == "unknown_version", before.text
    intake_pid = county.services.procs["intake"].pid

    refused = requests.post(
        _registry(county, f"/contracts/{KEY}/versions"), json=V3, headers=county.operator, timeout=10
    )
    assert refused.status_code == 403  # an operator reads; a tenant admin publishes
    started = time.monotonic()
    published = requests.post(
        _registry(county, f"/contracts/{KEY}/versions"), json=V3, headers=county.admin, timeout=10
    )
    assert published.status_code == 200, published.text
    assert published.json() == {"outcome": "published", "revision": 1, "key": KEY, "version": 3}

    accepted: dict = {}

    def takes_v3() -> bool:
        r = _send(county, _event(county, 3, f"v3-{time.monotonic_ns()}", inspector="insp-1"))
        accepted["r"] = r
        return r.status_code == 201

    wait_until(takes_v3, timeout=15, what="the running intake to accept version 3")
    took = time.monotonic() - started
    assert county.services.procs["intake"].pid == intake_pid and county.services.procs["intake"].poll() is None
    case = county.store.case(accepted["r"].json()["case_id"])
    assert case["data"]["inspector"] == "insp-1"
    print(f"published → accepted by the running intake in {took:.2f} s")

    listed = requests.get(_registry(county, "/contracts"), headers=county.mr, timeout=10).json()
    (food,) = [c for c in listed["contracts"] if c["key"] == KEY]
    assert [(v["version"], v["released"]) for v in food["versions"]] == [(1, True), (2, True), (3, False)]
    one = requests.get(_registry(county, f"/contracts/{KEY}/versions/3"), headers=county.mr, timeout=10).json()
    assert "inspector" in one["schema"]["properties"] and one["dataschema"] == ce.dataschema(KEY, 3)
    doc = requests.get(_registry(county, "/asyncapi.json"), timeout=10).json()
    assert f"{KEY}.v3" in json.dumps(doc)

    again = requests.post(
        _registry(county, f"/contracts/{KEY}/versions"), json={**V3, "version": 3}, headers=county.admin, timeout=10
    )
    assert again.json()["outcome"] == "unchanged"
    edited = {**V3, "version": 3, "summary": "edited after publishing"}
    changed = requests.post(
        _registry(county, f"/contracts/{KEY}/versions"), json=edited, headers=county.admin, timeout=10
    )
    assert changed.status_code == 409 and "immutable" in changed.json()["error"]


def test_validate_judges_as_intake_without_touching_the_bus(county):
    quarantined, cases = county.store.stats().get("quarantined", 0), county.store.stats().get("cases", 0)
    url = _registry(county, "/validate")
    good = requests.post(
        url,
        data=json.dumps(_event(county, 1, "val-1")),
        headers={**county.mr, "Content-Type": ce.STRUCTURED},
        timeout=10,
    )
    assert good.status_code == 200 and good.json()["outcome"] == "valid", good.text
    bad = _event(county, 1, "val-2", hazard="mould")
    verdict = requests.post(
        url, data=json.dumps(bad), headers={**county.mr, "Content-Type": ce.STRUCTURED}, timeout=10
    ).json()
    assert (verdict["outcome"], verdict["reason"]) == ("invalid", "schema_violation") and "hazard" in verdict["detail"]
    spoof = {**_event(county, 1, "val-3"), "department": "water"}
    verdict = requests.post(
        url, data=json.dumps(spoof), headers={**county.mr, "Content-Type": ce.STRUCTURED}, timeout=10
    ).json()
    assert verdict["reason"] == "spoofed"
    wrong_type = requests.post(url, data="x", headers={**county.mr, "Content-Type": "text/plain"}, timeout=10)
    assert wrong_type.status_code == 400
    stats = county.store.stats()
    assert (stats.get("quarantined", 0), stats.get("cases", 0)) == (quarantined, cases)


def test_compatibility_gives_the_findings(county):
    proposal = {**V3, "fields": {**V3["fields"], "lot": {"type": "string", "required": True, "max_length": 10}}}
    r = requests.post(
        _registry(county, f"/contracts/{KEY}/compatibility"), json=proposal, headers=county.mr, timeout=10
    )
    assert r.status_code == 200, r.text
    found = r.json()
    assert found["compatible"] is False and found["mode"] == "BACKWARD"
    assert [(f["rule"], f["path"]) for f in found["findings"]] == [("required_field_added", "lot")]
    broken = requests.post(
        _registry(county, f"/contracts/{KEY}/compatibility"), json={"summary": "x"}, headers=county.mr, timeout=10
    )
    assert broken.status_code == 400


def test_retiring_a_version_in_use_is_refused_and_an_unused_one_is_retired(county, capsys):
    _send(county, _event(county, 3, "in-use-1", inspector="insp-2"))
    usage = requests.get(_registry(county, f"/contracts/{KEY}/usage"), headers=county.operator, timeout=10).json()
    v3 = [u for u in usage["uses"] if u["version"] == 3 and u["department"] == MR]
    assert v3 and v3[0]["events"] >= 2 and usage["recent_use_days"] == 30
    refused = requests.post(_registry(county, f"/contracts/{KEY}/versions/3/retire"), headers=county.admin, timeout=10)
    assert refused.status_code == 409 and "in use: market_regulation" in refused.json()["error"]

    assert cli(["--dir", str(county.contracts), "contracts", "retire", county.id, KEY, "3", "--actor", "ops-1"]) == 1
    assert "in use: market_regulation" in capsys.readouterr().err
    assert cli(["--dir", str(county.contracts), "contracts", "usage", county.id, KEY]) == 0
    assert "market_regulation" in capsys.readouterr().out

    retired = requests.post(_registry(county, f"/contracts/{KEY}/versions/1/retire"), headers=county.admin, timeout=10)
    assert retired.status_code == 200 and retired.json()["outcome"] == "retired", retired.text

    def refuses_v1() -> bool:
        r = _send(county, _event(county, 1, f"v1-{time.monotonic_ns()}"))
        return r.status_code == 422 and r.json()["reason"] == "unknown_version"

    wait_until(refuses_v1, timeout=15, what="the running intake to refuse the retired version 1")


def _cli_rows(out: str) -> dict[str, tuple[int, int]]:
    """`onegrid whatif manifest --all`'s work-order rows: `<department> @ <level>` -> (current, proposed)."""
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.split("\u2502")]
        cells = [c for c in cells if c]
        if len(cells) == 4 and " @ " in cells[0]:
            rows[cells[0]] = (int(cells[1].replace(",", "")), int(cells[2].replace(",", "")))
    return rows


def test_whatif_manifest_over_http_is_what_the_cli_prints(county, tmp_path, capsys):
    """A proposed manifest with food safety routed to health, tried on the county's history
    streams by the running registry: the work orders move from market regulation to health,
    as `onegrid whatif manifest` prints them; nothing is published."""
    grids = county.tenant.grids()
    for i in range(3):  # the last grids: the routing test below takes them from the first on
        sent = _send(county, _event(county, 2, f"whatif-{i}-{time.monotonic_ns()}", grid=len(grids) - 1 - i))
        assert sent.status_code == 201, sent.text
        cid = sent.json()["case_id"]
        wait_until(lambda cid=cid: county.store.work_orders_of(cid), timeout=15, what="routing")
    manifest = requests.get(_registry(county, "/manifest"), headers=county.operator, timeout=10).json()
    revision = requests.get(_registry(county, "/contracts"), headers=county.operator, timeout=10).json()["revision"]
    for rule in manifest["routing"]:
        if rule.get("category") == "food_safety":
            rule["departments"], rule["alternates"] = ["health"], []
    url = _registry(county, "/whatif/manifest?days=30&top=5")

    assert requests.post(url, json=manifest, headers=county.mr, timeout=10).status_code == 403  # a department
    assert requests.post(url, json=manifest, timeout=10).status_code == 401
    bad = {**manifest, "routing": [{"category": "*", "severity": "*", "level": "grid", "departments": ["nobody"]}]}
    r = requests.post(url, json=bad, headers=county.operator, timeout=10)
    assert r.status_code == 400 and r.json()["fields"]["problems"], r.text
    r = requests.post(_registry(county, "/whatif/manifest?days=0"), json=manifest, headers=county.operator, timeout=10)
    assert r.status_code == 400 and "days" in r.json()["fields"], r.text

    r = requests.post(url, json=manifest, headers=county.operator, timeout=60)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["tenant"] == county.id and got["days"] == 30

    def per_department(side: str) -> dict:
        return {(w["department"], w["level"]): w["work_orders"] for w in got[side]["work_orders"]}

    current, proposed = per_department("current"), per_department("proposed")
    assert current != proposed
    assert current.get(("market_regulation", "grid"), 0) >= 3 and ("market_regulation", "grid") not in proposed
    assert proposed[("health", "grid")] >= current.get(("health", "grid"), 0) + 3
    assert got["current"]["cases"] == got["proposed"]["cases"] >= 3
    assert {"what", "current", "proposed", "delta"} <= set(got["work_orders"][0])

    # the CLI on the same input prints the same work orders per department and level
    path = tmp_path / "proposed" / f"{county.id}.yaml"
    path.parent.mkdir()
    path.write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")  # JSON is YAML
    capsys.readouterr()
    assert cli(["--dir", str(county.contracts), "whatif", "manifest", str(path), "--days", "30", "--all"]) == 0
    printed = _cli_rows(capsys.readouterr().out)
    assert printed == {c["what"]: (c["current"], c["proposed"]) for c in got["work_orders"]}

    # nothing was published
    after = requests.get(_registry(county, "/contracts"), headers=county.operator, timeout=10).json()["revision"]
    assert after == revision


def test_a_published_manifest_changes_the_running_routing(county):
    manifest = requests.get(_registry(county, "/manifest"), headers=county.operator, timeout=10).json()
    for rule in manifest["routing"]:
        if rule.get("category") == "food_safety" and rule.get("severity") == "minor":
            rule["departments"], rule["alternates"] = ["health"], []
    r = requests.put(_registry(county, "/manifest"), json=manifest, headers=county.admin, timeout=10)
    assert r.status_code == 200 and r.json()["outcome"] == "published", r.text

    grids = iter(range(1, len(county.tenant.grids())))  # a grid each: not merged as a duplicate

    def routed_to_health() -> bool:
        sent = _send(county, _event(county, 2, f"route-{time.monotonic_ns()}", grid=next(grids)))
        if sent.status_code != 201:
            return False
        cid = sent.json()["case_id"]
        wait_until(lambda: county.store.work_orders_of(cid), timeout=10, what="routing")
        return [w["department"] for w in county.store.work_orders_of(cid)] == ["health"]

    wait_until(routed_to_health, timeout=20, what="the running routing to follow the published manifest")


def test_whatif_on_a_county_without_its_history_stream_is_a_409_saying_so(county):
    """Last on this county: its history.intake stream deleted (as on a county onboarded before
    the streams were part of its bus), what-if answers why, not a 500."""
    from kombu import Connection

    from onegrid.kernel import topology

    with Connection(county.uri) as conn:
        conn.default_channel.queue_delete(topology.HISTORY_INTAKE)
    manifest = requests.get(_registry(county, "/manifest"), headers=county.operator, timeout=10).json()
    r = requests.post(_registry(county, "/whatif/manifest"), json=manifest, headers=county.operator, timeout=60)
    assert r.status_code == 409 and topology.HISTORY_INTAKE in r.json()["error"], r.text


@pytest.fixture
def replicated(tmp_path):
    """Two intake processes: `registry.changed` reaches one of them, the other follows the
    published revision within TenantContext.RECHECK_SECONDS."""
    c = County(tmp_path, services=("intake", "registry"), manifest={"trust_unauthenticated_http": False})
    replicas = {"intake": 2}
    c.services = ServiceSet(
        c.id,
        c.uri,
        port_base=free_port_base(port_span(replicas)),
        log_dir=tmp_path / "logs",
        env={"CONTRACTS_DIR": str(c.contracts)},
        services=("intake", "registry"),
        replicas=replicas,
    )
    c.services.start()
    c.admin = bearer(c.store.r, c.tenant, access.TENANT_ADMIN)
    c.mr = department_bearer(c.tenant, MR)
    yield c
    c.close()


def test_every_intake_replica_accepts_a_published_version(replicated):
    county = replicated
    r = requests.post(_registry(county, f"/contracts/{KEY}/versions"), json=V3, headers=county.admin, timeout=10)
    assert r.status_code == 200, r.text
    for instance in ("intake", "intake-2"):
        url = county.services.url(instance) + "/events"

        def takes_v3(url=url) -> bool:
            event = _event(county, 3, f"v3-{time.monotonic_ns()}", inspector="insp-9")
            headers = {**county.mr, "Content-Type": ce.STRUCTURED}
            return requests.post(url, data=json.dumps(event), headers=headers, timeout=10).status_code == 201

        # the recheck interval (5 s) and a reload, with room for a loaded machine
        wait_until(takes_v3, timeout=20, what=f"{instance} to accept version 3")
