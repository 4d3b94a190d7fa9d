"""notify's inbound use cases: the satisfaction questions opened and settled as the lifecycle
events pass, and a reply the SMS gateway received turned into the citizen's verdict on the
right case through supervision's case action (docs/notify.md, "Replies"). The rule is
onegrid/domain/replies.py's; checking the gateway's signature is the route's."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from onegrid.app.inputs import Replies as RepliesQuery
from onegrid.app.inputs import SmsReply
from onegrid.app.ports import Clock, NotificationOutbox, ReplyBook, Verdicts
from onegrid.domain import notify as nd
from onegrid.domain import replies as rp
from onegrid.domain.lifecycle import TransitionRefused
from onegrid.domain.scoring import Event
from onegrid.kernel import metrics
from onegrid.kernel.clock import SystemClock
from onegrid.kernel.tenant import Tenant

SETTLES = ("case.closed", "case.reopened", "case.rejected", "case.merged")  # the verdict no longer awaited


class Busy(Exception):
    """Another process is handling the same message now: the gateway should try again."""


@dataclass
class SmsReplies:
    tenant: Tenant
    config: nd.Config
    names: nd.Names
    book: ReplyBook
    outbox: NotificationOutbox
    verdicts: Verdicts
    clock: Clock = field(default_factory=SystemClock)

    def on_event(self, event: Event) -> None:
        """A satisfaction SMS asked (a verified case whose reporter has a number, SMS on): its
        question opens; the case closed, reopened, rejected or merged: it is settled."""
        d = event.data
        case_id = str(d.get("id") or "")
        if not case_id:
            return
        if event.type == "case.verified":
            phone = (d.get("reporter") or {}).get("phone")
            if phone and "sms" in self.config.channels:
                q = rp.Question(case_id, self.clock.now(), str(d.get("summary") or ""))
                self.book.ask(rp.phone_key(self.tenant.id, str(phone)), q)
        elif event.type in SETTLES:
            self.book.settle(case_id)

    def receive(self, body: dict) -> dict:
        """One pushed reply (its signature already checked): its outcome, the same for every
        retry of the same message_id."""
        sms = SmsReply().load(body)
        message_key = hashlib.sha256(f"{self.tenant.id}|{sms['message_id']}".encode()).hexdigest()[:32]
        prior = self.book.claim(message_key)
        if prior is not None:
            if prior.get("busy"):
                raise Busy(f"message {sms['message_id']} is being handled")
            return {**prior, "replayed": True}
        try:
            answer = self._decide(sms, message_key)
        except BaseException:
            self.book.release(message_key)  # nothing recorded: the gateway's retry decides again
            raise
        kept = {**answer, "from": sms["from_"], "text": sms["text"][: rp.MAX_TEXT], "received_at": sms["received_at"]}
        retention = int(float(self.config.delivery["retention_days"]) * 86400)
        self.book.record(message_key, answer, kept, retention)
        metrics.SMS_REPLIES.labels(self.tenant.id, answer["outcome"]).inc()
        return {**answer, "replayed": False}

    def _decide(self, sms: dict, message_key: str) -> dict:
        phone = sms["from_"]
        key = rp.phone_key(self.tenant.id, phone)
        reply = rp.parse(sms["text"])
        out = rp.match(reply, self.book.questions(key))
        if out.outcome == rp.MATCHED:
            try:
                self.verdicts.act(
                    out.case_id, out.verdict, rp.citizen_actor(key), rp.timeline_note(out.verdict, sms["text"])
                )
            except (TransitionRefused, LookupError):  # answered already, or closed for no answer meanwhile
                out = rp.Outcome(rp.UNMATCHED, "case_moved_on", out.case_id, out.verdict)
            self.book.settle(out.case_id)
        elif out.outcome == rp.AMBIGUOUS:
            text = rp.ask_again_text(self.names.tenant_name, out.asked)
            ask = nd.plan_reply_ask(message_key, out.asked[0].case_id, rp.normal_phone(phone), text, self.config)
            if ask is not None:
                self.outbox.enqueue(ask, self.clock.now())
        return {"message_id": sms["message_id"], **out.as_dict()}

    def replies(self, args: dict) -> list[dict]:
        q = RepliesQuery().load(args)
        return self.book.replies(q["outcome"], q["limit"])
