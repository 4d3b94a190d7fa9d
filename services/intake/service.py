"""intake: department events in, cases out.

AMQP: department systems publish to `onegrid.intake` with routing key `<department>.<type>`,
as their broker user with the `user_id` property set to it (the authenticated department).
A per-message TTL (`expiration`) changes nothing for an event read in time; one that ran out
in the backlog comes back through `intake.expired` and is quarantined as `expired`.
HTTP: `POST /events` with the department's token (`Authorization: Bearer <token>`) takes
one CloudEvent (binary `ce-*` headers or structured) or a batch
(`application/cloudevents-batch+json`), within the tenant's size and rate limits. Either
way the event is admitted against its contract and becomes a case (announced as
`case.registered`) or a quarantine entry. `GET /asyncapi.yaml` (or `.json`) describes it all.

Receipts: the department that sent an event is told what became of it (`event.accepted`,
`event.quarantined`; routing tells `event.merged`) on its `receipts.<department>` queue, and
with its token over HTTP: `GET /events/<event id>` (only its own events) and `GET /quarantine`
(only what it sent).

Entrypoints only: this reads the transport (who authenticated, which headers it vouches for,
the HTTP limits), onegrid.app.intake decides and records, and the outcome becomes the ack,
the HTTP answer and the metrics.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace

from nameko.web.handlers import http
from werkzeug.wrappers import Response

from onegrid.adapters.amqp.bus import BusBlocked
from onegrid.adapters.nameko import logs
from onegrid.adapters.nameko.batch import batch_consume
from onegrid.adapters.nameko.gate import REFUSED, Gate
from onegrid.adapters.nameko.httpjson import asyncapi_response, respond
from onegrid.adapters.nameko.providers import Observable, RedisStore, TenantBus, TenantContext, VersionUsage
from onegrid.adapters.nameko.reliable import BOOKKEEPING, USER_ID, Inbound, reliable_consume
from onegrid.adapters.redis.auth import ANONYMOUS, Unauthorized, authenticate, retry_after
from onegrid.adapters.redis.kept import KeptReceipts, KeptUses
from onegrid.app.inputs import QuarantinePage
from onegrid.app.intake import Intake, Outcome, quarantine_view
from onegrid.app.ports import Publisher
from onegrid.domain.intake import RawEvent, authenticated_department, principal, replayed
from onegrid.kernel import envelope as ce
from onegrid.kernel import metrics, topology
from onegrid.kernel.clock import CLOCK

# how long an HTTP request waits for the broker's confirm before it is answered 503: a broker
# with a memory or disk alarm blocks publishers until it clears, and a caller must not hang
HTTP_PUBLISH_TIMEOUT = 5.0


class Refused(Exception):
    """An HTTP request turned away before any event in it was judged (nothing quarantined)."""

    def __init__(
        self, status: int, error: str, detail: str, headers: dict | None = None, department: str | None = None
    ):
        super().__init__(detail)
        self.status, self.error, self.detail, self.headers = status, error, detail, headers or {}
        self.department = department or "unknown"  # a metric label: a department id or "unknown"


class IntakeService(Observable):
    name = "intake"
    ctx = TenantContext()
    store = RedisStore()
    bus = TenantBus()
    gate = Gate()  # HTTP tokens and the per-department rate limit
    usage = VersionUsage()  # events per contract version and department, for the registry

    @batch_consume("intake.events")
    def on_department_event(self, messages: list[Inbound]):
        """A batch of department events (onegrid.adapters.nameko.batch): all judged, the accepted
        ones registered in one Redis round trip (Intake.ingest_many), their announcements and
        receipts sent together and confirmed once at the end; counted once sent (a batch that
        fails is done again one by one, and counted then)."""
        bus, store, usage = self.bus.deferred(), KeptReceipts(self.store), KeptUses(self.usage)
        intake = self._intake(bus=bus, store=store, usage=usage)
        items, transports = [], []
        for message in messages:
            transport = replayed(message.replayed_from) if message.replayed_from else "amqp"
            raw = RawEvent(message.body, message.headers, message.content_type, message.routing_key, transport)
            department = authenticated_department(message.user_id, self.ctx.tenant.id)
            items.append((vouched(raw, message.user_id), department))
            transports.append(transport)
        outcomes = intake.ingest_many(items)
        store.flush()  # the receipts recorded before they are published
        usage.flush()
        bus.flush()
        for outcome, transport in zip(outcomes, transports, strict=True):
            self._count(outcome, transport)
        if len(outcomes) == 1:  # one event, one case: the worker's `handled` line names it
            logs.bind(case_id=outcomes[0].case_id)

    @reliable_consume("intake.registry-changed")
    def on_registry_changed(self, message: Inbound):
        """The county's registry published a contract version, a manifest or a retirement:
        judge the next event by it (the other replicas follow within TenantContext.RECHECK_SECONDS)."""
        self.ctx.refresh(force=True)

    @reliable_consume(topology.INTAKE_EXPIRED)
    def on_expired_event(self, message: Inbound):
        """An event of intake.events whose per-message TTL ran out before it was read (the
        broker dead-letters it here, onegrid.operator.desired): kept in quarantine as `expired`."""
        raw = RawEvent(message.body, message.headers, message.content_type, message.routing_key, "amqp")
        deaths = message.headers.get("x-death") or [{}]
        ttl = deaths[0].get("original-expiration") if isinstance(deaths[0], dict) else None
        department = authenticated_department(message.user_id, self.ctx.tenant.id)
        outcome = self._intake().expired(vouched(raw, message.user_id), department, str(ttl) if ttl else None)
        tenant = self.ctx.tenant.id
        metrics.QUARANTINED.labels(tenant, outcome.department, outcome.reason).inc()
        metrics.EVENTS_RECEIVED.labels(tenant, outcome.department, raw.transport, outcome.outcome).inc()

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
        return Response(
            json.dumps(payload, ensure_ascii=False), status=status, headers=headers, mimetype="application/json"
        )

    @http("GET", "/events/<path:event_id>")
    def get_event(self, request, event_id):
        """What became of an event the department sent: its latest receipt (404: none from it)."""

        def run():
            department = self._department(request, "GET /events/<id>")
            found = self.store.receipt(department, event_id)
            if found is None:
                raise LookupError(f"no event {event_id!r} from {department}")
            return found

        return respond(run)

    @http("GET", "/quarantine")
    def get_quarantine(self, request):
        """The department's own quarantined events, oldest first, with the whole detail and bytes."""

        def run():
            department = self._department(request, "GET /quarantine")
            page = QuarantinePage().load(request.args.to_dict())
            who = principal(self.ctx.tenant.id, department)
            entries = self.store.quarantined_from(who, page["limit"], page["after"])
            return {"department": department, "entries": [quarantine_view(e) for e in entries]}

        return respond(run)

    def _department(self, request, what: str) -> str:
        """A receipt is told only to the department that sent the event: its token is needed."""
        department = authenticate(self.gate.tokens, request.headers.get("Authorization"), False, what)
        assert department is not None  # authenticate refuses a missing token when trust is False
        return department

    @http("GET", "/asyncapi.yaml")
    def asyncapi_yaml(self, request):
        return asyncapi_response(self.ctx.tenant, self.ctx.registry, "yaml")

    @http("GET", "/asyncapi.json")
    def asyncapi_json(self, request):
        return asyncapi_response(self.ctx.tenant, self.ctx.registry, "json")

    def _post(self, request) -> tuple[int, dict, dict]:
        department = self._authenticate(request.headers.get("Authorization"))
        try:
            return self._admit(request, department)
        except BusBlocked as exc:
            raise Refused(
                503,
                "bus_blocked",
                f"the bus cannot take events now ({exc}); nothing of this request was lost, send it again",
                {"Retry-After": str(retry_after(exc.retry_after))},
                department,
            ) from None

    def _admit(self, request, department: str | None) -> tuple[int, dict, dict]:
        tenant = self.ctx.tenant
        if self.bus.blocked():  # known blocked: answer now, before anything is recorded
            raise BusBlocked(f"the broker blocks publishers: {self.bus.blocked_reason}")
        who = principal(tenant.id, department) if department else None
        if request.content_length is None and "chunked" in request.headers.get("Transfer-Encoding", "").lower():
            raise Refused(
                411,
                "length_required",
                "send the event with a Content-Length (chunked bodies are not read by this server)",
                department=department,
            )
        if (request.content_length or 0) > tenant.max_request_bytes:
            raise Refused(
                413,
                "request_too_large",
                f"{request.content_length} bytes is more than this tenant's "
                f"limit of {tenant.max_request_bytes} per request",
                department=department,
            )
        body = request.get_data()
        if len(body) > tenant.max_request_bytes:
            raise Refused(
                413,
                "request_too_large",
                f"{len(body)} bytes is more than this tenant's limit of {tenant.max_request_bytes} per request",
                department=department,
            )
        ctype = (request.content_type or "").split(";")[0].strip()
        if ctype == ce.BATCH:
            return self._batch(body, department, who)
        self._admit_rate(department, 1)
        # the HTTP binding percent-encodes attribute values; over AMQP they travel as they are
        attrs = [(k.lower(), v) for k, v in request.headers.items() if k.lower().startswith(ce.HEADER_PREFIX)]
        headers = {k: ce.from_http_header(v) for k, v in attrs}
        result = self.ingest(RawEvent(body, headers, ctype or None, None, "http"), department, who, http=True)
        return http_status(result), result.public(), {}

    def _authenticate(self, header: str | None) -> str | None:
        try:
            return authenticate(self.gate.tokens, header, self.ctx.tenant.trust_unauthenticated_http, "POST /events")
        except Unauthorized as exc:
            raise Refused(401, exc.error, exc.detail, exc.headers) from None

    def _admit_rate(self, department: str | None, events: int) -> None:
        tenant = self.ctx.tenant
        allowed, wait = self.gate.limiter.take(
            department or ANONYMOUS, events, tenant.rate_per_department, tenant.burst_per_department
        )
        if not allowed:
            raise Refused(
                429,
                "rate_limited",
                f"{department or 'unauthenticated requests'} may send "
                f"{tenant.rate_per_department:g} events/s (bursts of "
                f"{tenant.burst_per_department}); {events} more would be over it",
                {"Retry-After": str(retry_after(wait))},
                department,
            )

    def _batch(self, body: bytes, department: str | None, who: str | None) -> tuple[int, dict, dict]:
        tenant = self.ctx.tenant
        try:
            events = json.loads(body.decode("utf-8"))  # a NaN inside one event is that event's to answer
        except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, too deep, numbers too long
            self._admit_rate(department, 1)
            result = self.ingest(RawEvent(body, {}, ce.BATCH, None, "http"), department, who, http=True)  # kept
            return (
                422,
                {
                    "error": "malformed_batch",
                    "detail": f"batch is not a JSON array: {exc}",
                    "quarantine_id": result.quarantine_id,
                },
                {},
            )
        if not isinstance(events, list):
            raise Refused(
                422, "malformed_batch", "a batch is a JSON array of structured CloudEvents", department=department
            )
        if len(events) > tenant.max_batch:
            raise Refused(
                413,
                "batch_too_large",
                f"{len(events)} events is more than the batch limit {tenant.max_batch}",
                department=department,
            )
        self._admit_rate(department, max(1, len(events)))
        results = [
            self.ingest(
                RawEvent(_one_of_batch(e), {}, ce.STRUCTURED, None, "http"), department, who, http=True
            ).public()
            for e in events
        ]
        counts: dict[str, int] = {}
        for r in results:
            counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
        return 200, {"counts": counts, "results": results}, {}

    def ingest(
        self, raw: RawEvent, department: str | None = None, who: str | None = None, http: bool = False
    ) -> Outcome:
        """Judge one event; `department` is the authenticated one, `who` the principal that
        authenticated (kept with a quarantined event, so a replay is judged as the original).
        Over HTTP the announcement waits at most HTTP_PUBLISH_TIMEOUT (BusBlocked after);
        a message handler waits for the broker as long as it takes."""
        outcome = self._intake(http).ingest(vouched(raw, who), department)
        self._count(outcome, raw.transport)
        return outcome

    def _count(self, outcome: Outcome, transport: str) -> None:
        tenant = self.ctx.tenant.id
        if outcome.outcome == "quarantined":
            metrics.QUARANTINED.labels(tenant, outcome.department, outcome.reason).inc()
        metrics.EVENTS_RECEIVED.labels(tenant, outcome.department, transport, outcome.outcome).inc()
        if outcome.version is not None:  # accepted: counted per contract version (the registry's usage too)
            metrics.CONTRACT_EVENTS.labels(tenant, outcome.department, outcome.event_type, str(outcome.version)).inc()
        if outcome.outcome == "registered":
            metrics.CASES_REGISTERED.labels(tenant, outcome.department, outcome.category).inc()
        logs.event("ingested", outcome.public())  # each event of a batch on its own line

    def _intake(self, http: bool = False, bus: Publisher | None = None, store=None, usage=None) -> Intake:
        """`bus`, `store`, `usage`: a batch's (Deferred, KeptReceipts, KeptUses), else the service's."""
        if bus is None:
            bus = self.bus.bounded(HTTP_PUBLISH_TIMEOUT) if http else self.bus
        return Intake(
            self.ctx.tenant,
            self.ctx.registry,
            store or self.store,
            bus,
            CLOCK,
            locator=self.ctx.locator,
            usage=usage or self.usage,
        )


def vouched(raw: RawEvent, who: str | None) -> RawEvent:
    """The event with only the headers the transport vouches for, as it is kept if quarantined:
    a publisher's own user id is not to be trusted (the one that authenticated replaces it), and
    a redelivery's bookkeeping would make the same message a second entry. The CloudEvents
    attributes (`ce-*`) that admission reads are untouched."""
    headers = {k: v for k, v in raw.headers.items() if k != USER_ID and k not in BOOKKEEPING}
    if who:
        headers[USER_ID] = who
    return replace(raw, headers=headers)


def http_status(outcome: Outcome) -> int:
    if outcome.outcome == "quarantined":
        return 413 if outcome.reason == "payload_too_large" else 422
    return 201 if outcome.outcome == "registered" else 200


def _one_of_batch(event) -> bytes:
    """One event of a batch as the bytes it is judged by: UTF-8 as sent, so its size is its own
    (ASCII escapes would count a Chinese character as six bytes and refuse an event under the
    limit); ASCII JSON only when it holds a lone surrogate, so the escape survives to be judged."""
    return ce.json_bytes(event, separators=None)
