"""Durable timers: one sorted set per tenant, scored by due time (epoch seconds).

A tick asks only for what is due (ZRANGEBYSCORE ... LIMIT), so its cost grows with the number
of due timers, not of open cases. Claiming moves a timer to an in-flight set with a lease;
a process that dies mid-fire leaves it there, and the next tick after the lease puts it back.
Firing is therefore at-least-once; what a timer does is idempotent (docs/lifecycle.md).
"""

from __future__ import annotations

import redis

_CLAIM = """
local back = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, m in ipairs(back) do
  local due = redis.call('HGET', KEYS[3], m)
  redis.call('ZREM', KEYS[2], m)
  redis.call('HDEL', KEYS[3], m)
  if due and not redis.call('ZSCORE', KEYS[1], m) then redis.call('ZADD', KEYS[1], due, m) end
end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[2])
local out = {}
for i = 1, #due, 2 do
  local m, score = due[i], due[i + 1]
  redis.call('ZREM', KEYS[1], m)
  redis.call('ZADD', KEYS[2], ARGV[1] + ARGV[3], m)
  redis.call('HSET', KEYS[3], m, score)
  table.insert(out, m)
  table.insert(out, score)
end
return out
"""


class Timers:
    def __init__(self, client: redis.Redis, prefix: str):
        self.r = client
        self.due_key, self.inflight_key, self.inflight_due = (
            prefix + "timers",
            prefix + "timers:inflight",
            prefix + "timers:inflight:due",
        )
        self._claim = client.register_script(_CLAIM)

    def arm(self, member: str, due: float, pipe=None) -> None:
        (pipe or self.r).zadd(self.due_key, {member: due})

    def cancel(self, member: str, pipe=None) -> None:
        (pipe or self.r).zrem(self.due_key, member)

    def due_at(self, member: str) -> float | None:
        return self.r.zscore(self.due_key, member)

    def claim(self, now: float, limit: int = 200, lease: float = 30.0) -> list[tuple[str, float]]:
        """Due timers, now owned by the caller until `done` or the lease runs out."""
        raw = self._claim(keys=[self.due_key, self.inflight_key, self.inflight_due], args=[now, limit, lease])
        return [(raw[i].decode(), float(raw[i + 1])) for i in range(0, len(raw), 2)]

    def done(self, member: str) -> None:
        pipe = self.r.pipeline()
        pipe.zrem(self.inflight_key, member)
        pipe.hdel(self.inflight_due, member)
        pipe.execute()

    def pending(self) -> int:
        return self.r.zcard(self.due_key)
