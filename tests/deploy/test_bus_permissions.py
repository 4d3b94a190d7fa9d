"""The rendered broker topology on a real RabbitMQ: every service does its work as its own
least-privileged user, a department can publish only as itself and read only its own work
queue, KEDA can read queue depths and nothing else, and operators can replay dead letters."""

from __future__ import annotations

import json
from urllib.parse import unquote, urlparse

import pytest
import requests
from amqp.exceptions import AccessRefused
from kombu import Connection

from onegrid.catalogue import services
from onegrid.domain.cases import case_id
from onegrid.operator import k8s
from tests.support import wait_until

pytestmark = pytest.mark.e2e


def _publish(uri: str, planned, exchange="onegrid.intake", routing_key=None, headers=None):
    with Connection(uri, transport_options={"confirm_publish": True}) as conn:
        conn.Producer().publish(
            planned.body,
            exchange=exchange,
            routing_key=routing_key or planned.routing_key,
            headers={**planned.headers, **(headers or {})},
            content_type=planned.content_type,
            content_encoding="binary",
            delivery_mode=2,
            retry=False,
        )


def _get(uri: str, queue: str):
    with Connection(uri) as conn:
        return conn.default_channel.basic_get(queue, no_ack=False)


def _good(deployed, department: str, seed: int):
    sim = deployed.county.simulator(seed=seed)
    while True:
        p = sim.good()
        if p.department == department:
            return p


def _case_of(p) -> str:
    return case_id(f"{p.department}|{p.headers['ce-source']}|{p.event_id}")


def test_services_do_their_work_as_their_own_users(deployed, traffic):
    county = deployed.county
    assert county.store.stats()["cases_dispatched"] >= sum(1 for p in traffic if p.expect == "case")
    # every service that consumes holds a connection; the registry, which consumes nothing,
    # connects only when it announces a change
    consumers = {s.name for s in services() if s.queues or s.rpc or s.timer}
    expected = {f"{county.id}.svc.{name}" for name in deployed.services if name in consumers}

    def users():  # the management API lists connections after its next stats emission (~5 s)
        found = requests.get(f"{deployed.management}/api/vhosts/{county.id}/connections", timeout=5).json()
        return {c["user"] for c in found}

    wait_until(lambda: expected <= users(), what=f"connections of {sorted(expected)}", timeout=20)


def test_a_department_publishes_as_itself_only(deployed):
    tenant = deployed.county.tenant
    me, other = "market_regulation", "public_security"
    mine = deployed.user_uri(k8s.k8s_name("dept", me))
    p = _good(deployed, me, seed=71)
    _publish(mine, p)
    wait_until(lambda: deployed.county.store.case(_case_of(p)), what="the department's event became a case")
    with pytest.raises(AccessRefused):  # topic permission: only `<department>.` routing keys
        _publish(mine, _good(deployed, other, seed=72))
    with pytest.raises(AccessRefused):  # only onegrid.intake
        _publish(mine, p, exchange="onegrid.events", routing_key="case.registered")
    with pytest.raises(AccessRefused):  # configure nothing
        with Connection(mine) as conn:
            conn.default_channel.queue_declare("sneaky", durable=True)
    assert me in tenant.departments and other in tenant.departments


def test_the_open311_door_speaks_for_governance_in_its_one_event_type_only(deployed, traffic):
    """The door's user published the request with its user_id: intake took it as governance's
    (governance got the receipt); the same user may publish no other routing key there."""
    token = deployed.door_token
    receipt = wait_until(lambda: deployed.county.store.receipt("governance", token), what="governance's receipt")
    assert receipt["outcome"] == "accepted" and receipt["source"] == f"/{deployed.county.id}/open311"
    door = deployed.bus_uri("bus-user-svc-open311")
    with pytest.raises(AccessRefused):  # topic permission: governance.open311_request_received only
        _publish(door, _good(deployed, "governance", seed=74))


def test_a_department_reads_only_its_own_work_queue(deployed):
    mine = deployed.user_uri(k8s.k8s_name("dept", "market_regulation"))
    _get(mine, "workorders.market_regulation")  # allowed (a message or None)
    for queue in ("workorders.public_security", "intake.events", "routing.case-registered.dlq"):
        with pytest.raises(AccessRefused):
            _get(mine, queue)


def test_keda_reads_queue_depth_through_the_management_api_only(deployed):
    host = urlparse(deployed.secrets["bus-user-keda"]["host"])
    api = urlparse(deployed.management)
    auth = (unquote(host.username), unquote(host.password))
    base = f"{api.scheme}://{api.hostname}:{api.port}/api/queues"
    vhost = host.path.strip("/")
    assert vhost == deployed.county.id
    for queue in k8s.consumers():
        resp = requests.get(f"{base}/{vhost}/{queue}", auth=auth, timeout=5)
        # KEDA reads `messages` (ready + unacked) from this; a queue without stats yet counts 0
        assert resp.status_code == 200 and resp.json()["name"] == queue, (queue, resp.status_code)
    outside = requests.get(f"{base}/%2F", auth=auth, timeout=5)
    assert outside.status_code in (401, 403, 404) or outside.json() == [], "nothing outside its county"
    with pytest.raises(AccessRefused):
        _get(deployed.user_uri("keda"), "intake.events")


def test_dead_letters_go_back_through_the_operator_user(deployed, monkeypatch):
    """intake's user parks a message in intake.events.dlq (through the default exchange, as
    the failure policy does); the county's ops user lists it and replays it; intake makes
    the case."""
    from onegrid.operator import ops

    p = _good(deployed, "health", seed=73)
    headers = {
        "x-og-routing-key": p.routing_key,
        "x-og-attempt": 3,
        "x-og-error": "RuntimeError: test",
        "x-og-queue": "intake.events",
    }
    _publish(deployed.bus_uri("bus-user-svc-intake"), p, exchange="", routing_key="intake.events.dlq", headers=headers)
    ops_base = deployed.secrets["bus-user-ops"]["base"]
    host, port = deployed.amqp_host
    monkeypatch.setenv("ONEGRID_AMQP_BASE", ops_base.replace(f"@{k8s.BUS.host}:5672", f"@{host}:{port}"))
    held = wait_until(lambda: ops.dead_letters(deployed.county.id, queue="intake.events"), what="the dead letter")
    assert held[0]["error"] == "RuntimeError: test"
    assert ops.dead_letters(deployed.county.id, queue="intake.events", replay=True)
    wait_until(lambda: deployed.county.store.case(_case_of(p)), what="the replayed event became a case")
    with pytest.raises(AccessRefused):  # ops reads dead letters, not the departments' work
        _get(deployed.user_uri("ops"), "workorders.health")
    assert json.loads(p.body)["grid"]


def test_the_history_is_kept_as_the_services_publish_and_read_by_the_operator_user(deployed, traffic):
    """The services, each as its own user, publish as before; the broker appends to the history
    streams; the county's ops user reads them, a department's user cannot."""
    from onegrid.adapters.amqp.history import HistoryRefused, StreamReader
    from onegrid.app import history
    from onegrid.kernel import topology

    kept = list(history.entries(StreamReader(deployed.user_uri("ops")), topology.HISTORY_INTAKE))
    cases = {e.data["id"] for e in kept if e.type == history.ACCEPTED}
    assert {_case_of(p) for p in traffic if p.expect == "case"} <= cases
    reasons = sorted(e.data["reason"] for e in kept if e.type == topology.QUARANTINED)
    assert sorted(p.expect for p in traffic if p.expect not in ("case", "merged")) == reasons
    with pytest.raises(HistoryRefused):
        list(StreamReader(deployed.user_uri("dept-health")).read(topology.HISTORY_INTAKE))


def test_supervision_reads_the_lifecycle_history_for_the_heads_and_nothing_else_of_it(deployed, traffic):
    """A timeline's verify reads the heads the bus carried as supervision's own user: it may read
    history.lifecycle, not history.intake."""
    from onegrid.adapters.amqp.history import HistoryRefused, StreamReader
    from onegrid.app.history import published_heads
    from onegrid.kernel import topology

    supervision = StreamReader(deployed.user_uri("svc-supervision"))
    cid = next(_case_of(p) for p in traffic if p.expect == "case")
    record = deployed.county.store.case(cid)["chainhead"]  # routing's, after its dispatch
    wait_until(lambda: record in published_heads(supervision, cid), what="the dispatch's head on the stream")
    assert published_heads(supervision, cid)[0].startswith("1:")  # case.registered's
    with pytest.raises(HistoryRefused):
        list(supervision.read(topology.HISTORY_INTAKE))
    with pytest.raises(HistoryRefused):
        list(StreamReader(deployed.user_uri("svc-scoring")).read(topology.HISTORY_LIFECYCLE))


def test_the_registry_reads_both_history_streams_for_whatif(deployed, traffic):
    """POST /whatif/manifest reads the cases registered and what happened to them as the
    registry's own user (onegrid.operator.desired.HISTORY_READERS)."""
    from onegrid.adapters.amqp.history import StreamReader
    from onegrid.app import history
    from onegrid.kernel import topology

    registry = StreamReader(deployed.user_uri("svc-registry"))
    cases = {e.data["id"] for e in history.entries(registry, topology.HISTORY_INTAKE) if e.type == history.ACCEPTED}
    assert {_case_of(p) for p in traffic if p.expect == "case"} <= cases
    assert any(e.type == "case.registered" for e in history.entries(registry, topology.HISTORY_LIFECYCLE))
