"""Department credentials kept in Redis, and the per-department rate limit.

HTTP tokens: only the SHA-256 of a token is stored, in the tenant's key space, so a copy of
Redis reveals no usable token. A department has at most one active token; rotating it
retires the old one at once, revoking it retires it and leaves the department without one.

  og:{t}:auth:tokens              hash  sha256 -> department          (active tokens)
  og:{t}:auth:retired             hash  sha256 -> why|department|at   (rotated or revoked)
  og:{t}:auth:department:<d>      hash  sha256, issued_at, state (active | revoked), revoked_at
  og:{t}:ratelimit:<d>            hash  token bucket (tokens, ts), expires when full again

The rate limit is a token bucket per department shared by every intake replica (a Lua
script on Redis's clock): `rate` events per second, at most `burst` at once.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from dataclasses import dataclass

import redis

from onegrid.adapters.redis.replies import text

TOKEN_PREFIX = "ogt_"
ANONYMOUS = "-anonymous"  # the bucket of unauthenticated requests (trusted demo tenants only)

_BUCKET = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local allowed, wait = 0, 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  wait = (cost - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return {allowed, tostring(wait)}
"""


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def bearer(header: str | None) -> tuple[str | None, str | None]:
    """(token, problem) from an Authorization header; (None, None) when there is none."""
    if not header:
        return None, None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None, "the Authorization header must be `Bearer <token>`"
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None, "not a OneGrid token"
    return token, None


@dataclass(frozen=True)
class Verdict:
    department: str | None
    problem: str | None = None  # why a presented token was refused


class Tokens:
    """One tenant's HTTP tokens."""

    def __init__(self, client: redis.Redis, tenant: str):
        self.r, self.tenant = client, tenant
        self.prefix = f"og:{{{tenant}}}:auth:"

    def _dept_key(self, department: str) -> str:
        return f"{self.prefix}department:{department}"

    def issue(self, department: str) -> str:
        """A new token for `department`, retiring its current one (rotation). Shown once."""
        token, at = new_token(), _now()
        digest = token_hash(token)
        old = self.r.hget(self._dept_key(department), "sha256")
        pipe = self.r.pipeline(transaction=True)
        if old:
            pipe.hdel(self.prefix + "tokens", old)
            pipe.hset(self.prefix + "retired", old, f"rotated|{department}|{at}")
        pipe.hset(self.prefix + "tokens", digest, department)
        pipe.delete(self._dept_key(department))
        pipe.hset(self._dept_key(department), mapping={"sha256": digest, "issued_at": at, "state": "active"})
        pipe.execute()
        return token

    def revoke(self, department: str) -> bool:
        """Retire the department's token; True if it had an active one."""
        state = self.r.hgetall(self._dept_key(department))
        digest, at = state.get(b"sha256"), _now()
        pipe = self.r.pipeline(transaction=True)
        if digest:
            pipe.hdel(self.prefix + "tokens", digest)
            pipe.hset(self.prefix + "retired", digest, f"revoked|{department}|{at}")
        pipe.hset(self._dept_key(department), mapping={"state": "revoked", "revoked_at": at})
        pipe.hdel(self._dept_key(department), "sha256")
        pipe.execute()
        return bool(digest) and state.get(b"state") == b"active"

    def verify(self, token: str) -> Verdict:
        digest = token_hash(token)
        department = self.r.hget(self.prefix + "tokens", digest)
        if department:
            return Verdict(text(department))
        retired = self.r.hget(self.prefix + "retired", digest)
        if retired:
            why, dept, at = text(retired).split("|", 2)
            return Verdict(None, f"this token of {dept} was {why} at {at}")
        return Verdict(None, f"unknown token for tenant {self.tenant}")

    def state(self, department: str) -> str:
        """active | revoked | none"""
        raw = self.r.hget(self._dept_key(department), "state")
        return text(raw) if raw else "none"

    def states(self, departments) -> dict[str, str]:
        pipe = self.r.pipeline(transaction=False)
        for d in departments:
            pipe.hget(self._dept_key(d), "state")
        return {d: (v.decode() if v else "none") for d, v in zip(departments, pipe.execute(), strict=True)}

    def note_secret(self, name: str, value: str) -> None:
        """Remember that a tenant secret (notify's webhook signing key) was issued, by its
        SHA-256 only: onboarding then leaves it alone, as it does a department's token."""
        self.r.hset(self.prefix + "secrets", name, f"{token_hash(value)}|{_now()}")

    def secrets_issued(self) -> set[str]:
        return {text(k) for k in self.r.hkeys(self.prefix + "secrets")}

    def forget(self, department: str) -> None:
        """Drop every trace of a department's tokens (its user is gone)."""
        digest = self.r.hget(self._dept_key(department), "sha256")
        if digest:
            self.r.hdel(self.prefix + "tokens", digest)
        self.r.delete(self._dept_key(department))

    def clear(self) -> int:
        """Every credential of the tenant (offboarding)."""
        keys = list(self.r.scan_iter(match=_glob(self.prefix) + "*", count=500))
        return self.r.delete(*keys) if keys else 0


class RateLimiter:
    def __init__(self, client: redis.Redis, tenant: str):
        self.r, self.tenant = client, tenant
        self._take = client.register_script(_BUCKET)

    def take(self, department: str, cost: int, rate: float, burst: int) -> tuple[bool, float]:
        """(allowed, seconds to wait before `cost` events would be allowed)."""
        allowed, wait = self._take(keys=[f"og:{{{self.tenant}}}:ratelimit:{department}"], args=[rate, burst, cost])
        return bool(allowed), float(wait)


def retry_after(wait: float) -> int:
    return max(1, math.ceil(wait))


def _glob(prefix: str) -> str:
    return prefix.replace("{", "\\{").replace("}", "\\}")


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Unauthorized(Exception):
    """No acceptable credential: `error` is a bounded code, the message says what to send."""

    def __init__(self, error: str, detail: str):
        super().__init__(detail)
        self.error, self.detail = error, detail
        challenge = 'Bearer realm="onegrid"'
        self.headers = {
            "WWW-Authenticate": f'{challenge}, error="invalid_token"' if error == "invalid_token" else challenge
        }


def authenticate(tokens: Tokens, header: str | None, trust_unauthenticated: bool, what: str) -> str | None:
    """The department of a request's bearer token; None when there is none and the tenant
    trusts unauthenticated HTTP (demo tenants); else Unauthorized naming what is missing."""
    token, problem = bearer(header)
    if token is not None:
        verdict = tokens.verify(token)
        if verdict.department is not None:
            return verdict.department
        problem = verdict.problem
    if problem is not None:
        raise Unauthorized("invalid_token", problem)
    if not trust_unauthenticated:
        raise Unauthorized(
            "unauthenticated", f"{what} needs the department's token: Authorization: Bearer <token> (from onboarding)"
        )
    return None


class Forbidden(Exception):
    """Authenticated, but as someone who may not do this (another department's queue)."""


def speak_as(authenticated: str | None, department: str) -> None:
    """A department acts only as itself; None (a trusted demo tenant) may act as any."""
    if authenticated is not None and authenticated != department:
        raise Forbidden(f"the token is {authenticated}'s; it cannot act for {department}")
