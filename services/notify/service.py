"""notify: every case gets an answer (件件有回音).

On the lifecycle events it writes the notifications they call for (a receipt to the
reporter, the dispatch to the grid worker or department, overdue reminders to the handling
unit and its leader, the resolution and a satisfaction question) into the tenant's outbox,
once per event, kind, recipient and channel. A timer drains the outbox concurrently, each
attempt bounded by its channel's timeout, so a dead receiver delays only its own messages;
failures are retried with exponential backoff and jitter, then parked with their reason
(`onegrid notify parked|replay <tenant>`). docs/notify.md; the use cases are onegrid/app/notify.py's.

Two-way: the county's SMS gateway pushes the replies it receives (POST /notify/sms/replies,
signed); a "1" or "2" to a satisfaction question becomes the citizen's verdict through
supervision's case action over RPC (onegrid/app/replies.py); a case the 12345 hotline sent is
answered at each step on the `hotline` channel.
"""

from __future__ import annotations

from nameko.exceptions import RemoteError
from nameko.rpc import RpcProxy
from nameko.timer import timer
from nameko.web.handlers import http

from onegrid.adapters.channels.notify_channels import SIGNATURE, TIMESTAMP, verify
from onegrid.adapters.nameko.contexts import NotifyContext
from onegrid.adapters.nameko.httpjson import body_of, json_response, respond
from onegrid.adapters.nameko.people import People
from onegrid.adapters.nameko.providers import Observable
from onegrid.adapters.nameko.reliable import Inbound, reliable_consume
from onegrid.adapters.redis.auth import Unauthorized
from onegrid.adapters.redis.sms_replies import ReplyBook
from onegrid.app.notify import Notify
from onegrid.app.replies import Busy, SmsReplies
from onegrid.domain.access import redact_reply
from onegrid.domain.lifecycle import TransitionRefused
from onegrid.domain.scoring import read_event
from onegrid.kernel import settings


class NotifyService(Observable):
    name = "notify"
    ctx = NotifyContext()
    people = People()
    supervision = RpcProxy("supervision")  # the citizen's verdict by SMS goes through its case action

    @property
    def notify(self) -> Notify:
        """The use cases over this worker's ports."""
        ctx = self.ctx
        return Notify(ctx.tenant, ctx.config, ctx.names, ctx.outbox, ctx.deliveries, ctx.lease)

    @property
    def replies(self) -> SmsReplies:
        """The inbound use cases: questions asked, replies received."""
        ctx = self.ctx
        book = ReplyBook(ctx.outbox.r, ctx.tenant.id)
        return SmsReplies(ctx.tenant, ctx.config, ctx.names, book, ctx.outbox, SupervisionVerdicts(self.supervision))

    @reliable_consume("notify.case-events")
    def on_case_event(self, message: Inbound):
        event = read_event(message.headers, message.body, message.routing_key)
        self.replies.on_event(event)  # the question is open before its SMS can go out
        self.notify.on_event(event)

    @timer(interval=0.25)
    def deliver_due(self):
        self.notify.deliver_due()

    @http("GET", "/notify/stats")
    def http_stats(self, request):
        def run():
            self.people.authorize(request, "notify.read", "stats")
            return self.notify.stats()

        return respond(run)

    @http("GET", "/notify/parked")
    def http_parked(self, request):
        def run():
            self.people.authorize(request, "notify.read", "parked")
            return self.notify.parked(request.args.to_dict())

        return respond(run)

    @http("GET", "/notify/replies")
    def http_replies(self, request):
        """The citizens' SMS replies, newest first (`outcome=unmatched`: those no case took)."""

        def run():
            who = self.people.authorize(request, "notify.replies", "replies")
            rows = self.replies.replies(request.args.to_dict())
            if rows:
                self.people.audit.append(
                    who.subject,
                    who.role,
                    "notify.replies",
                    "replies",
                    "read",
                    f"phone numbers of {len(rows)} reply(ies)",
                )
            return {"replies": [redact_reply(who, r) for r in rows]}

        return respond(run)

    @http("POST", "/notify/sms/replies")
    def http_sms_reply(self, request):
        """The SMS gateway pushes a reply it received: signed with the county's inbound secret
        (X-OneGrid-Timestamp, X-OneGrid-Signature over `<timestamp>.<body>`); its outcome."""

        def run():
            inbound = self.ctx.config.inbound
            secret = settings.secret(inbound["secret_env"]) if inbound else None
            if not secret:
                raise _unsigned(
                    "not_configured", "this county receives no SMS replies (notify.channels.sms.inbound_secret_env)"
                )
            raw = request.get_data()
            ts, sig = request.headers.get(TIMESTAMP, ""), request.headers.get(SIGNATURE, "")
            if not verify(secret.encode(), ts, raw, sig, float(inbound["tolerance_s"])):
                self.people.audit.append(
                    "sms-gateway", "sms_gateway", "sms.reply", "replies", "unauthenticated", "bad or stale signature"
                )
                raise _unsigned("invalid_signature", f"sign `<{TIMESTAMP}>.<body>` with HMAC-SHA256 (docs/notify.md)")
            try:
                return self.replies.receive(body_of(request))
            except Busy as exc:
                return json_response(503, {"error": str(exc)}, {"Retry-After": "5"})

        return respond(run)


def _unsigned(error: str, detail: str) -> Unauthorized:
    """A 401 whose challenge says what the gateway sends: a signature, not a bearer token."""
    exc = Unauthorized(error, detail)
    exc.headers = {"WWW-Authenticate": f'OneGrid-HMAC-SHA256 realm="onegrid", error="{error}"'}
    return exc


class SupervisionVerdicts:
    """The Verdicts port over RPC: supervision's refusals as the exceptions they were."""

    def __init__(self, proxy):
        self.proxy = proxy

    def act(self, case_id: str, action: str, actor: str, note: str) -> None:
        try:
            self.proxy.act(case_id, action, actor, note)
        except RemoteError as exc:
            if exc.exc_type == "TransitionRefused":
                raise TransitionRefused(str(exc.value)) from None
            if exc.exc_type in ("LookupError", "KeyError"):
                raise LookupError(str(exc.value)) from None
            raise
