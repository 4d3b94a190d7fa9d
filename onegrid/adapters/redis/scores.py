"""Scoring state in Redis, under the tenant's `og:{<tenant>}:scoring:` prefix.

One event is applied in one optimistic transaction (WATCH the case's state and its grid's
risk, decide in onegrid/domain/scoring.py, MULTI the writes): the ce-id is recorded in the
same write as the counters it moved, so a redelivered event changes nothing.

| key | type | holds |
| --- | --- | --- |
| `scoring:case:<id>` | string | the case's scoring state (JSON), with the ce-ids applied |
| `scoring:risk:<grid>` | hash | unresolved case -> its weight in the grid's risk |
| `scoring:colours`, `scoring:scores` | hash | grid -> colour, grid -> risk score |
| `scoring:labels:<grid>` | hash | unresolved case -> the `risk_colour` label it reported (JSON: colour, by, case_id) |
| `scoring:floors` | hash | grid -> its worst standing label (JSON), the floor under its colour |
| `scoring:colour_seq` | hash | grid -> number of its colour changes (`seq` of the last announced) |
| `scoring:points:<month>` | hash | `<worker>|<rule>` -> awards counted |
| `scoring:grid_points:<month>` | hash | `<grid>|<rule>` -> awards counted |
| `scoring:assess:<month:YYYY-MM or week:YYYY-Www>:<department>` | hash | assessment counters |
| `scoring:adjust:<month>` | hash | worker -> manual points |
| `scoring:audit` | list | manual adjustments (JSON), oldest first; `scoring:adjustments` the ids |
| `scoring:worker_grids` | hash | worker and grid -> awards there (a worker's grid is where most were earned) |
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import redis

from onegrid.adapters.redis.replies import text_map
from onegrid.domain import scoring as sc


class Scores:
    def __init__(self, client: redis.Redis, tenant: str):
        self.r = client  # decode_responses=True
        self.tenant = tenant
        self.prefix = f"og:{{{tenant}}}:scoring:"

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    # -- writing ------------------------------------------------------------------------
    def apply(self, event: sc.Event, case_id: str, cfg: sc.Config) -> tuple[sc.Outcome, dict | None]:
        """Apply one event; returns the outcome and the grid colour change it caused (for a
        duplicate: the change the first application recorded, so it can be announced again)."""
        case_key = self.key("case", case_id)
        result: dict[str, Any] = {}

        def attempt(pipe):
            raw = pipe.get(case_key)
            before = json.loads(raw) if raw else None
            out = sc.apply(before, event, cfg)
            if out.duplicate:
                result.update(out=out, change=(before or {}).get("changes", {}).get(event.id))
                return
            grid, change = out.state.get("grid"), None
            if grid:
                pipe.watch(self.key("risk", grid), self.key("labels", grid))
                weights = {k: float(v) for k, v in pipe.hgetall(self.key("risk", grid)).items()}
                labels = {k: json.loads(v) for k, v in pipe.hgetall(self.key("labels", grid)).items()}
                label = sc.label_of(out.state)
                labels.pop(case_id, None)
                if label:
                    labels[case_id] = label
                old = pipe.hget(self.key("colours"), grid) or sc.colour_of(sc.grid_score([], grid, cfg), cfg)
                weight = sc.contribution(out.state, cfg)
                weights.pop(case_id, None)
                if weight:
                    weights[case_id] = weight
                score = sc.grid_score(weights.values(), grid, cfg)
                colour, floor = sc.floored(sc.colour_of(score, cfg), labels.values())
                if colour != old:  # seq: the grid's changes in order, however they reach the bus
                    seq = int(pipe.hget(self.key("colour_seq"), grid) or 0) + 1
                    change = {
                        "grid": grid,
                        "from": old,
                        "to": colour,
                        "score": score,
                        "seq": seq,
                        "case_id": case_id,
                        "cause": event.id,
                        "at": event.time,
                    }
                    out.state.setdefault("changes", {})[event.id] = change
            pipe.multi()
            pipe.set(case_key, json.dumps(out.state, ensure_ascii=False, separators=(",", ":")))
            for parts, field, n in out.counters:
                pipe.hincrby(self.key(*parts), field, n)
            if grid:
                if weight:
                    pipe.hset(self.key("risk", grid), case_id, weight)
                else:
                    pipe.hdel(self.key("risk", grid), case_id)
                if label:
                    pipe.hset(self.key("labels", grid), case_id, json.dumps(label, ensure_ascii=False))
                else:
                    pipe.hdel(self.key("labels", grid), case_id)
                if floor:
                    pipe.hset(self.key("floors"), grid, json.dumps(floor, ensure_ascii=False))
                else:
                    pipe.hdel(self.key("floors"), grid)
                pipe.hset(self.key("scores"), grid, score)
                pipe.hset(self.key("colours"), grid, colour)
                if change:
                    pipe.hset(self.key("colour_seq"), grid, change["seq"])
            result.update(out=out, change=change)

        self.r.transaction(attempt, case_key)
        return result["out"], result["change"]

    def init_grids(self, grids: list[str], cfg: sc.Config) -> None:
        """Every grid gets a colour (key persons only, until a case says otherwise); with a
        changed configuration, the colours are recomputed from the stored weights."""
        for grid in grids:
            score = sc.grid_score([float(v) for v in self.r.hvals(self.key("risk", grid))], grid, cfg)
            labels = [json.loads(v) for v in self.r.hvals(self.key("labels", grid))]
            self.r.hset(self.key("scores"), grid, score)
            self.r.hset(self.key("colours"), grid, sc.floored(sc.colour_of(score, cfg), labels)[0])

    def adjust(
        self, worker: str, points: int, reason: str, inspector: str, month: str, adjustment_id: str, at: str
    ) -> tuple[bool, dict]:
        """A manual adjustment, once per id: (created, the audit entry)."""
        entry = {
            "id": adjustment_id,
            "worker": worker,
            "points": points,
            "reason": reason,
            "inspector": inspector,
            "month": month,
            "at": at,
        }
        ids = self.key("adjustments")

        def attempt(pipe):
            if pipe.hexists(ids, adjustment_id):
                entry.clear()
                entry.update(json.loads(pipe.hget(ids, adjustment_id)))
                return False
            pipe.multi()
            text = json.dumps(entry, ensure_ascii=False)
            pipe.hset(ids, adjustment_id, text)
            pipe.rpush(self.key("audit"), text)
            pipe.hincrby(self.key("adjust", month), worker, points)
            return True

        created = bool(self.r.transaction(attempt, ids, value_from_callable=True))  # attempt's True or False
        return created, entry

    # -- reading ------------------------------------------------------------------------
    def audit(self, month: str | None = None, worker: str | None = None) -> list[dict]:
        entries = [json.loads(x) for x in self.r.lrange(self.key("audit"), 0, -1)]
        return [
            e for e in entries if (month is None or e["month"] == month) and (worker is None or e["worker"] == worker)
        ]

    def workers(self, month: str, cfg: sc.Config) -> dict[str, dict]:
        return sc.worker_points(
            self.r.hgetall(self.key("points", month)), self.r.hgetall(self.key("adjust", month)), cfg
        )

    def grid_points(self, month: str, cfg: sc.Config) -> dict[str, int]:
        return sc.grid_points(self.r.hgetall(self.key("grid_points", month)), cfg)

    def assessment(self, period: str, departments, cfg: sc.Config) -> dict[str, dict]:
        return {d: sc.assessment(self.r.hgetall(self.key("assess", period, d)), cfg) for d in departments}

    def colours(self) -> dict[str, dict]:
        scores = text_map(self.r.hgetall(self.key("scores")))
        colours = sorted(text_map(self.r.hgetall(self.key("colours"))).items())
        floors = {g: json.loads(v) for g, v in text_map(self.r.hgetall(self.key("floors"))).items()}
        return {
            g: {"colour": c, "score": float(scores.get(g, 0)), **({"label": floors[g]} if g in floors else {})}
            for g, c in colours
        }

    def worker_grid(self) -> dict[str, str]:
        return sc.home_grids(self.r.hgetall(self.key("worker_grids")))

    def purge(self) -> int:
        keys = list(self.r.scan_iter(match=self.prefix.replace("{", "\\{").replace("}", "\\}") + "*", count=500))
        return self.r.delete(*keys) if keys else 0


def current(kind: str, tz, now: float | None = None) -> str:
    """The period now: 'YYYY-MM' for month, 'YYYY-Www' for week, in the tenant's zone."""
    ts = now if now is not None else datetime.now().timestamp()
    return sc.month_of(ts, tz) if kind == "month" else sc.week_of(ts, tz)
