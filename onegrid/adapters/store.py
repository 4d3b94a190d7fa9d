"""Case state in Redis. Every key of a tenant is under `og:{<tenant>}:`: the braces are a
Redis Cluster hash tag, so one tenant's keys share a slot and scripts may touch several.

Writes that must be all-or-nothing and idempotent (registering a case, dispatching work
orders, quarantining) are Lua scripts; department actions read, decide in the pure domain,
then write under WATCH, so the rules stay in Python.
"""
from __future__ import annotations

import hashlib
import json
import time

import redis

from onegrid.adapters.timers import Timers
from onegrid.domain.cases import Step
from onegrid.domain.supervision import member

_REGISTER = """
local existing = redis.call('GET', KEYS[1])
if existing then
  return {0, existing, redis.call('HGET', KEYS[2], 'status') or ''}
end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2])
redis.call('HSET', KEYS[2], unpack(ARGV, 7))
redis.call('RPUSH', KEYS[3], ARGV[4])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[6], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[7], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[8], ARGV[6], ARGV[1])
redis.call('HINCRBY', KEYS[5], 'cases', 1)
redis.call('HINCRBY', KEYS[5], 'category:' .. ARGV[5], 1)
return {1}
"""

# KEYS: case, timeline, wos set, stats, timers, status index prefix, level index prefix;
# ARGV: level, unit, at, n, then per work order: wo key, dept queue key, dept index key, wo id,
# score, timeline json, level, dept, ack timer, ack due, resolve timer, resolve due, n fields, fields...
_DISPATCH = """
local created = {}
local case_at = redis.call('HGET', KEYS[1], 'at') or ARGV[3]
local i = 5
for _ = 1, tonumber(ARGV[4]) do
  local wo_key, queue_key, dept_idx, wo_id, score, step = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], ARGV[i+4], ARGV[i+5]
  local level, dept, n = ARGV[i+6], ARGV[i+7], tonumber(ARGV[i+12])
  if redis.call('EXISTS', wo_key) == 0 then
    redis.call('HSET', wo_key, unpack(ARGV, i + 13, i + 12 + n))
    redis.call('SADD', KEYS[3], wo_id)
    redis.call('ZADD', queue_key, score, wo_id)
    redis.call('ZADD', dept_idx, case_at, redis.call('HGET', KEYS[1], 'id'))
    redis.call('ZADD', KEYS[5], ARGV[i+9], ARGV[i+8])
    redis.call('ZADD', KEYS[5], ARGV[i+11], ARGV[i+10])
    redis.call('RPUSH', KEYS[2], step)
    redis.call('HINCRBY', KEYS[4], 'work_orders', 1)
    redis.call('HINCRBY', KEYS[4], 'level:' .. level, 1)
    redis.call('HINCRBY', KEYS[4], 'department:' .. dept, 1)
    table.insert(created, wo_id)
  end
  i = i + 13 + n
end
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'registered' then
  local id = redis.call('HGET', KEYS[1], 'id')
  redis.call('HSET', KEYS[1], 'status', 'dispatched', 'level', ARGV[1], 'unit', ARGV[2], 'dispatched_at', ARGV[3])
  redis.call('ZREM', KEYS[6] .. 'registered', id)
  redis.call('ZADD', KEYS[6] .. 'dispatched', case_at, id)
  redis.call('ZADD', KEYS[7] .. ARGV[1], case_at, id)
  redis.call('HINCRBY', KEYS[4], 'cases_dispatched', 1)
end
return created
"""

_QUARANTINE = """
local seen = redis.call('GET', KEYS[1])
if seen then return {0, seen} end
local id = redis.call('XADD', KEYS[2], '*', unpack(ARGV, 2))
redis.call('SET', KEYS[1], id)
redis.call('HINCRBY', KEYS[3], 'quarantined', 1)
redis.call('HINCRBY', KEYS[3], 'quarantine:' .. ARGV[1], 1)
return {1, id}
"""

# Fields stored as JSON (numbers, flags, lists, maps); every other field is a plain string.
JSON_FIELDS = {"data", "reporter", "rule", "version", "location", "linked", "evidence_urls", "at", "occurred", "on_time",
               "satisfied", "overdue", "overdue_ack", "overdue_resolve"}
RECENT_PER_CATEGORY = 20_000  # duplicate candidates kept per category (the newest by occurrence)
JSON_SUFFIXES = ("_epoch", "_fired", "_due", "_span", "_s", "_count")


def _is_json(key: str) -> bool:
    return key in JSON_FIELDS or key.endswith(JSON_SUFFIXES)


def encode(record: dict) -> dict:
    return {k: json.dumps(v, ensure_ascii=False) if _is_json(k) else ("" if v is None else str(v))
            for k, v in record.items()}


def _flat(record: dict) -> list:
    return [x for kv in encode(record).items() for x in kv]


def _decode(raw: dict) -> dict:
    rec = {k.decode(): v.decode() for k, v in raw.items()}
    for key in [k for k in rec if _is_json(k)]:
        rec[key] = json.loads(rec[key])
    return rec


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}Z"


class Store:
    """One tenant's view of Redis; it cannot name another tenant's keys."""

    def __init__(self, client: redis.Redis, tenant: str):
        self.r = client
        self.tenant = tenant
        self.prefix = f"og:{{{tenant}}}:"
        self._register = client.register_script(_REGISTER)
        self._dispatch = client.register_script(_DISPATCH)
        self._quarantine = client.register_script(_QUARANTINE)
        self.timers = Timers(client, self.prefix)

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    # -- cases ---------------------------------------------------------------------------
    def register_case(self, case: dict, dedup_key: str) -> tuple[bool, str, str, str]:
        """(created, case id, digest on record, status). Idempotent on the event's identity."""
        event_key = self.key("event", hashlib.sha256(dedup_key.encode()).hexdigest()[:32])
        step = Step(case["received_at"], f"{case['department']}/{case['reporter'].get('kind', '?')}",
                    "register", None, "registered", case["event_type"])
        res = self._register(
            keys=[event_key, self.key("case", case["id"]), self.key("case", case["id"], "timeline"),
                  self.key("cases"), self.key("stats"), self.key("idx", "status", "registered"),
                  self.key("idx", "grid", case["grid"]), self.key("recent", case["category"])],
            args=[case["id"], case["digest"], case["at"], json.dumps(step.as_dict(), ensure_ascii=False),
                  case["category"], case.get("occurred", case["at"]), *_flat(case)])
        if res[0] == 1:
            return True, case["id"], case["digest"], "registered"
        cid, digest = res[1].decode().split("|")
        return False, cid, digest, res[2].decode()

    def case(self, case_id: str) -> dict | None:
        raw = self.r.hgetall(self.key("case", case_id))
        return _decode(raw) if raw else None

    def timeline(self, case_id: str) -> list[dict]:
        return [json.loads(x) for x in self.r.lrange(self.key("case", case_id, "timeline"), 0, -1)]

    # -- work orders ---------------------------------------------------------------------
    def dispatch(self, case: dict, decision, work_orders: list[dict], at: str, actor: str = "routing") -> list[str]:
        """Record the work orders (those not yet recorded) with their deadline timers, and
        mark a registered case dispatched at the decision's level."""
        args = [decision.level, decision.unit, at, len(work_orders)]
        for wo in work_orders:
            fields = _flat(wo)
            step = Step(at, actor, "dispatch", case["status"], "dispatched",
                        f"{wo['department']} at {wo['level']} {wo['unit']} ({wo['reason']})", wo["id"])
            args += [self.key("wo", wo["id"]), self.key("department", wo["department"], "queue"),
                     self.key("idx", "department", wo["department"]), wo["id"], wo["dispatched_epoch"],
                     json.dumps(step.as_dict(), ensure_ascii=False), wo["level"], wo["department"],
                     member("acknowledge", wo["id"]), wo["ack_due"], member("resolve", wo["id"]), wo["resolve_due"],
                     len(fields), *fields]
        created = self._dispatch(keys=[self.key("case", case["id"]), self.key("case", case["id"], "timeline"),
                                       self.key("case", case["id"], "work_orders"), self.key("stats"),
                                       self.timers.due_key, self.key("idx", "status", ""),
                                       self.key("idx", "level", "")], args=args)
        return [c.decode() for c in created]

    def recent(self, category: str, since: float, until: float) -> list[dict]:
        """Cases of a category that occurred in [since, until]: candidates for duplicates."""
        ids = [i.decode() for i in self.r.zrangebyscore(self.key("recent", category), since, until)]
        # keep the index bounded by count, not by time: events are not processed in the order
        # they happened (a retry after an outage), and an early one must still find its twin
        self.r.zremrangebyrank(self.key("recent", category), 0, -RECENT_PER_CATEGORY - 1)
        return [c for c in (self.case(i) for i in ids) if c]

    def work_order(self, wo_id: str) -> dict | None:
        raw = self.r.hgetall(self.key("wo", wo_id))
        return _decode(raw) if raw else None

    def work_orders_of(self, case_id: str) -> list[dict]:
        ids = sorted(x.decode() for x in self.r.smembers(self.key("case", case_id, "work_orders")))
        return [w for w in (self.work_order(i) for i in ids) if w]

    def department_queue(self, department: str, offset: int = 0, limit: int = 50) -> tuple[int, list[dict]]:
        key = self.key("department", department, "queue")
        ids = self.r.zrange(key, offset, offset + limit - 1)
        return self.r.zcard(key), [w for w in (self.work_order(i.decode()) for i in ids) if w]

    # -- queries -------------------------------------------------------------------------
    def query(self, status: str | None = None, department: str | None = None, grid: str | None = None,
              level: str | None = None, overdue: bool = False, since: float | None = None,
              until: float | None = None, offset: int = 0, limit: int = 50) -> tuple[int, list[dict]]:
        """Cases matching every filter given, newest first, registered within [since, until]
        (epoch seconds): the intersection of the index sets, then one page of it."""
        keys = [self.key("idx", kind, value) for kind, value in
                (("status", status), ("department", department), ("grid", grid), ("level", level)) if value]
        if overdue:
            keys.append(self.key("overdue"))
        if not keys:
            keys = [self.key("cases")]
        lo, hi = since if since is not None else "-inf", until if until is not None else "+inf"
        target = keys[0]
        if len(keys) > 1:
            target = self.key("tmp", "query", hashlib.sha256("|".join(keys).encode()).hexdigest()[:16])
            pipe = self.r.pipeline()
            pipe.zinterstore(target, keys, aggregate="MIN")
            pipe.expire(target, 10)
            pipe.execute()
        total = self.r.zcount(target, lo, hi)
        ids = self.r.zrevrangebyscore(target, hi, lo, start=offset, num=limit)
        return total, [c for c in (self.case(i.decode()) for i in ids) if c]

    # -- quarantine ----------------------------------------------------------------------
    def quarantine(self, body: bytes, headers: dict, content_type: str | None, routing_key: str | None,
                   transport: str, reason: str, detail: str, department: str) -> tuple[bool, str]:
        """Keep the original bytes and the reason; the same bytes twice are one entry."""
        headers_json = json.dumps(headers, sort_keys=True, default=str)  # ASCII: any header text survives
        fingerprint = hashlib.sha256(b"|".join([(routing_key or "").encode(), headers_json.encode(), body]))
        fields = {"reason": reason, "detail": detail, "department": department, "routing_key": routing_key or "",
                  "content_type": content_type or "", "transport": transport, "headers": headers_json,
                  "received_at": now_iso(), "body": body}
        args = [reason]
        for k, v in fields.items():
            args += [k, v]
        created, entry = self._quarantine(keys=[self.key("quarantine", "seen", fingerprint.hexdigest()[:32]),
                                                self.key("quarantine"), self.key("stats")], args=args)
        return bool(created), entry.decode()

    def quarantined(self, count: int = 100, reason: str | None = None, start: str = "-") -> list[dict]:
        entries = []
        for entry_id, raw in self.r.xrange(self.key("quarantine"), min=start, count=count):
            rec = {k.decode(): (v if k == b"body" else v.decode()) for k, v in raw.items()}
            rec["id"] = entry_id.decode()
            if reason is None or rec["reason"] == reason:
                entries.append(rec)
        return entries

    def release(self, entry: dict) -> None:
        """Forget a quarantine entry once it has been replayed onto the bus."""
        fingerprint = hashlib.sha256(b"|".join([entry["routing_key"].encode(), entry["headers"].encode(),
                                                entry["body"]]))
        self.r.delete(self.key("quarantine", "seen", fingerprint.hexdigest()[:32]))
        self.r.xdel(self.key("quarantine"), entry["id"])
        self.r.hincrby(self.key("stats"), "quarantined", -1)
        self.r.hincrby(self.key("stats"), "quarantine:" + entry["reason"], -1)
        self.r.hincrby(self.key("stats"), "replayed", 1)

    # -- figures -------------------------------------------------------------------------
    def stats(self) -> dict[str, int]:
        return {k.decode(): int(v) for k, v in self.r.hgetall(self.key("stats")).items()}

    def purge(self) -> int:
        """Delete every key of this tenant (demo reset, offboarding with deletion)."""
        n = 0
        for batch in self._scan_batches():
            n += self.r.delete(*batch)
        return n

    def _scan_batches(self, size: int = 500):
        batch = []
        for key in self.r.scan_iter(match=self.prefix.replace("{", "\\{").replace("}", "\\}") + "*", count=size):
            batch.append(key)
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch
