"""Notifications in Redis: an outbox the deliverer drains, parked ones, idempotency keys,
per-recipient send times. Keys under `og:{<tenant>}:notify:`:

| key | type | holds |
| --- | --- | --- |
| `notify:d:<key>` | hash | a notification: recipient, channel, text, state (pending, sent, parked), attempts, reason |
| `notify:outbox` | sorted set | pending keys by next attempt time (a claimed one: by its lease's end) |
| `notify:parked` | sorted set | parked keys by when they were parked |
| `notify:rate:<channel>:<address hash>` | sorted set | recent sends to one recipient |
| `notify:stats` | hash | enqueued, sent:<channel>, parked:<channel>, replayed |

The key of a notification is its idempotency key (event ce-id, kind, recipient, channel):
a redelivered event finds it there and enqueues nothing. A sent one is kept for
`retention_days`, a parked one until it is replayed.
"""

from __future__ import annotations

import hashlib
import random
import time
from typing import cast

import redis

from onegrid.adapters.channels.notify_channels import DeliveryError
from onegrid.adapters.redis.replies import text, text_map, texts
from onegrid.domain import notify as nd
from onegrid.kernel import metrics
from onegrid.kernel.clock import now_iso

_ENQUEUE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
redis.call('HINCRBY', KEYS[3], 'enqueued', 1)
return 1
"""
_CLAIM = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[2], id) end
return ids
"""


class Outbox:
    def __init__(self, client: redis.Redis, tenant: str):
        self.r = client  # decode_responses=True
        self.tenant = tenant
        self.prefix = f"og:{{{tenant}}}:notify:"
        self._enqueue = client.register_script(_ENQUEUE)
        self._claim = client.register_script(_CLAIM)

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def enqueue(self, n: nd.Notification, now: float) -> bool:
        """Record and schedule a notification; False when its idempotency key is known."""
        fields: dict[str, str | int] = {
            "id": n.key,
            "tenant": self.tenant,
            "kind": n.kind,
            "channel": n.channel,
            "role": n.recipient.role,
            "recipient_id": n.recipient.id,
            "recipient_name": n.recipient.name,
            "address": n.address,
            "subject": n.subject,
            "text": n.text,
            "case_id": n.case_id,
            "event_id": n.event_id,
            "event_type": n.event_type,
            "created": repr(now),
            "created_at": now_iso(),
            "attempts": 0,
            "state": "pending",
            "reason": "",
            **{k: str(v) for k, v in n.extra.items()},  # a channel's own fields (a 12345 answer's ticket_no)
        }
        args: list[str | int | float] = [now, n.key]
        for k, v in fields.items():
            args += [k, v]
        return bool(self._enqueue(keys=[self.key("d", n.key), self.key("outbox"), self.key("stats")], args=args))

    def claim(self, now: float, lease: float, limit: int) -> list[str]:
        """Due keys, each leased (rescheduled to now + lease) so no other deliverer takes it;
        a deliverer that dies leaves it to be taken again when the lease ends."""
        return self._claim(keys=[self.key("outbox")], args=[now, now + lease, limit]) if limit > 0 else []

    def get(self, key: str) -> dict[str, str] | None:
        return text_map(self.r.hgetall(self.key("d", key))) or None

    def allow(self, channel: str, address: str, member: str, now: float, limit: int, window: float) -> float | None:
        """The rate limit: None and the send counted, or when the recipient can take the next."""
        rate_key = self.key("rate", channel, hashlib.sha256(address.encode()).hexdigest()[:20])

        def attempt(pipe):
            recent = [score for _, score in pipe.zrangebyscore(rate_key, now - window, "+inf", withscores=True)]
            wait = nd.rate_decision(recent, now, int(limit), window)
            if wait is None:
                pipe.multi()
                pipe.zremrangebyscore(rate_key, "-inf", now - window)
                pipe.zadd(rate_key, {member: now})
                pipe.expire(rate_key, int(window) + 1)
            return wait

        # with value_from_callable the result is attempt's, which redis-py's types do not say
        return cast("float | None", self.r.transaction(attempt, rate_key, value_from_callable=True))

    def defer(self, key: str, at: float) -> None:
        self.r.zadd(self.key("outbox"), {key: at})

    def sent(self, key: str, attempts: int, channel: str, retention_s: int) -> None:
        with self.r.pipeline() as pipe:
            pipe.hset(
                self.key("d", key), mapping={"state": "sent", "attempts": attempts, "sent_at": now_iso(), "reason": ""}
            )
            pipe.zrem(self.key("outbox"), key)
            pipe.expire(self.key("d", key), retention_s)
            pipe.hincrby(self.key("stats"), f"sent:{channel}", 1)
            pipe.execute()

    def retry(self, key: str, attempts: int, reason: str, at: float) -> None:
        with self.r.pipeline() as pipe:
            pipe.hset(self.key("d", key), mapping={"attempts": attempts, "reason": reason, "next_at": repr(at)})
            pipe.zadd(self.key("outbox"), {key: at})
            pipe.execute()

    def park(self, key: str, attempts: int, reason: str, channel: str, now: float) -> None:
        with self.r.pipeline() as pipe:
            pipe.hset(
                self.key("d", key),
                mapping={"state": "parked", "attempts": attempts, "reason": reason, "parked_at": now_iso()},
            )
            pipe.zrem(self.key("outbox"), key)
            pipe.zadd(self.key("parked"), {key: now})
            pipe.hincrby(self.key("stats"), f"parked:{channel}", 1)
            pipe.execute()

    # -- operators ----------------------------------------------------------------------
    def parked(self, limit: int = 1000) -> list[dict]:
        return [rec for rec in (self.get(k) for k in texts(self.r.zrange(self.key("parked"), 0, limit - 1))) if rec]

    def replay(self, keys: list[str] | None = None, now: float | None = None) -> int:
        """Parked notifications back in the outbox, attempts reset; the deliverer sends them."""
        now = time.time() if now is None else now
        chosen = keys if keys else texts(self.r.zrange(self.key("parked"), 0, -1))
        n = 0
        for key in chosen:
            rec = self.get(key)
            if not rec or rec.get("state") != "parked":
                continue
            with self.r.pipeline() as pipe:
                pipe.hset(self.key("d", key), mapping={"state": "pending", "attempts": 0})
                pipe.zrem(self.key("parked"), key)
                pipe.zadd(self.key("outbox"), {key: now})
                pipe.hincrby(self.key("stats"), f"parked:{rec['channel']}", -1)
                pipe.hincrby(self.key("stats"), "replayed", 1)
                pipe.execute()
            n += 1
        return n

    def stats(self) -> dict[str, int]:
        return {text(k): int(v) for k, v in self.r.hgetall(self.key("stats")).items()}

    def pending(self) -> int:
        return self.r.zcard(self.key("outbox"))


def payload(rec: dict) -> dict:
    """What a channel sends: the record, with the recipient as one object."""
    return {**rec, "recipient": {"role": rec["role"], "id": rec["recipient_id"], "name": rec["recipient_name"]}}


def deliver(
    outbox: Outbox, channels: dict, cfg: nd.Config, key: str, rng: random.Random | None = None, clock=time.time
) -> str:
    """One attempt at one notification: sent, retried later (backoff with jitter), parked
    after the last attempt or a permanent error, or deferred by the recipient's rate limit."""
    rec = outbox.get(key)
    if not rec or rec.get("state") != "pending":
        outbox.r.zrem(outbox.key("outbox"), key)
        return "gone"
    channel, attempt = rec["channel"], int(rec.get("attempts") or 0) + 1
    limit = cfg.rate_limit
    wait = outbox.allow(
        channel, rec["address"], f"{key}:{attempt}", clock(), limit["per_recipient"], float(limit["window_s"])
    )
    if wait is not None:
        outbox.defer(key, wait)
        return "rate_limited"
    try:
        sender = channels.get(channel)
        if sender is None:
            raise DeliveryError(f"channel {channel} is not enabled", permanent=True)
        sender.send(payload(rec))
    except Exception as exc:
        err = exc if isinstance(exc, DeliveryError) else DeliveryError(f"{type(exc).__name__}: {exc}")
        metrics.NOTIFICATIONS_FAILED.labels(outbox.tenant, channel).inc()
        d = cfg.delivery
        if err.permanent or attempt >= int(d["max_attempts"]):
            why = "permanent error" if err.permanent else f"attempt {attempt} of {int(d['max_attempts'])}"
            outbox.park(key, attempt, f"{err.reason} ({why})", channel, clock())
            metrics.NOTIFICATIONS_PARKED.labels(outbox.tenant, channel).inc()
            return "parked"
        delay = nd.backoff(attempt, float(d["base_delay_s"]), float(d["max_delay_s"]), float(d["jitter"]), rng)
        outbox.retry(key, attempt, err.reason, clock() + delay)
        metrics.NOTIFICATIONS_RETRIED.labels(outbox.tenant, channel).inc()
        return "retried"
    outbox.sent(key, attempt, channel, int(float(cfg.delivery["retention_days"]) * 86400))
    metrics.NOTIFICATIONS_SENT.labels(outbox.tenant, channel).inc()
    metrics.NOTIFICATION_SECONDS.labels(channel).observe(max(0.0, clock() - float(rec["created"])))
    return "sent"
