"""Operators can follow one event: a department event published with a W3C `traceparent`
keeps its trace id through intake, routing, the work order on the department's queue and the
lifecycle events, and every service it passes logs JSON lines with the tenant, the `ce-id`,
the case and that trace id; so one grep of the trace id shows the event's whole path."""

import json
import secrets

import pytest
from kombu import Connection, Exchange, Queue

from onegrid.domain.cases import case_id
from onegrid.kernel import envelope as ce
from onegrid.kernel import topology, trace
from tests.conftest import County
from tests.support import drain, publish, wait_until

pytestmark = pytest.mark.integration
SERVICES = ("intake", "routing", "departments", "scoring")


@pytest.fixture(scope="module")
def county(tmp_path_factory):
    c = County(tmp_path_factory.mktemp("tracing"), services=SERVICES)
    c.services.start()
    yield c
    c.close()


def _lines(county, service: str) -> list[dict]:
    path = county.services.log_dir / f"{county.id}-{service}.log"
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))  # a line that is not JSON would fail here
    return out


def test_one_trace_id_from_the_event_to_the_work_order_and_the_lifecycle(county):
    trace_id = secrets.token_hex(16)
    parent = f"00-{trace_id}-{secrets.token_hex(8)}-01"
    with Connection(county.uri) as conn:  # to see the lifecycle events as they are published
        events = Queue(
            f"trace-{secrets.token_hex(4)}", Exchange(topology.EVENTS, "topic", passive=True), "#", exclusive=True
        )
        events(conn.default_channel).declare()
        sim = county.simulator(seed=7)
        while (p := sim.good()).department == "governance" or p.content_type != ce.JSON:  # binary mode
            pass
        p.headers["ce-traceparent"] = parent
        p.headers["ce-tracestate"] = "county=test"
        publish(county.uri, [p])
        cid = case_id(f"{p.department}|{p.headers['ce-source']}|{p.event_id}")
        case = wait_until(
            lambda: (c := county.store.case(cid)) and c["status"] == "dispatched" and c, what="dispatched"
        )
        assert trace.trace_id(case["traceparent"]) == trace_id and case["traceparent"] != parent

        # the work order on its department's queue carries the trace in its ce- headers
        wo = county.store.work_orders_of(cid)[0]
        msgs = wait_until(lambda: drain(county.uri, topology.work_queue(wo["department"])), what="the work order")
        ((headers, _),) = [(h, b) for h, b in msgs if h.get("ce-subject") == wo["id"]]
        assert trace.trace_id(headers["ce-traceparent"]) == trace_id, headers
        assert headers["ce-type"] == "work_order.dispatched"

        # the department system answers over HTTP, continuing the trace it was handed
        answer = county.http.post(
            f"{county.services.url('departments')}/departments/{wo['department']}/work-orders/{wo['id']}/accept",
            json={"actor": "li"},
            headers={"traceparent": headers["ce-traceparent"]},
            timeout=5,
        )
        assert answer.status_code == 200, answer.text

        seen: dict[str, dict] = {}

        def lifecycle():
            while (msg := events(conn.default_channel).get(no_ack=True)) is not None:
                seen[msg.headers["ce-type"]] = msg.headers
            return "work_order.accepted" in seen and "case.registered" in seen and "case.dispatched" in seen

        wait_until(lifecycle, what="the lifecycle events")
    for kind in ("case.registered", "case.dispatched", "work_order.accepted"):
        assert trace.trace_id(seen[kind].get("ce-traceparent")) == trace_id, (kind, seen[kind])
    # each hop is its own span of the one trace
    assert len({h["ce-traceparent"] for h in seen.values()} | {headers["ce-traceparent"], parent}) == len(seen) + 2

    # one grep: every service the event passed logged its handling, as JSON, under the trace id
    def logged():
        found = {s: [x for x in _lines(county, s) if x.get("trace_id") == trace_id] for s in SERVICES}
        return all(found.values()) and found

    found = wait_until(logged, timeout=15, what="each service's log lines with the trace id")
    for service, lines in found.items():
        for line in lines:
            assert line["tenant"] == county.id and line["service"] == service, line
            assert line["case_id"] == cid, line
            assert line["level"] and line["time"] and line["logger"], line
    handled = {
        (s, x.get("ce_type") or x["entrypoint"])
        for s, lines in found.items()
        for x in lines
        if x["message"] == "handled"
    }
    assert ("intake", p.headers["ce-type"]) in handled, handled
    assert ("routing", "case.registered") in handled, handled
    assert ("departments", "http_act") in handled, handled
    assert any(s == "scoring" for s, _ in handled), handled
    assert all(x.get("ce_id") for s, lines in found.items() if s != "departments" for x in lines)
