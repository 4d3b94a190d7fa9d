"""What a county's registry service published, and how each contract version is used, in
Redis under the tenant's keys. The image's contract files are the embedded default; this is
the county's layer on top (onegrid.contracts.registry.Overlay), read by every service at start
and on a change.

  og:{t}:registry:events    hash `<key>:<version>` -> {"department", "entry"} (JSON); written once
  og:{t}:registry:manifest  the published tenant manifest (JSON), replacing the file's
  og:{t}:registry:retired   set of `<key>:<version>` the county no longer accepts
  og:{t}:registry:revision  bumped on every change: a service reloads when it differs from its own
  og:{t}:usage:events       hash `<key>:<version>|<department>` -> events intake accepted
  og:{t}:usage:last         hash, same fields -> epoch seconds of the latest
"""

from __future__ import annotations

import json

import redis

from onegrid.adapters.redis.replies import text, text_map
from onegrid.adapters.redis.store import run_each
from onegrid.contracts import Overlay
from onegrid.domain.versions import Use, field_of, parse_field

# the latest-seen time only moves forward, whichever replica writes last
_USE = """
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
local last = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if tonumber(ARGV[2]) > last then redis.call('HSET', KEYS[2], ARGV[1], ARGV[2]) end
return 1
"""


def _vid(key: str, version: int) -> str:
    return f"{key}:{version}"


class Published:
    def __init__(self, client: redis.Redis, tenant: str):
        self.r, self.tenant = client, tenant
        base = f"og:{{{tenant}}}:"
        self.events_key = base + "registry:events"
        self.manifest_key = base + "registry:manifest"
        self.retired_key = base + "registry:retired"
        self.revision_key = base + "registry:revision"
        self.uses_key = base + "usage:events"
        self.last_key = base + "usage:last"
        self._use = self.r.register_script(_USE)

    # -- the overlay ---------------------------------------------------------------------
    def revision(self) -> int:
        return int(self.r.get(self.revision_key) or 0)

    def overlay(self) -> Overlay:
        """Everything published, read in one transaction (a consistent revision)."""
        pipe = self.r.pipeline(transaction=True)
        pipe.get(self.revision_key)
        pipe.hgetall(self.events_key)
        pipe.get(self.manifest_key)
        pipe.smembers(self.retired_key)
        revision, events, manifest, retired = pipe.execute()
        by_department: dict[str, list[tuple[int, dict]]] = {}
        for raw in text_map(events or {}).values():
            item = json.loads(raw)
            entry = item["entry"]
            by_department.setdefault(item["department"], []).append((entry["version"], entry))
        gone = set()
        for vid in retired or ():
            key, _, version = text(vid).rpartition(":")
            gone.add((key, int(version)))
        return Overlay(
            events={d: tuple(e for _, e in sorted(items, key=lambda x: x[0])) for d, items in by_department.items()},
            manifests={self.tenant: json.loads(manifest)} if manifest else {},
            retired=frozenset(gone),
            revision=int(revision or 0),
        )

    def published_version(self, key: str, version: int) -> dict | None:
        raw = self.r.hget(self.events_key, _vid(key, version))
        return json.loads(raw)["entry"] if raw else None

    def add_version(self, department: str, key: str, version: int, entry: dict) -> tuple[bool, int]:
        """Store a new version once (never overwritten): (stored, the revision after)."""
        item = json.dumps({"department": department, "entry": entry}, ensure_ascii=False, sort_keys=True)
        if not self.r.hsetnx(self.events_key, _vid(key, version), item):
            return False, self.revision()
        return True, int(self.r.incr(self.revision_key))

    def put_manifest(self, doc: dict) -> int:
        pipe = self.r.pipeline(transaction=True)
        pipe.set(self.manifest_key, json.dumps(doc, ensure_ascii=False, sort_keys=True))
        pipe.incr(self.revision_key)
        return int(pipe.execute()[1])

    def retire(self, key: str, version: int) -> tuple[bool, int]:
        """(whether it was not retired before, the revision after)."""
        if not self.r.sadd(self.retired_key, _vid(key, version)):
            return False, self.revision()
        return True, int(self.r.incr(self.revision_key))

    # -- usage ---------------------------------------------------------------------------
    def record_use(self, department: str, key: str, version: int, at: float) -> None:
        self._use(keys=[self.uses_key, self.last_key], args=[field_of(key, version, department), f"{at:.3f}"])

    def record_uses(self, uses: list[tuple[str, str, int, float]]) -> None:
        """record_use for each (department, key, version, at), in one round trip (a batch):
        EVALSHAs in one pipeline (run_each), not a Script on a pipeline, which asks SCRIPT
        EXISTS first, a round trip more per batch."""
        keys = [self.uses_key, self.last_key]
        calls = [(keys, [field_of(key, version, department), f"{at:.3f}"]) for department, key, version, at in uses]
        run_each(self.r, self._use, calls, (0, 0))

    def uses(self) -> list[Use]:
        pipe = self.r.pipeline(transaction=True)
        pipe.hgetall(self.uses_key)
        pipe.hgetall(self.last_key)
        counts, lasts = (text_map(x or {}) for x in pipe.execute())
        out = []
        for name, n in sorted(counts.items()):
            parsed = parse_field(name)
            if parsed is not None:
                out.append(Use(*parsed, events=int(n), last_seen=float(lasts.get(name, 0))))
        return out
