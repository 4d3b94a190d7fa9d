"""intake: department events in, cases out.

AMQP: department systems publish to `onegrid.intake` with routing key `<department>.<type>`.
HTTP: `POST /events` takes one CloudEvent (binary `ce-*` headers or structured) or a batch
(`application/cloudevents-batch+json`). Either way the event is admitted against its
contract and becomes a case (announced as `case.registered`) or a quarantine entry.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

from nameko.web.handlers import http
from werkzeug.wrappers import Response

from onegrid import envelope as ce
from onegrid import metrics
from onegrid.adapters.providers import Observable, RedisStore, TenantBus, TenantContext
from onegrid.adapters.reliable import Inbound, reliable_consume
from onegrid.adapters.store import now_iso
from onegrid.domain.cases import new_case
from onegrid.domain.intake import Accepted, RawEvent, Rejected, admit, on_resend


@dataclass
class Outcome:
    outcome: str  # registered | duplicate | quarantined
    case_id: str | None = None
    reason: str | None = None
    detail: str | None = None
    quarantine_id: str | None = None
    event_id: str | None = None

    @property
    def http_status(self) -> int:
        if self.outcome == "quarantined":
            return 413 if self.reason == "payload_too_large" else 422
        return 201 if self.outcome == "registered" else 200


class IntakeService(Observable):
    name = "intake"
    ctx = TenantContext()
    store = RedisStore()
    bus = TenantBus()

    @reliable_consume("intake.events")
    def on_department_event(self, message: Inbound):
        self.ingest(RawEvent(message.body, message.headers, message.content_type, message.routing_key, "amqp"))

    @http("POST", "/events")
    def post_events(self, request):
        started, ctype = time.perf_counter(), (request.content_type or "").split(";")[0].strip()
        body = request.get_data()
        if ctype == ce.BATCH:
            status, payload = self._batch(body)
        else:
            headers = {k.lower(): v for k, v in request.headers.items() if k.lower().startswith(ce.HEADER_PREFIX)}
            result = self.ingest(RawEvent(body, headers, ctype or None, None, "http"))
            status, payload = result.http_status, _public(result)
        metrics.HANDLER_SECONDS.labels(self.name, "post_events", str(status)).observe(time.perf_counter() - started)
        return Response(json.dumps(payload, ensure_ascii=False), status=status, mimetype="application/json")

    def _batch(self, body: bytes):
        tenant = self.ctx.tenant
        try:
            events = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            result = self.ingest(RawEvent(body, {}, ce.BATCH, None, "http"))  # quarantined with the bytes
            return 422, {"error": f"batch is not a JSON array: {exc}", "quarantine_id": result.quarantine_id}
        if not isinstance(events, list):
            return 422, {"error": "a batch is a JSON array of structured CloudEvents"}
        if len(events) > tenant.max_batch:
            return 413, {"error": f"{len(events)} events is more than the batch limit {tenant.max_batch}"}
        results = [_public(self.ingest(RawEvent(json.dumps(e, ensure_ascii=False).encode(), {}, ce.STRUCTURED,
                                                None, "http"))) for e in events]
        counts = {}
        for r in results:
            counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
        return 200, {"counts": counts, "results": results}

    def ingest(self, raw: RawEvent) -> Outcome:
        tenant = self.ctx.tenant
        verdict = admit(raw, tenant, self.ctx.registry)
        if isinstance(verdict, Rejected):
            return self._quarantine(raw, verdict)
        case = new_case(verdict, now_iso(), raw.transport)
        created, case_id, recorded, status = self.store.register_case(case, verdict.dedup_key)
        action = "register" if created else on_resend(verdict.digest, recorded, status)
        if action == "id_reused":
            return self._quarantine(raw, Rejected(
                "id_reused", f"event id {verdict.envelope.id!r} from {verdict.envelope.source} already made case "
                             f"{case_id} with other content", verdict.envelope.department))
        if action in ("register", "republish"):
            self._announce(verdict, {**case, "id": case_id})
        outcome = "registered" if created else "duplicate"
        metrics.EVENTS_RECEIVED.labels(tenant.id, verdict.envelope.department, raw.transport, outcome).inc()
        if created:
            metrics.CASES_REGISTERED.labels(tenant.id, verdict.envelope.department, verdict.category).inc()
        return Outcome(outcome, case_id=case_id, event_id=verdict.envelope.id)

    def _announce(self, verdict: Accepted, case: dict) -> None:
        env = ce.new(tenant=case["tenant"], department=case["department"], type="case.registered",
                     source=f"/{case['tenant']}/intake", subject=case["id"], id=f"{case['id']}.registered")
        self.bus.publish(env, case)

    def _quarantine(self, raw: RawEvent, rejected: Rejected) -> Outcome:
        _, entry = self.store.quarantine(raw.body, raw.headers, raw.content_type, raw.routing_key, raw.transport,
                                         rejected.reason, rejected.detail, rejected.department)
        tenant = self.ctx.tenant.id
        metrics.QUARANTINED.labels(tenant, rejected.department, rejected.reason).inc()
        metrics.EVENTS_RECEIVED.labels(tenant, rejected.department, raw.transport, "quarantined").inc()
        return Outcome("quarantined", reason=rejected.reason, detail=rejected.detail, quarantine_id=entry)


def _public(outcome: Outcome) -> dict:
    return {k: v for k, v in asdict(outcome).items() if v is not None}
