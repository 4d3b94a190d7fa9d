"""intake: department events in, cases out.

AMQP: department systems publish to `onegrid.intake` with routing key `<department>.<type>`,
as their broker user with the `user_id` property set to it (the authenticated department).
HTTP: `POST /events` with the department's token (`Authorization: Bearer <token>`) takes
one CloudEvent (binary `ce-*` headers or structured) or a batch
(`application/cloudevents-batch+json`), within the tenant's size and rate limits. Either
way the event is admitted against its contract and becomes a case (announced as
`case.registered`) or a quarantine entry. `GET /asyncapi.yaml` (or `.json`) describes it all.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

from nameko.web.handlers import http
from werkzeug.wrappers import Response

from onegrid import envelope as ce
from onegrid import metrics
from onegrid.adapters.auth import ANONYMOUS, Unauthorized, authenticate, retry_after
from onegrid.adapters.gate import REFUSED, Gate
from onegrid.adapters.providers import Observable, RedisStore, TenantBus, TenantContext
from onegrid.adapters.reliable import BOOKKEEPING, USER_ID, Inbound, reliable_consume
from onegrid.adapters.store import now_iso
from onegrid.contracts import asyncapi
from onegrid.domain.cases import new_case
from onegrid.domain.intake import (Accepted, RawEvent, Rejected, admit, authenticated_department, on_resend,
                                   principal)


class Refused(Exception):
    """An HTTP request turned away before any event in it was judged (nothing quarantined)."""

    def __init__(self, status: int, error: str, detail: str, headers: dict | None = None,
                 department: str | None = None):
        super().__init__(detail)
        self.status, self.error, self.detail, self.headers = status, error, detail, headers or {}
        self.department = department or "unknown"  # a metric label: a department id or "unknown"


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
    gate = Gate()  # HTTP tokens and the per-department rate limit

    @reliable_consume("intake.events")
    def on_department_event(self, message: Inbound):
        raw = RawEvent(message.body, message.headers, message.content_type, message.routing_key, "amqp")
        self.ingest(raw, authenticated_department(message.user_id, self.ctx.tenant.id), message.user_id)

    @http("POST", "/events")
    def post_events(self, request):
        started = time.perf_counter()
        try:
            status, payload, headers = self._post(request)
        except Refused as refused:
            REFUSED.labels(self.ctx.tenant.id, refused.department, refused.error).inc()
            status, headers = refused.status, refused.headers
            payload = {"error": refused.error, "detail": refused.detail}
        metrics.HANDLER_SECONDS.labels(self.name, "post_events", str(status)).observe(time.perf_counter() - started)
        return Response(json.dumps(payload, ensure_ascii=False), status=status, headers=headers,
                        mimetype="application/json")

    @http("GET", "/asyncapi.yaml")
    def asyncapi_yaml(self, request):
        doc = asyncapi.document(self.ctx.tenant, self.ctx.registry)
        return Response(asyncapi.render(doc), mimetype="application/yaml")

    @http("GET", "/asyncapi.json")
    def asyncapi_json(self, request):
        doc = asyncapi.document(self.ctx.tenant, self.ctx.registry)
        return Response(json.dumps(doc, ensure_ascii=False), mimetype="application/json")

    def _post(self, request) -> tuple[int, dict, dict]:
        tenant = self.ctx.tenant
        department = self._authenticate(request.headers.get("Authorization"))
        who = principal(tenant.id, department) if department else None
        if request.content_length is None and "chunked" in request.headers.get("Transfer-Encoding", "").lower():
            raise Refused(411, "length_required", "send the event with a Content-Length (chunked bodies are not "
                                                  "read by this server)", department=department)
        if (request.content_length or 0) > tenant.max_request_bytes:
            raise Refused(413, "request_too_large", f"{request.content_length} bytes is more than this tenant's "
                                                    f"limit of {tenant.max_request_bytes} per request",
                          department=department)
        body = request.get_data()
        if len(body) > tenant.max_request_bytes:
            raise Refused(413, "request_too_large", f"{len(body)} bytes is more than this tenant's limit of "
                                                    f"{tenant.max_request_bytes} per request", department=department)
        ctype = (request.content_type or "").split(";")[0].strip()
        if ctype == ce.BATCH:
            return self._batch(body, department, who)
        self._admit_rate(department, 1)
        headers = {k.lower(): v for k, v in request.headers.items() if k.lower().startswith(ce.HEADER_PREFIX)}
        result = self.ingest(RawEvent(body, headers, ctype or None, None, "http"), department, who)
        return result.http_status, _public(result), {}

    def _authenticate(self, header: str | None) -> str | None:
        try:
            return authenticate(self.gate.tokens, header, self.ctx.tenant.trust_unauthenticated_http, "POST /events")
        except Unauthorized as exc:
            raise Refused(401, exc.error, exc.detail, exc.headers) from None

    def _admit_rate(self, department: str | None, events: int) -> None:
        tenant = self.ctx.tenant
        allowed, wait = self.gate.limiter.take(department or ANONYMOUS, events, tenant.rate_per_department,
                                               tenant.burst_per_department)
        if not allowed:
            raise Refused(429, "rate_limited", f"{department or 'unauthenticated requests'} may send "
                                               f"{tenant.rate_per_department:g} events/s (bursts of "
                                               f"{tenant.burst_per_department}); {events} more would be over it",
                          {"Retry-After": str(retry_after(wait))}, department)

    def _batch(self, body: bytes, department: str | None, who: str | None) -> tuple[int, dict, dict]:
        tenant = self.ctx.tenant
        try:
            events = json.loads(body.decode("utf-8"))  # a NaN inside one event is that event's to answer
        except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, too deep, numbers too long
            self._admit_rate(department, 1)
            result = self.ingest(RawEvent(body, {}, ce.BATCH, None, "http"), department, who)  # kept, with the bytes
            return 422, {"error": "malformed_batch", "detail": f"batch is not a JSON array: {exc}",
                         "quarantine_id": result.quarantine_id}, {}
        if not isinstance(events, list):
            raise Refused(422, "malformed_batch", "a batch is a JSON array of structured CloudEvents",
                          department=department)
        if len(events) > tenant.max_batch:
            raise Refused(413, "batch_too_large", f"{len(events)} events is more than the batch limit "
                                                  f"{tenant.max_batch}", department=department)
        self._admit_rate(department, max(1, len(events)))
        # each event on its own: ASCII JSON, so a lone surrogate escape survives to be judged
        results = [_public(self.ingest(RawEvent(json.dumps(e).encode(), {}, ce.STRUCTURED, None, "http"),
                                        department, who)) for e in events]
        counts = {}
        for r in results:
            counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
        return 200, {"counts": counts, "results": results}, {}

    def ingest(self, raw: RawEvent, department: str | None = None, who: str | None = None) -> Outcome:
        """Judge one event; `department` is the authenticated one, `who` the principal that
        authenticated (kept with a quarantined event, so a replay is judged as the original)."""
        tenant = self.ctx.tenant
        verdict = admit(raw, tenant, self.ctx.registry, department)
        if isinstance(verdict, Rejected):
            return self._quarantine(raw, verdict, who)
        case = new_case(verdict, now_iso(), raw.transport)
        created, case_id, recorded, status = self.store.register_case(case, verdict.dedup_key)
        action = "register" if created else on_resend(verdict.digest, recorded, status)
        if action == "id_reused":
            return self._quarantine(raw, Rejected(
                "id_reused", f"event id {verdict.envelope.id!r} from {verdict.envelope.source} already made case "
                             f"{case_id} with other content", verdict.envelope.department), who)
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

    def _quarantine(self, raw: RawEvent, rejected: Rejected, who: str | None = None) -> Outcome:
        # a publisher's own user id is not to be trusted; a redelivery's bookkeeping would make
        # the same message a second entry
        headers = {k: v for k, v in raw.headers.items() if k != USER_ID and k not in BOOKKEEPING}
        if who:
            headers[USER_ID] = who
        _, entry = self.store.quarantine(raw.body, headers, raw.content_type, raw.routing_key, raw.transport,
                                         rejected.reason, rejected.detail, rejected.department)
        tenant = self.ctx.tenant.id
        metrics.QUARANTINED.labels(tenant, rejected.department, rejected.reason).inc()
        metrics.EVENTS_RECEIVED.labels(tenant, rejected.department, raw.transport, "quarantined").inc()
        return Outcome("quarantined", reason=rejected.reason, detail=rejected.detail, quarantine_id=entry)


def _public(outcome: Outcome) -> dict:
    return {k: v for k, v in asdict(outcome).items() if v is not None}

