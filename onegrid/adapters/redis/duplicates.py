"""Duplicate suggestions and the pairs people said are distinct, in Redis (one tenant's keys,
under the store's prefix):

  dup:suggestion:<case id>   the suggestion (JSON), one per case, kept after it is decided
  dup:open                   sorted set: the open suggestions by when they were made (the inbox)
  dup:distinct               set of pair keys a person dismissed or un-merged: never again
  stats                      duplicates:<auto_merged|suggested|confirmed|dismissed> counters
"""

from __future__ import annotations

import json

from onegrid.adapters.redis.replies import text_map, texts
from onegrid.adapters.redis.store import Store
from onegrid.domain.duplicates import Candidates, Suggestion, pair_key

_SUGGEST = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
  redis.call('HINCRBY', KEYS[3], 'duplicates:suggested', 1)
  return 1
end
return 0
"""
COUNTERS = ("auto_merged", "suggested", "confirmed", "dismissed")


class DuplicateBook:
    def __init__(self, store: Store):
        self.store, self.r = store, store.r
        self._suggest = self.r.register_script(_SUGGEST)

    def _key(self, case_id: str) -> str:
        return self.store.key("dup", "suggestion", case_id)

    def suggest(self, s: Suggestion, score: float) -> bool:
        """Record it once (a redelivery finds it there: False)."""
        keys = [self._key(s.case_id), self.store.key("dup", "open"), self.store.key("stats")]
        return bool(self._suggest(keys, [json.dumps(s.as_dict(), ensure_ascii=False), score, s.case_id]))

    def suggestion(self, case_id: str) -> Suggestion | None:
        raw = self.r.get(self._key(case_id))
        return Suggestion.from_dict(json.loads(raw)) if raw else None

    def decide(self, s: Suggestion) -> bool:
        """Record a decision on an open suggestion; False when it was decided already (the first
        decision stands). A dismissal marks the pair distinct in the same transaction."""
        key = self._key(s.case_id)

        recorded: list[bool] = []

        def attempt(pipe) -> None:
            raw = pipe.get(key)
            recorded[:] = [bool(raw) and json.loads(raw)["status"] == "open"]
            if not recorded[0]:
                return
            pipe.multi()
            pipe.set(key, json.dumps(s.as_dict(), ensure_ascii=False))
            pipe.zrem(self.store.key("dup", "open"), s.case_id)
            pipe.hincrby(self.store.key("stats"), f"duplicates:{s.status}", 1)
            if s.status == "dismissed":
                pipe.sadd(self.store.key("dup", "distinct"), pair_key(s.case_id, s.primary_id))

        self.r.transaction(attempt, key)
        return recorded[0]

    def mark_distinct(self, a: str, b: str) -> None:
        self.r.sadd(self.store.key("dup", "distinct"), pair_key(a, b))

    def distinct(self, pairs: list[str]) -> set[str]:
        """Those of `pairs` a person said are distinct."""
        if not pairs:
            return set()
        flags = self.r.smismember(self.store.key("dup", "distinct"), pairs)
        return {p for p, f in zip(pairs, flags, strict=True) if f}

    def recent_ids(self, windows: list[tuple[str, float, float]]) -> list[list[str]]:
        return self.store.recent_ids(windows)

    def candidates(
        self, case_id: str, category: str, since: float, until: float, ids: list[str] | None = None
    ) -> Candidates:
        """The cases of `category` that occurred in [since, until] but `case_id`, and the pairs
        among them said distinct: their records and the pairs in one round trip (none when
        there is nobody else), after one for the ids unless `ids` has them (recent_ids)."""
        if ids is None:
            [ids] = self.store.recent_ids([(category, since, until)])
        ids = [i for i in ids if i != case_id]
        if not ids:
            return Candidates([], frozenset())
        pairs = [pair_key(case_id, i) for i in ids]
        pipe = self.r.pipeline(transaction=False)
        self.store.read_cases(pipe, ids)
        pipe.smismember(self.store.key("dup", "distinct"), pairs)
        *replies, flags = pipe.execute()
        found = self.store.found_cases(ids, replies)
        return Candidates(found, frozenset(p for p, f in zip(pairs, flags, strict=True) if f))

    def count(self, name: str) -> None:
        self.r.hincrby(self.store.key("stats"), f"duplicates:{name}", 1)

    def open(self, offset: int = 0, limit: int = 50) -> tuple[int, list[Suggestion]]:
        """(how many are open, one page of them, oldest first)."""
        key = self.store.key("dup", "open")
        ids = texts(self.r.zrange(key, offset, offset + limit - 1))
        found = [self.suggestion(i) for i in ids]
        return int(self.r.zcard(key)), [s for s in found if s is not None]

    def counts(self) -> dict[str, int]:
        stats = text_map(self.r.hgetall(self.store.key("stats")))
        out = {name: int(stats.get(f"duplicates:{name}", 0)) for name in COUNTERS}
        out["unmerged"] = int(stats.get("unmerged", 0))  # counted by casework's un-merge
        out["open"] = int(self.r.zcard(self.store.key("dup", "open")))
        return out
