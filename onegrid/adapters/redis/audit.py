"""The county's audit trail: an append-only Redis stream, og:{t}:audit, never trimmed.

Every refused attempt (no token, a bad one, a role or scope that does not fit) and every read
of personal data (a case with its reporter's name or phone) is one entry: when, who (subject
and role), what (action and target), the outcome and the reason. The auditor reads it over
HTTP (`GET /audit` on supervision) or with `onegrid audit <tenant>`.
"""

from __future__ import annotations

import time

import redis

from onegrid.adapters.redis.replies import text

FIELDS = ("at", "subject", "role", "action", "target", "outcome", "reason")


class Audit:
    def __init__(self, client: redis.Redis, tenant: str):
        self.r, self.key = client, f"og:{{{tenant}}}:audit"

    def append(self, subject: str, role: str, action: str, target: str, outcome: str, reason: str = "") -> None:
        entry = dict(zip(FIELDS, (f"{time.time():.3f}", subject, role, action, target, outcome, reason), strict=True))
        self.r.xadd(self.key, entry)  # type: ignore[arg-type]

    def read(self, after: str = "-", limit: int = 100, subject: str | None = None, outcome: str | None = None) -> list:
        """Entries oldest first from `after` (an entry id, exclusive), filtered by subject and outcome."""
        start = f"({after}" if after not in ("-", "") else "-"
        out = []
        for entry_id, raw in self.r.xrange(self.key, min=start, max="+", count=max(1, min(limit, 1000)) * 4) or ():
            row = {text(k): text(v) for k, v in (raw or {}).items()}
            if (subject and row.get("subject") != subject) or (outcome and row.get("outcome") != outcome):
                continue
            out.append({"id": text(entry_id), **row})
            if len(out) >= limit:
                break
        return out

    def length(self) -> int:
        return int(self.r.xlen(self.key))
