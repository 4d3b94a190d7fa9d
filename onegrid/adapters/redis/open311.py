"""The Open311 door's state in the tenant's key space: client applications' api keys (only
their SHA-256, as the departments' tokens) and the index of the requests the door took.

  og:{t}:open311:keys             hash  sha256 -> client            (active keys)
  og:{t}:open311:client:<client>  hash  sha256, issued_at, state (active | revoked)
  og:{t}:open311:requests         zset  token -> epoch it was taken (GET requests reads it; KEEP_S)
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import redis

from onegrid.adapters.redis.auth import token_hash
from onegrid.adapters.redis.replies import text

KEY_PREFIX = "o311_"
KEEP_S = 400 * 86400  # a request stays listed (GET requests) for a year and a bit; its case stays for good


class Clients:
    """One tenant's Open311 client applications (a citizens' app, the 12345 system)."""

    def __init__(self, client: redis.Redis, tenant: str):
        self.r, self.prefix = client, f"og:{{{tenant}}}:open311:"

    def issue(self, client: str) -> str:
        """A new api_key for `client`, retiring its current one. Shown once."""
        key, at = KEY_PREFIX + secrets.token_urlsafe(32), datetime.now(UTC).isoformat(timespec="seconds")
        record = self.prefix + f"client:{client}"
        old = self.r.hget(record, "sha256")
        pipe = self.r.pipeline(transaction=True)
        if old:
            pipe.hdel(self.prefix + "keys", old)
        pipe.hset(self.prefix + "keys", token_hash(key), client)
        pipe.delete(record)
        pipe.hset(record, mapping={"sha256": token_hash(key), "issued_at": at, "state": "active"})
        pipe.execute()
        return key

    def revoke(self, client: str) -> bool:
        record = self.prefix + f"client:{client}"
        old = self.r.hget(record, "sha256")
        pipe = self.r.pipeline(transaction=True)
        if old:
            pipe.hdel(self.prefix + "keys", old)
        pipe.hset(record, mapping={"state": "revoked"})
        pipe.hdel(record, "sha256")
        pipe.execute()
        return bool(old)

    def verify(self, api_key: str) -> str | None:
        """The client whose active key this is, or None."""
        if not api_key.startswith(KEY_PREFIX) or len(api_key) > 128:
            return None
        found = self.r.hget(self.prefix + "keys", token_hash(api_key))
        return text(found) if found else None

    def states(self) -> dict[str, str]:
        out = {}
        for key in self.r.scan_iter(match=self.prefix.replace("{", "\\{").replace("}", "\\}") + "client:*"):
            out[text(key).rsplit(":", 1)[1]] = text(self.r.hget(key, "state") or b"none")
        return dict(sorted(out.items()))


class Requests:
    """The requests the door took, by token, in the order taken."""

    def __init__(self, client: redis.Redis, tenant: str):
        self.r, self.key = client, f"og:{{{tenant}}}:open311:requests"

    def add(self, token: str, epoch: float) -> None:
        pipe = self.r.pipeline(transaction=False)
        pipe.zadd(self.key, {token: epoch}, nx=True)
        pipe.zremrangebyscore(self.key, 0, epoch - KEEP_S)  # the index, not the cases, forgets
        pipe.execute()

    def known(self, token: str) -> bool:
        return self.r.zscore(self.key, token) is not None

    def between(self, start: float, end: float, limit: int) -> list[str]:
        """The newest `limit` tokens taken in [start, end], newest first."""
        return [text(t) for t in self.r.zrevrangebyscore(self.key, end, start, start=0, num=limit)]
