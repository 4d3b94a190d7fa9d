"""The integrators' examples under examples/ (Node.js with amqplib, Go with amqp091-go) run
as a department system would run them, against the real broker: a throwaway county is
onboarded as a real one (no trust in unauthenticated events), its intake and routing run as
their own users, and each example publishes with the department's credentials the AsyncAPI
document's example of an event, then reads that event's receipt and its work order from
the department's own queues. The case, the receipt and `GET /events/<id>` must agree; a
second report of the same thing is merged and told so; a bad one is quarantined and told
why. `make examples` (part of `make test`) installs node's and Go's parts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import requests
import yaml

from onegrid.contracts import asyncapi
from onegrid.domain.routing import route
from onegrid.kernel import settings
from onegrid.operator import ops
from sim.runner import ServiceSet
from tests.conftest import ROOT, free_port_base, make_tenant_contracts

pytestmark = pytest.mark.integration
DEPT = "market_regulation"
KEY = "market_regulation.food_safety_hazard_found"
NODE = ROOT / "examples" / "node"
GO_BIN = ROOT / "run" / "examples" / "onegrid-example"  # built by scripts/ensure-examples.sh


def _node(script: str):
    if shutil.which("node") is None:
        pytest.skip("node is not installed: make examples")
    if not (NODE / "node_modules" / "amqplib").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE, check=True, capture_output=True)
    return ["node", str(NODE / script)]


def _go(command: str):
    if not GO_BIN.exists():
        pytest.skip(f"{GO_BIN.relative_to(ROOT)} is not built: make examples")
    return [str(GO_BIN), command]


LANGUAGES = {
    "node": {"publish": lambda: _node("publisher.js"), "consume": lambda: _node("consumer.js")},
    "go": {"publish": lambda: _go("publish"), "consume": lambda: _go("consume")},
}


class County:
    def __init__(self, tmp: Path):
        root, self.id = make_tenant_contracts(tmp)
        manifest = root / "tenants" / f"{self.id}.yaml"
        doc = yaml.safe_load(manifest.read_text(encoding="utf-8"))
        doc.update(trust_unauthenticated_amqp=False, trust_unauthenticated_http=False)  # as a real county
        manifest.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
        self.tenant, self.registry = ops.manifest(str(manifest))
        result = ops.onboard(self.tenant, registry=self.registry)
        self.creds = {c.principal: c.values for c in result["credentials"]}
        self.root, self.services = root, []

    def start(self, tmp: Path) -> None:
        port = free_port_base(8)
        for name in ("intake", "routing"):  # each as its own user, with the county's Redis user
            svc = ServiceSet(
                self.id,
                self.creds[f"{self.id}.svc.{name}"]["uri"],
                port_base=port,
                services=(name,),
                log_dir=tmp,
                env={"CONTRACTS_DIR": str(self.root), "REDIS_URL": self.creds[self.id]["url"]},
            )
            self.services.append(svc)
            svc.start_one(name)
        for svc in self.services:
            svc.wait_ready(90)

    def env(self, dept: str = DEPT, **more) -> dict:
        """What a department's integrator is handed: the county, the department, its password."""
        base = settings.amqp_base().split("@")[-1].split("/")[0] or "localhost:5672"
        return {
            **os.environ,
            "ONEGRID_TENANT": self.id,
            "ONEGRID_DEPARTMENT": dept,
            "ONEGRID_PASSWORD": self.creds[f"{self.id}.{dept}"]["password"],
            "ONEGRID_AMQP_HOST": base,
            **more,
        }

    def token(self, dept: str) -> str:
        return self.creds[f"{self.id}.{dept}"]["http-token"]

    def told(self, event_id: str, dept: str = DEPT) -> requests.Response:
        url = f"{self.services[0].url('intake')}/events/{event_id}"
        return requests.get(url, headers={"Authorization": f"Bearer {self.token(dept)}"}, timeout=10)


@pytest.fixture(scope="module")
def county(tmp_path_factory):
    made = None
    try:
        made = County(tmp_path_factory.mktemp("examples"))
        made.start(tmp_path_factory.mktemp("logs"))
        yield made
    finally:
        if made is not None:
            for svc in made.services:
                svc.stop()
            ops.offboard(made.id, delete_data=True, force=True)


def _event_file(tmp: Path, county: County, grid_index: int, **data) -> tuple[Path, dict]:
    """The AsyncAPI document's example of the event, in a grid and a place of the test's own
    (reports near in time, close by and described alike are merged), as the file the examples read."""
    contract = county.registry.events[(KEY, 1)]
    example = asyncapi.example(county.tenant, contract)
    place = {"grid": county.tenant.grids()[grid_index].code, "location": {"lat": 20.0 + grid_index, "lon": 110.0}}
    payload = {**example["payload"], **place, **data}
    path = tmp / f"event-{grid_index}-{len(list(tmp.iterdir()))}.json"
    path.write_text(json.dumps({"type": KEY, "version": 1, "data": payload}, ensure_ascii=False), encoding="utf-8")
    return path, payload


def _run(cmd: list[str], env: dict, timeout: float = 60) -> list[str]:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{cmd} exited {done.returncode}: {done.stderr}"
    return done.stdout.splitlines()


def _read(lang: str, county: County, event_id: str, expect_work_order: bool) -> list[dict]:
    cmd = [*LANGUAGES[lang]["consume"](), event_id, "45"]
    env = county.env(ONEGRID_EXPECT_WORK_ORDER="1" if expect_work_order else "0")
    return [json.loads(line) for line in _run(cmd, env, 90)]


@pytest.mark.parametrize("lang", sorted(LANGUAGES))
def test_an_example_publishes_and_reads_its_receipt_and_work_order(lang, county, tmp_path):
    path, payload = _event_file(tmp_path, county, {"node": 1, "go": 2}[lang])
    decision = route(county.tenant, "food_safety", payload["severity"], payload["grid"])
    assert DEPT in decision.departments  # so the department receives the work order itself
    [event_id] = _run([*LANGUAGES[lang]["publish"](), str(path)], county.env())
    lines = _read(lang, county, event_id, expect_work_order=True)
    [receipt] = [m for m in lines if m["queue"] == f"receipts.{DEPT}" and m["subject"] == event_id]
    assert (receipt["type"], receipt["id"]) == ("event.accepted", f"{event_id}.accepted")
    case_id = receipt["data"]["case_id"]
    case = ops.store(county.id).case(case_id)
    assert case is not None and case["event_id"] == event_id and case["department"] == DEPT
    assert case["source"] == f"/{county.id}/departments/{DEPT}/{lang}-example"
    orders = [m for m in lines if m["queue"] == f"workorders.{DEPT}" and m["data"]["case_id"] == case_id]
    assert orders and orders[0]["type"] == "work_order.dispatched" and orders[0]["data"]["department"] == DEPT
    # the same over HTTP, as the department; another department's token sees nothing of it
    answer = county.told(event_id)
    assert answer.status_code == 200 and answer.json() == receipt["data"]
    other = county.told(event_id, "health")
    assert other.status_code == 404 and event_id in other.json()["error"]


def test_the_same_report_again_is_merged_and_told_so(county, tmp_path):
    path, _ = _event_file(tmp_path, county, 3)
    [first] = _run([*LANGUAGES["node"]["publish"](), str(path)], county.env())
    [head] = [m for m in _read("node", county, first, True) if m["subject"] == first]
    [second] = _run([*LANGUAGES["node"]["publish"](), str(path)], county.env())  # a new id, the same report
    lines = _read("node", county, second, False)  # accepted first, as a case of its own ...
    assert [m["type"] for m in lines if m["subject"] == second][0] == "event.accepted"
    if "event.merged" not in [m["type"] for m in lines if m["subject"] == second]:
        lines = _read("node", county, second, False)  # ... then merged, once routing has seen it
    told = [m["data"] for m in lines if m["subject"] == second and m["type"] == "event.merged"]
    assert told == [county.told(second).json()]
    assert told[0]["merged_into"] == head["data"]["case_id"] and told[0]["case_id"] != told[0]["merged_into"]
    assert ops.store(county.id).case(told[0]["case_id"])["status"] == "merged"


def test_a_bad_event_is_quarantined_and_its_department_told_why(county, tmp_path):
    path, _ = _event_file(tmp_path, county, 4, severity="catastrophic")
    [event_id] = _run([*LANGUAGES["go"]["publish"](), str(path)], county.env())
    lines = _read("go", county, event_id, False)
    [told] = [m["data"] for m in lines if m["subject"] == event_id]
    assert (told["outcome"], told["reason"]) == ("quarantined", "schema_violation") and "severity" in told["detail"]
    assert county.told(event_id).json() == told
    # its own quarantine list over HTTP: the same entry, the whole detail and the bytes
    url = f"{county.services[0].url('intake')}/quarantine"
    mine = requests.get(url, headers={"Authorization": f"Bearer {county.token(DEPT)}"}, timeout=10).json()
    [entry] = [e for e in mine["entries"] if e["id"] == told["quarantine_id"]]
    assert entry["detail"] == told["detail"] and entry["event_id"] == event_id
    assert json.loads(entry["body"])["severity"] == "catastrophic"
    theirs = requests.get(url, headers={"Authorization": f"Bearer {county.token('health')}"}, timeout=10).json()
    assert all(e["id"] != told["quarantine_id"] for e in theirs["entries"])
    assert requests.get(url, timeout=10).status_code == 401
