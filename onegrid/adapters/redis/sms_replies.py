"""The citizens' SMS replies in Redis: the satisfaction questions open per phone number, each
received message's outcome (for a gateway's retry), and every reply kept. Keys under
`og:{<tenant>}:notify:`:

| key | type | holds |
| --- | --- | --- |
| `notify:ask:<phone hash>` | hash | case id -> {asked, summary}: the questions open to one number |
| `notify:ask-case:<case id>` | string | the phone hash its question went to (to settle it when the case moves on) |
| `notify:reply:<message hash>` | string | a received message's outcome (JSON); `-` while it is being handled |
| `notify:replies` | stream | every reply: message id, number, text, outcome, reason, case (never trimmed) |
| `notify:stats` | hash | `replies:<outcome>` (received, matched, ambiguous, unmatched), `replies:unmatched:<reason>` |

Numbers are matched by their hash (onegrid.domain.replies.phone_key); the reply stream keeps
the number itself, for the command centre to call the citizen back (a read is audited).
"""

from __future__ import annotations

import json

import redis

from onegrid.adapters.redis.replies import text, text_map
from onegrid.domain.replies import Question

HANDLING_S = 60  # a message being handled by a process that died is taken again after this
REPLY_FIELDS = ("message_id", "from", "text", "received_at", "outcome", "reason", "case_id", "verdict")


class ReplyBook:
    def __init__(self, client: redis.Redis, tenant: str):
        self.r = client  # decode_responses=True
        self.prefix = f"og:{{{tenant}}}:notify:"

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    # -- questions ---------------------------------------------------------------------
    def ask(self, phone_key: str, q: Question) -> None:
        with self.r.pipeline() as pipe:
            pipe.hset(self.key("ask", phone_key), q.case_id, json.dumps({"asked": q.asked, "summary": q.summary}))
            pipe.set(self.key("ask-case", q.case_id), phone_key)
            pipe.execute()

    def settle(self, case_id: str) -> None:
        """The case no longer awaits the verdict: its question is closed."""
        phone_key = self.r.get(self.key("ask-case", case_id))
        with self.r.pipeline() as pipe:
            if phone_key:
                pipe.hdel(self.key("ask", text(phone_key)), case_id)
            pipe.delete(self.key("ask-case", case_id))
            pipe.execute()

    def questions(self, phone_key: str) -> list[Question]:
        out = []
        for case_id, raw in text_map(self.r.hgetall(self.key("ask", phone_key))).items():
            doc = json.loads(raw)
            out.append(Question(case_id, float(doc.get("asked", 0)), doc.get("summary", "")))
        return out

    # -- received messages -------------------------------------------------------------
    def claim(self, message_key: str) -> dict | None:
        """None: this process handles the message; else its recorded outcome, or {"busy": True}
        while another process is handling it."""
        if self.r.set(self.key("reply", message_key), "-", nx=True, ex=HANDLING_S):
            return None
        raw = self.r.get(self.key("reply", message_key))
        if raw is None:  # the other handler gave up between the two calls: take it
            return self.claim(message_key)
        return {"busy": True} if text(raw) == "-" else json.loads(text(raw))

    def release(self, message_key: str) -> None:
        self.r.delete(self.key("reply", message_key))

    def record(self, message_key: str, answer: dict, kept: dict, retention_s: int) -> None:
        """The outcome, kept for the gateway's retries for `retention_s`; the reply on the stream;
        the counts."""
        with self.r.pipeline() as pipe:
            pipe.set(self.key("reply", message_key), json.dumps(answer, ensure_ascii=False), ex=retention_s)
            pipe.xadd(self.key("replies"), {k: str(kept.get(k) or "") for k in REPLY_FIELDS})
            pipe.hincrby(self.key("stats"), "replies:received", 1)
            pipe.hincrby(self.key("stats"), f"replies:{answer['outcome']}", 1)
            if answer["outcome"] == "unmatched":
                pipe.hincrby(self.key("stats"), f"replies:unmatched:{answer['reason']}", 1)
            pipe.execute()

    def replies(self, outcome: str | None = None, limit: int = 100) -> list[dict]:
        """The newest replies first, those with `outcome` when given."""
        out = []
        for entry_id, raw in self.r.xrevrange(self.key("replies"), count=max(1, limit) * 4) or ():
            row = text_map(raw or {})
            if outcome and row.get("outcome") != outcome:
                continue
            out.append({"id": text(entry_id), **row})
            if len(out) >= limit:
                break
        return out
