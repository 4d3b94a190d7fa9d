"""schemathesis against every service's HTTP surface (issue 7): each service's OpenAPI
document is loaded from the running service's own `GET /openapi.json`, and schemathesis sends
what the document allows (and, in its negative mode, what it does not) to a throwaway county
running every service as a process. Every answer must be no 5xx, a documented status
code, the documented content type, and a body and headers its schema allows; and a request
the document forbids must get a 4xx (but a batch, whose events each get their own outcome).
Afterwards every service is still up, no consumer has dead-lettered what the fuzzed cases
became on the bus, and a good event posted to intake still becomes a case routing dispatches.

The county trusts no unauthenticated HTTP: a request to intake carries the token of the
department its event names, a request to a department's work orders that department's
token, any other a person's JWT from the county's embedded issuer, of a role that may call
it. Path ids are sometimes swapped for real ones (cases intake registered during the run,
their work orders), so the lifecycle's answers are reached, not only 404s.

Bounded for `make test` (ONEGRID_OPENAPI_EXAMPLES examples an operation, default 30).
"""

from __future__ import annotations

import json
import os
import zlib

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode, checks

from onegrid.adapters.amqp import topology
from onegrid.adapters.identity import EmbeddedIssuer
from onegrid.adapters.redis.open311 import Clients
from onegrid.domain.access import AUDITOR, OPERATOR, SUPERVISOR
from onegrid.domain.cases import case_id
from onegrid.kernel import envelope as ce
from onegrid.operator import ops
from onegrid.operator.openapi import SERVICES
from tests.conftest import ROOT, County
from tests.support import queue_depth, wait_until

pytestmark = pytest.mark.fuzz

BASE = "zhongyuan-qinling"  # the demo county the test county is cloned from
EXAMPLES = int(os.environ.get("ONEGRID_OPENAPI_EXAMPLES", "30"))
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]
REFUSES = [checks.negative_data_rejection]  # what the document forbids gets a 4xx ...
# ... but a batch is 200 with each event's own outcome, and the registry's verdict on an event is its answer
JUDGED_ONE_BY_ONE = {("intake", "/events"), ("registry", "/validate")}


@pytest.fixture(scope="module")
def county(tmp_path_factory):
    c = County(
        tmp_path_factory.mktemp("openapi"),
        services=SERVICES,
        env={"ONEGRID_WEBHOOK_SECRET": "fuzz"},
        manifest={
            "trust_unauthenticated_http": False,
            "limits": {"rate_per_department": 1_000_000, "burst_per_department": 1_000_000},
        },
    )
    try:
        c.services.start()
        c.tokens = {d: ops.rotate(c.tenant, d, token_only=True)[0].values["http-token"] for d in c.tenant.departments}
        issuer = EmbeddedIssuer(c.store.r, c.tenant)
        for role in (OPERATOR, SUPERVISOR, AUDITOR):
            issuer.add(f"{role}-1", role)
        c.people = {role: issuer.token(f"{role}-1") for role in (OPERATOR, SUPERVISOR, AUDITOR)}
        c.open311_key = Clients(c.store.r, c.id).issue("fuzz")
        yield c
    finally:
        c.close()


def _operations() -> list:
    """(service, method, path, mode) of every operation, from the committed documents of the
    demo county the test county is cloned from (the live document must hold the same): what
    the document allows, and what it does not where the request has something to get wrong
    (a free-form id in the path is only ever unknown: 404 in either mode)."""
    out = []
    for service in SERVICES:
        doc = json.loads((ROOT / "docs" / "openapi" / BASE / f"{service}.json").read_text(encoding="utf-8"))
        for path, item in doc["paths"].items():
            for method, op in item.items():
                wrong = op.get("requestBody") or any(
                    p["in"] != "path" or "enum" in p["schema"] for p in op.get("parameters", [])
                )
                modes = [GenerationMode.POSITIVE] + [GenerationMode.NEGATIVE] * bool(wrong)
                out += [
                    pytest.param(
                        service, method.upper(), path, mode, id=f"{service}-{method.upper()} {path}-{mode.value}"
                    )
                    for mode in modes
                ]
    return out


@pytest.fixture(scope="module")
def documents(county) -> dict:
    """Each service's document, as the running service serves it."""
    docs = {s: schemathesis.openapi.from_url(county.services.url(s) + "/openapi.json", timeout=10) for s in SERVICES}
    for doc in docs.values():  # the Authorization header is _authorization's: always a good token
        doc.config.generation.update(with_security_parameters=False)
    return docs


@pytest.mark.parametrize("service, method, path, mode", _operations())
def test_every_operation_answers_as_its_document_says(county, documents, service, method, path, mode):
    operation = documents[service][path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def answers_as_documented(case):
        _use_real_ids(case, county)
        case.call_and_validate(
            base_url=county.services.url(service),
            headers=_authorization(case, county),
            checks=CHECKS + REFUSES * ((service, path) not in JUDGED_ONE_BY_ONE),
            timeout=30,
        )

    answers_as_documented()


def test_afterwards_every_service_serves_and_a_good_event_becomes_a_case(county):
    for name, proc in county.services.procs.items():
        assert proc.poll() is None, f"{name} exited with {proc.returncode}"
        assert requests.get(county.services.url(name) + "/health", timeout=5).ok
    good = county.simulator(seed=11).good()
    headers = {**good.headers, "Content-Type": ce.JSON, "Authorization": f"Bearer {county.tokens[good.department]}"}
    resp = requests.post(county.services.url("intake") + "/events", data=good.body, headers=headers, timeout=10)
    assert resp.status_code == 201, resp.text[:300]
    cid = case_id(f"{good.department}|{good.headers['ce-source']}|{good.event_id}")
    assert resp.json()["case_id"] == cid
    wait_until(
        lambda: (county.store.case(cid) or {}).get("status") == "dispatched",
        timeout=20,
        what="routing to dispatch the good event's case",
    )
    dead = {q: n for q in topology.CONSUMED if (n := queue_depth(county.uri, f"{q}.dlq"))}
    assert not dead, f"a consumer crashed on what the fuzzing made: {dead} (onegrid dlq list {county.id})"


def _authorization(case, county) -> dict:
    """A person's token for the people's routes (one whose role may call them: the auditor the
    audit and timelines, a supervisor scoring, an operator the rest); for intake and a department's work
    orders the token of the department the request speaks for (governance's when it names none)."""
    path = case.operation.path
    if path.startswith("/open311/"):  # the door: a client application's api_key (the form's, when it has one)
        return {"Authorization": f"Bearer {county.open311_key}"}
    if path != "/events" and not path.startswith("/departments/"):
        audits = path == "/audit" or path.endswith("/timeline/verify")
        role = AUDITOR if audits else SUPERVISOR if path.startswith("/scoring/") else OPERATOR
        return {"Authorization": f"Bearer {county.people[role]}"}
    department = (case.path_parameters or {}).get("department")
    if case.operation.path == "/events" and case.media_type == ce.JSON:  # binary mode: the ce- headers
        department = (case.headers or {}).get("ce-department")
    elif case.operation.path == "/events":  # structured: the event, or the batch's first
        first = case.body[0] if isinstance(case.body, list) and case.body else case.body
        department = first.get("department") if isinstance(first, dict) else None
    token = county.tokens.get(department) if isinstance(department, str) else None
    return {"Authorization": f"Bearer {token or county.tokens['governance']}"}


def _use_real_ids(case, county) -> None:
    """Every other case: a real case or work order id in place of the generated one."""
    params = case.path_parameters or {}
    for name in ("case_id", "work_order_id"):
        if name not in params or zlib.crc32(json.dumps(params[name], default=str).encode()) % 2:
            continue
        _, cases = county.store.query(limit=50)
        ids = (
            [c["id"] for c in cases]
            if name == "case_id"
            else [
                w["id"]
                for c in cases
                for w in county.store.work_orders_of(c["id"])
                if params.get("department") in (None, w["department"])
            ]
        )
        if ids:
            params[name] = ids[zlib.crc32(str(params[name]).encode()) % len(ids)]
