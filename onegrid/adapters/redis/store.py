"""Case state in Redis. Every key of a tenant is under `og:{<tenant>}:`: the braces are a
Redis Cluster hash tag, so one tenant's keys share a slot and scripts may touch several.

Writes that must be all-or-nothing and idempotent (registering a case, dispatching work
orders, quarantining) are Lua scripts; department actions read, decide in the pure domain,
then write under WATCH, so the rules stay in Python.
"""

from __future__ import annotations

import hashlib
import json

import redis
from redis.commands.core import Script

from onegrid.adapters.redis.archive import Archived, Unreadable, pack, unpack
from onegrid.adapters.redis.replies import text, text_map, texts
from onegrid.adapters.redis.timers import Timers
from onegrid.domain.cases import case_of_work_order, dispatch_step, first_entry
from onegrid.domain.routing import Dispatch
from onegrid.domain.supervision import member
from onegrid.domain.timeline import link
from onegrid.domain.timeline import recorded as recorded_head
from onegrid.domain.timeline import verify as verify_chain
from onegrid.kernel.clock import now_iso

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
# ARGV: level, unit, at, n, chain head read, chain head after, then per work order: wo key,
# dept queue key, dept index key, wo id, score, timeline json, level, dept, ack timer, ack due,
# resolve timer, resolve due, n fields, fields..., and last the arrival timer and its due ('' for
# none), armed with the first dispatch (a registered case), NX: a redelivery keeps the first.
# The lines were chained on the head read: if the timeline moved since (another writer), or a
# work order appeared, nothing is written and {0} asks the caller to read again.
_DISPATCH = """
if (redis.call('HGET', KEYS[1], 'chainhead') or '') ~= ARGV[5] then return {0} end
local created = {1}
local case_at = redis.call('HGET', KEYS[1], 'at') or ARGV[3]
local i = 7
for _ = 1, tonumber(ARGV[4]) do
  if redis.call('EXISTS', ARGV[i]) == 1 then return {0} end
  i = i + 13 + tonumber(ARGV[i+12])
end
if tonumber(ARGV[4]) > 0 and redis.call('EXISTS', KEYS[1]) == 1 then  -- never a record of a head alone
  redis.call('HSET', KEYS[1], 'chainhead', ARGV[6])
end
i = 7
for _ = 1, tonumber(ARGV[4]) do
  local wo_key, queue_key, dept_idx, wo_id, score, step = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], ARGV[i+4], ARGV[i+5]
  local level, dept, n = ARGV[i+6], ARGV[i+7], tonumber(ARGV[i+12])
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
  i = i + 13 + n
end
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'registered' or status == 'reopened' then  -- reopened: an on-site case found not fixed
  local id = redis.call('HGET', KEYS[1], 'id')
  local was = redis.call('HGET', KEYS[1], 'level') or ''
  if was ~= '' then redis.call('ZREM', KEYS[7] .. was, id) end
  redis.call('HSET', KEYS[1], 'status', 'dispatched', 'level', ARGV[1], 'unit', ARGV[2], 'dispatched_at', ARGV[3])
  redis.call('ZREM', KEYS[6] .. status, id)
  redis.call('ZADD', KEYS[6] .. 'dispatched', case_at, id)
  redis.call('ZADD', KEYS[7] .. ARGV[1], case_at, id)
  redis.call('HINCRBY', KEYS[4], 'cases_dispatched', 1)
  if status == 'registered' and ARGV[i+1] ~= '' then
    redis.call('HSETNX', KEYS[1], 'arrival_due', ARGV[i+1])
    redis.call('ZADD', KEYS[5], 'NX', ARGV[i+1], ARGV[i])
  end
end
return created
"""

# a quarantine fingerprint's marker is dropped only while it still names the entry being released
_UNMARK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
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
JSON_FIELDS = {
    "data",
    "reporter",
    "rule",
    "version",
    "location",
    "linked",
    "escalations",
    "arrival_location",
    "arrival_late",
    "evidence_urls",
    "at",
    "occurred",
    "on_time",
    "satisfied",
    "overdue",
    "overdue_ack",
    "overdue_resolve",
    "on_site_sampled",
    "on_site_reopened",
}
ARCHIVED_STATUS = "closed"  # the one status no transition leaves: its cases are folded into the archive
DISPATCH_TRIES = 50  # reads of a case whose timeline another writer moves meanwhile
RECENT_PER_CATEGORY = 20_000  # duplicate candidates kept per category (the newest by occurrence)
JSON_SUFFIXES = ("_epoch", "_fired", "_due", "_span", "_s", "_count")


def _is_json(key: str) -> bool:
    return key in JSON_FIELDS or key.endswith(JSON_SUFFIXES)


def encode(record: dict) -> dict:
    return {
        k: json.dumps(v, ensure_ascii=False) if _is_json(k) else ("" if v is None else str(v))
        for k, v in record.items()
    }


def _flat(record: dict) -> list:
    return [x for kv in encode(record).items() for x in kv]


def _decode(raw: dict) -> dict:
    rec = {k.decode(): v.decode() for k, v in raw.items()}
    for key in [k for k in rec if _is_json(k)]:
        rec[key] = json.loads(rec[key])
    return rec


def _entry(raw: bytes | str) -> dict:
    """A timeline entry; one that is not a JSON object (edited by hand) is shown as it is, and
    verify finds it altered, rather than the case failing to read."""
    try:
        entry = json.loads(raw)
    except ValueError:
        entry = None
    shown = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw  # any bytes at all
    return entry if isinstance(entry, dict) else {"unreadable": shown}


def _readable(blob: bytes | str) -> Archived:
    """An archived case; one whose bytes were altered reads as a record saying so, rather
    than every read of it failing (verify then finds it altered)."""
    try:
        return unpack(blob if isinstance(blob, bytes) else blob.encode())
    except Unreadable as exc:
        return Archived({"unreadable": str(exc)}, [], [{"unreadable": repr(blob[:64])}])


class NotReplicated(redis.RedisError):
    """A case-making write reached the primary but not enough replicas in time: the message is
    not acknowledged (the failure policy retries it; the write is idempotent)."""


def replicas_caught_up(client: redis.Redis, tenant: str, wanted: int, ms: int) -> None:
    """Return once `wanted` replicas have everything the primary applied before this call,
    whoever wrote it (raises NotReplicated after `ms`). A barrier: WAIT counts the replicas
    that have its own connection's last write, and the replication stream is one ordered
    stream, so a marker written now and then WAITed for covers every earlier write (a
    handler's, on whichever pooled connections it used). The marker is the tenant's own key."""
    pipe = client.pipeline(transaction=False)
    pipe.set(f"og:{{{tenant}}}:replicated", 1)
    pipe.execute_command("WAIT", wanted, ms)
    _, acked = pipe.execute()
    if acked < wanted:
        raise NotReplicated(f"{acked} of {wanted} Redis replicas took the handler's writes within {ms} ms")


def run_each(client: redis.Redis, script: Script, calls: list[tuple[list, list]], replicas: tuple[int, int]) -> list:
    """`script` once per (keys, args), in order, as EVALSHAs in one non-transactional pipeline
    (one round trip; each call still all-or-nothing, and a later call sees what an earlier one
    wrote), then WAIT for `replicas` (wanted, ms) once for them all on the same connection.
    A script the server does not know (restarted, failed over, SCRIPT FLUSH) is loaded and the
    calls it refused (they did not run) are run, in order, as redis-py's Script does for one
    call; a Script on a pipeline would instead ask SCRIPT EXISTS first, a round trip more each
    time. Any other error fails the whole call once all have been answered, and the caller
    runs them again (a batch one by one): the registration script is idempotent."""
    if not calls:
        return []
    results, acked = _pipelined(client, script, calls, replicas[0], replicas[1])
    refused = [i for i, r in enumerate(results) if isinstance(r, redis.exceptions.NoScriptError)]
    if refused:
        script.sha = text(client.script_load(script.script))
        again, acked_again = _pipelined(client, script, [calls[i] for i in refused], replicas[0], replicas[1])
        for i, result in zip(refused, again, strict=True):
            results[i] = result
        acked = min(acked, acked_again)
    failed = next((r for r in results if isinstance(r, Exception)), None)
    if failed is not None:
        raise failed
    if acked < replicas[0]:
        raise NotReplicated(f"{acked} of {replicas[0]} Redis replicas took the write within {replicas[1]} ms")
    return results


def _pipelined(client: redis.Redis, script: Script, calls: list[tuple[list, list]], wanted: int, ms: int):
    """(each call's reply or error, replicas that have them: `wanted` when none are asked for)."""
    pipe = client.pipeline(transaction=False)
    for keys, args in calls:
        pipe.evalsha(script.sha, len(keys), *keys, *args)
    if wanted > 0:
        pipe.execute_command("WAIT", wanted, ms)
    replies = pipe.execute(raise_on_error=False)
    if wanted > 0:
        if isinstance(replies[-1], Exception):
            raise replies[-1]
        return replies[:-1], replies[-1]
    return replies, wanted


class Store:
    """One tenant's view of Redis; it cannot name another tenant's keys."""

    def __init__(self, client: redis.Redis, tenant: str, replicas: tuple[int, int] = (0, 0)):
        self.r = client
        self.tenant = tenant
        # (replicas, ms) a case-making write waits for (settings.redis_wait_replicas)
        self.replicas = replicas
        self.prefix = f"og:{{{tenant}}}:"
        self._register = client.register_script(_REGISTER)
        self._dispatch = client.register_script(_DISPATCH)
        self._quarantine = client.register_script(_QUARANTINE)
        self._unmark = client.register_script(_UNMARK)
        self.timers = Timers(client, self.prefix)

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def _replicated(self, script, keys: list, args: list):
        """Run a case-making script and, when replicas are asked for, WAIT for them on the same
        connection (WAIT counts the replicas that have this connection's writes): replication
        is asynchronous, and a write only the old primary had is lost in a failover. One call
        of run_each: one round trip, no SCRIPT EXISTS first."""
        return run_each(self.r, script, [(keys, args)], self.replicas)[0]

    # -- cases ---------------------------------------------------------------------------
    def register_case(self, case: dict, dedup_key: str) -> tuple[bool, str, str, str]:
        """(created, case id, digest on record, status). Idempotent on the event's identity.
        The timeline starts with the registration line, chained from the case's genesis."""
        return self.register_cases([(case, dedup_key)])[0]

    def register_cases(self, cases: list[tuple[dict, str]]) -> list[tuple[bool, str, str, str]]:
        """register_case for each (case, dedup key), in one round trip and one replica wait
        (a batch). The registrations run in order: a second event with the same dedup key
        finds the case the first made, as it would one batch later."""
        replies = run_each(self.r, self._register, [self._registration(c, k) for c, k in cases], self.replicas)
        out = []
        for (case, _), res in zip(cases, replies, strict=True):
            if res[0] == 1:
                out.append((True, case["id"], case["digest"], "registered"))
            else:
                cid, digest = text(res[1]).split("|")
                out.append((False, cid, digest, text(res[2])))
        return out

    def _registration(self, case: dict, dedup_key: str) -> tuple[list, list]:
        """The _REGISTER script's keys and args for one case."""
        event_key = self.key("event", hashlib.sha256(dedup_key.encode()).hexdigest()[:32])
        first, head = first_entry(self.tenant, case)
        keys = [
            event_key,
            self.key("case", case["id"]),
            self.key("case", case["id"], "timeline"),
            self.key("cases"),
            self.key("stats"),
            self.key("idx", "status", "registered"),
            self.key("idx", "grid", case["grid"]),
            self.key("recent", case["category"]),
        ]
        args = [
            case["id"],
            case["digest"],
            case["at"],
            json.dumps(first, ensure_ascii=False),
            case["category"],
            case.get("occurred", case["at"]),
            *_flat({**case, "chainhead": str(head)}),
        ]
        return keys, args

    def case(self, case_id: str) -> dict | None:
        raw = self.r.hgetall(self.key("case", case_id))
        if raw:
            return _decode(raw)
        archived = self.archived(case_id)
        return archived.case if archived else None

    def cases(self, case_ids: list[str]) -> list[dict]:
        """`case` for each id, in one round trip (those that exist, in order); an archived one
        is read from its archive, as `case` does."""
        pipe = self.r.pipeline(transaction=False)
        self.read_cases(pipe, case_ids)
        return self.found_cases(case_ids, pipe.execute())

    def read_cases(self, pipe, case_ids: list[str]) -> None:
        """Queue the reads of `cases` on `pipe`, for a caller with more to ask in the same trip."""
        for case_id in case_ids:
            pipe.hgetall(self.key("case", case_id))

    def found_cases(self, case_ids: list[str], replies: list) -> list[dict]:
        """The cases `read_cases` read (their replies, in order), as `cases` answers them."""
        out = []
        for case_id, raw in zip(case_ids, replies, strict=True):
            found = _decode(raw) if raw else self.case(case_id)
            if found:
                out.append(found)
        return out

    def timeline(self, case_id: str) -> list[dict]:
        lines = self.r.lrange(self.key("case", case_id, "timeline"), 0, -1)
        if lines:
            return [_entry(x) for x in lines]
        archived = self.archived(case_id)  # a case's timeline is never empty: read the archive
        return archived.timeline if archived else []

    # -- work orders ---------------------------------------------------------------------
    def dispatch(
        self,
        case: dict,
        decision,
        work_orders: list[dict],
        at: str,
        arrival: float | None = None,
        actor: str = "routing",
    ) -> tuple[list[str], str | None]:
        """Record the work orders (those not yet recorded) with their deadline timers, and
        mark a registered case dispatched at the decision's level: (the ids recorded, the
        timeline's chain head after). `arrival`: the grid worker's arrival deadline, armed on
        the case and as a timer when this is its first dispatch (a redelivery keeps the first).
        Each new work order's line is chained on the head read; the script writes only if the
        head is still that one and none of the work orders exists, else this reads again. The
        first try takes the head from `case` as the caller read it, without reading it again:
        one round trip in all when nothing wrote the case since (routing's first dispatch of a
        registered case); a redelivery or another writer costs a read and a second try."""
        return self.dispatch_many([Dispatch(case, decision, work_orders, at, arrival)], actor)[0]

    def dispatch_many(self, dispatches: list[Dispatch], actor: str = "routing") -> list[tuple[list[str], str | None]]:
        """`dispatch` for each of a batch's dispatches (of different cases): the first tries of
        all those whose case came with its chain head in one round trip and one replica wait;
        any the script refused (the head moved, a work order exists: a redelivery, another
        writer) then go on one at a time, reading the head again, as `dispatch` does."""
        out: list[tuple[list[str], str | None] | None] = [None] * len(dispatches)
        first = [i for i, d in enumerate(dispatches) if d.case.get("chainhead") is not None]
        if first:
            calls = [self._dispatch_call(dispatches[i], dispatches[i].case["chainhead"], None, actor) for i in first]
            replies = run_each(self.r, self._dispatch, [(keys, args) for keys, args, _ in calls], self.replicas)
            for i, (_, _, after), (done, *created) in zip(first, calls, replies, strict=True):
                if done:
                    out[i] = [c.decode() for c in created], after
        tried = set(first)
        return [
            found if found is not None else self._dispatch_reading(d, actor, 1 if i in tried else 0)
            for i, (d, found) in enumerate(zip(dispatches, out, strict=True))
        ]

    def _dispatch_reading(self, d: Dispatch, actor: str, start: int) -> tuple[list[str], str | None]:
        """Tries `start`.. of one dispatch, each reading the case's head and which of its work
        orders exist first."""
        case_key = self.key("case", d.case["id"])
        for _ in range(start, DISPATCH_TRIES):
            pipe = self.r.pipeline(transaction=False)
            pipe.hget(case_key, "chainhead")
            for wo in d.work_orders:
                pipe.exists(self.key("wo", wo["id"]))
            read, *exists = pipe.execute()
            keys, args, after = self._dispatch_call(d, read, exists, actor)
            done, *created = self._replicated(self._dispatch, keys, args)
            if done:
                return [c.decode() for c in created], after
        cid = d.case["id"]
        raise redis.WatchError(f"case {cid}: its timeline kept moving; dispatch gave up after {DISPATCH_TRIES}")

    def _dispatch_call(
        self, d: Dispatch, read: bytes | str | None, exists: list | None, actor: str
    ) -> tuple[list, list, str | None]:
        """The _DISPATCH script's keys and args for one dispatch on the chain head `read`,
        leaving out the work orders `exists` says are recorded (None: none known to be), and
        the chain head after it when the script writes."""
        case = d.case
        recorded = text(read) if read else ""
        head = recorded_head(self.tenant, case["id"], recorded or None)
        args: list = [d.decision.level, d.decision.unit, d.at, 0, recorded, ""]
        for wo, there in zip(d.work_orders, exists or [0] * len(d.work_orders), strict=True):
            if there:
                continue
            fields = _flat(wo)
            entry, head = link(head, dispatch_step(case, wo, d.at, actor).as_dict())
            args[3] += 1
            args += [
                self.key("wo", wo["id"]),
                self.key("department", wo["department"], "queue"),
                self.key("idx", "department", wo["department"]),
                wo["id"],
                wo["dispatched_epoch"],
                json.dumps(entry, ensure_ascii=False),
                wo["level"],
                wo["department"],
                member("acknowledge", wo["id"]),
                wo["ack_due"],
                member("resolve", wo["id"]),
                wo["resolve_due"],
                len(fields),
                *fields,
            ]
        args[5] = str(head)
        args += [member("arrival", case["id"]), "" if d.arrival is None else d.arrival]
        keys = [
            self.key("case", case["id"]),
            self.key("case", case["id"], "timeline"),
            self.key("case", case["id"], "work_orders"),
            self.key("stats"),
            self.timers.due_key,
            self.key("idx", "status", ""),
            self.key("idx", "level", ""),
        ]
        return keys, args, (str(head) if args[3] else recorded or None)

    def recent(self, category: str, since: float, until: float) -> list[dict]:
        """Cases of a category that occurred in [since, until]: candidates for duplicates."""
        [ids] = self.recent_ids([(category, since, until)])
        return self.cases(ids)  # a category's candidates can be thousands: one round trip

    def recent_ids(self, windows: list[tuple[str, float, float]]) -> list[list[str]]:
        """The ids of `recent` for each (category, since, until), all in one round trip with
        the trim of each category's index."""
        pipe = self.r.pipeline(transaction=False)
        for category, since, until in windows:
            pipe.zrangebyscore(self.key("recent", category), since, until)
        # keep the index bounded by count, not by time: events are not processed in the order
        # they happened (a retry after an outage), and an early one must still find its twin
        for category in dict.fromkeys(c for c, _, _ in windows):
            pipe.zremrangebyrank(self.key("recent", category), 0, -RECENT_PER_CATEGORY - 1)
        return [texts(ids) for ids in pipe.execute()[: len(windows)]]

    def work_order(self, wo_id: str) -> dict | None:
        raw = self.r.hgetall(self.key("wo", wo_id))
        if raw:
            return _decode(raw)
        case_id = case_of_work_order(wo_id)
        archived = self.archived(case_id) if case_id else None
        return next((w for w in archived.work_orders if w.get("id") == wo_id), None) if archived else None

    def work_orders_of(self, case_id: str) -> list[dict]:
        ids = sorted(texts(self.r.smembers(self.key("case", case_id, "work_orders"))))
        if not ids:
            archived = self.archived(case_id)
            return sorted(archived.work_orders, key=lambda w: w.get("id", "")) if archived else []
        return [w for w in (self.work_order(i) for i in ids) if w]

    def department_queue(self, department: str, offset: int = 0, limit: int = 50) -> tuple[int, list[dict]]:
        key = self.key("department", department, "queue")
        ids = self.r.zrange(key, offset, offset + limit - 1)
        return self.r.zcard(key), [w for w in (self.work_order(i) for i in texts(ids)) if w]

    def office_queue(self, unit: str, offset: int = 0, limit: int = 50) -> tuple[int, list[dict]]:
        """An office's escalation items still owed (open or acknowledged), oldest first, each
        with its case's grid, category, summary and status."""
        key = self.key("office", unit, "queue")
        ids = texts(self.r.zrange(key, offset, offset + limit - 1))
        out = []
        for item_id in ids:
            case = self.case("c-" + item_id.split("-")[1]) or {}
            found = [x for x in case.get("escalations") or [] if x.get("id") == item_id]
            if found:
                keep = ("grid", "category", "severity", "summary", "status", "level")
                out.append({**found[0], "case": {k: case.get(k) for k in keep}})
        return self.r.zcard(key), out

    # -- queries -------------------------------------------------------------------------
    def query(
        self,
        status: str | None = None,
        department: str | None = None,
        grid: str | None = None,
        level: str | None = None,
        overdue: bool = False,
        since: float | None = None,
        until: float | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> tuple[int, list[dict]]:
        """Cases matching every filter given, newest first, registered within [since, until]
        (epoch seconds): the intersection of the index sets, then one page of it."""
        keys = [
            self.key("idx", kind, value)
            for kind, value in (("status", status), ("department", department), ("grid", grid), ("level", level))
            if value
        ]
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
        return total, [c for c in (self.case(i) for i in texts(ids)) if c]

    def registered(self, since: float, until: float, fields: tuple[str, ...], batch: int = 1000) -> list[dict]:
        """`fields` of every case registered in [since, until) (epoch seconds), merged and
        rejected ones too, oldest first: one read of the index (cases arriving meanwhile shift
        no page), then only those fields (HMGET), in pipelined batches; a field a case lacks is
        absent from its record."""
        ids = texts(self.r.zrangebyscore(self.key("cases"), since, f"({until}"))
        out: list[dict] = []
        for i in range(0, len(ids), batch):
            pipe = self.r.pipeline(transaction=False)
            for cid in ids[i : i + batch]:
                pipe.hmget(self.key("case", cid), fields)
            rows = pipe.execute()
            gone = [cid for cid, values in zip(ids[i : i + batch], rows, strict=True) if not any(values)]
            folded = dict(zip(gone, self.r.mget([self.key("arc", c) for c in gone]) if gone else [], strict=True))
            for cid, values in zip(ids[i : i + batch], rows, strict=True):
                if cid in folded:  # archived: the same fields, from the archive
                    blob = folded[cid]
                    case = _readable(blob).case if blob else {}
                    rec = {f: case[f] for f in fields if f in case}
                else:
                    rec = _decode({f.encode(): v for f, v in zip(fields, values, strict=True) if v is not None})
                if rec:
                    out.append(rec)
        return out

    # -- the archive of closed cases ------------------------------------------------------
    def archived(self, case_id: str) -> Archived | None:
        blob = self.r.get(self.key("arc", case_id))
        return _readable(blob) if blob else None

    def archive(self, case_id: str) -> str:
        """Fold a closed case (record, work orders, timeline) into one compact value and drop
        its open form and any index only open cases are in, in one MULTI under WATCH: a crash
        leaves either form whole, never both halves, and a second call finds it archived.
        Only a closed case whose timeline verifies against its record is archived (an altered
        one stays as it is, for whoever investigates). Returns archived | already | not_closed
        | altered | missing."""
        case_key, set_key = self.key("case", case_id), self.key("case", case_id, "work_orders")
        line_key, arc_key = self.key("case", case_id, "timeline"), self.key("arc", case_id)
        result: list[str] = []

        def attempt(pipe) -> None:
            result.clear()
            raw = pipe.hgetall(case_key)
            if not raw:
                result.append("already" if pipe.exists(arc_key) else "missing")
                return
            case = _decode(raw)
            if case.get("status") != ARCHIVED_STATUS:
                result.append("not_closed")
                return
            ids = sorted(texts(pipe.smembers(set_key)))
            wo_keys = [self.key("wo", i) for i in ids]
            if wo_keys:
                pipe.watch(*wo_keys)
            wos = [_decode(r) for r in (pipe.hgetall(k) for k in wo_keys) if r]
            lines = [_entry(x) for x in pipe.lrange(line_key, 0, -1)]
            if not verify_chain(self.tenant, case_id, lines, case.get("chainhead")).intact:
                result.append("altered")
                return
            pipe.multi()
            pipe.set(arc_key, pack(Archived(case, wos, lines)))
            pipe.delete(case_key, set_key, line_key, *wo_keys)
            pipe.zrem(self.key("overdue"), case_id)
            pipe.zrem(self.key("archive", "due"), case_id)
            for wo in wos:  # a closed case's parts are off the queues and timers already: make sure
                pipe.zrem(self.key("department", wo.get("department", ""), "queue"), wo.get("id", ""))
                pipe.zrem(self.timers.due_key, member("acknowledge", wo["id"]), member("resolve", wo["id"]))
            result.append("archived")

        self.r.transaction(attempt, case_key, set_key, line_key, arc_key)
        if result[-1] in ("not_closed", "altered", "missing"):
            self.r.zrem(self.key("archive", "due"), case_id)  # the sweep does not try it again
        return result[-1]

    def unarchive(self, case_id: str) -> bool:
        """Put an archived case back in its open form (before a transition writes to it, e.g.
        a duplicate linked to a closed case); it is due for the archive again at once."""
        arc_key, case_key = self.key("arc", case_id), self.key("case", case_id)
        done: list[bool] = []

        def attempt(pipe) -> None:
            done.clear()
            blob = pipe.get(arc_key)
            if not blob or pipe.exists(case_key):
                done.append(False)
                return
            a = _readable(blob)
            pipe.multi()
            pipe.hset(case_key, mapping=encode(a.case))
            for wo in a.work_orders:
                pipe.hset(self.key("wo", wo["id"]), mapping=encode(wo))
                pipe.sadd(self.key("case", case_id, "work_orders"), wo["id"])
            if a.timeline:
                pipe.rpush(
                    self.key("case", case_id, "timeline"), *(json.dumps(e, ensure_ascii=False) for e in a.timeline)
                )
            pipe.delete(arc_key)
            pipe.zadd(self.key("archive", "due"), {case_id: 0})
            done.append(True)

        self.r.transaction(attempt, arc_key, case_key)
        return done[-1]

    def archive_due(self, before: float, limit: int = 500) -> dict[str, int]:
        """Archive the cases closed before `before` (epoch seconds) not archived yet, at most
        `limit`; how many ended each way."""
        counts: dict[str, int] = {}
        for cid in texts(self.r.zrangebyscore(self.key("archive", "due"), "-inf", before, start=0, num=limit)):
            outcome = self.archive(cid)
            counts[outcome] = counts.get(outcome, 0) + 1
        return counts

    def mark_closed(self, case_id: str, at: float, pipe) -> None:
        """Queue a case just closed for the archive (in the transaction that closed it)."""
        pipe.zadd(self.key("archive", "due"), {case_id: at})

    def archive_all_closed(self, batch: int = 500) -> dict[str, int]:
        """Archive every closed case still in its open form, whenever it closed (cases closed
        before the archive existed are in no queue for it): the migration."""
        counts: dict[str, int] = {}
        cursor = 0
        while True:
            cursor, found = self.r.zscan(self.key("idx", "status", ARCHIVED_STATUS), cursor, count=batch)
            ids = [text(m) for m, _ in found]
            pipe = self.r.pipeline(transaction=False)
            for cid in ids:
                pipe.exists(self.key("case", cid))
            for cid, there in zip(ids, pipe.execute(), strict=True):
                outcome = self.archive(cid) if there else "already"
                counts[outcome] = counts.get(outcome, 0) + 1
            if cursor == 0:
                return counts

    # -- quarantine ----------------------------------------------------------------------
    def quarantine(
        self,
        body: bytes,
        headers: dict,
        content_type: str | None,
        routing_key: str | None,
        transport: str,
        reason: str,
        detail: str,
        department: str,
    ) -> tuple[bool, str]:
        """Keep the original bytes and the reason; the same bytes twice are one entry."""
        headers_json = json.dumps(headers, sort_keys=True, default=str)  # ASCII: any header text survives
        fields: dict[str, str | bytes] = {
            "reason": reason,
            "detail": detail,
            "department": department,
            "routing_key": routing_key or "",
            "content_type": content_type or "",
            "transport": transport,
            "headers": headers_json,
            "received_at": now_iso(),
            "body": body,
        }
        args: list[str | bytes] = [reason]
        for k, v in fields.items():
            args += [k, v]
        created, entry = self._replicated(
            self._quarantine,
            [
                self._seen(routing_key or "", headers_json, body),
                self.key("quarantine"),
                self.key("stats"),
            ],
            args,
        )
        return bool(created), text(entry)

    def quarantined(self, count: int = 100, reason: str | None = None, start: str = "-") -> list[dict]:
        entries = []
        for entry_id, raw in self.r.xrange(self.key("quarantine"), min=start, count=count) or []:
            rec = {text(k): (v if k == b"body" else text(v)) for k, v in (raw or {}).items()}
            rec["id"] = text(entry_id)
            if reason is None or rec["reason"] == reason:
                entries.append(rec)
        return entries

    def unmark(self, entry: dict) -> None:
        """Before a replay: forget that these bytes were quarantined as this entry, so a replay
        judged bad again becomes an entry of its own, not a pointer to the one being released."""
        self._unmark(keys=[self._seen_key(entry)], args=[entry["id"]])

    def quarantined_from(self, who: str, count: int = 100, start: str = "-") -> list[dict]:
        """The entries `who` (a principal, the `x-og-user-id` intake kept) sent, oldest first,
        reading at most 50 times `count` entries of the stream from `start`."""
        entries = []
        for entry in self.quarantined(count=count * 50, start=start):
            try:
                sender = json.loads(entry.get("headers") or "{}").get("x-og-user-id")
            except ValueError:
                continue
            if sender == who:
                entries.append(entry)
                if len(entries) == count:
                    break
        return entries

    # -- receipts ------------------------------------------------------------------------
    def record_receipt(self, department: str, event_id: str, receipt: dict) -> None:
        """The latest word on an event, for `GET /events/<id>` as its department."""
        self.r.set(self.key("receipt", department, event_id), json.dumps(receipt, ensure_ascii=False))

    def record_receipts(self, receipts: list[tuple[str, str, dict]]) -> None:
        """record_receipt for each (department, event id, receipt), in one round trip (a batch)."""
        pipe = self.r.pipeline(transaction=False)
        for department, event_id, receipt in receipts:
            pipe.set(self.key("receipt", department, event_id), json.dumps(receipt, ensure_ascii=False))
        pipe.execute()

    def receipt(self, department: str, event_id: str) -> dict | None:
        raw = self.r.get(self.key("receipt", department, event_id))
        return json.loads(raw) if raw else None

    def release(self, entry: dict) -> None:
        """Forget a quarantine entry once it has been replayed onto the bus."""
        self.unmark(entry)
        self.r.xdel(self.key("quarantine"), entry["id"])
        self.r.hincrby(self.key("stats"), "quarantined", -1)
        self.r.hincrby(self.key("stats"), "quarantine:" + entry["reason"], -1)
        self.r.hincrby(self.key("stats"), "replayed", 1)

    def _seen_key(self, entry: dict) -> str:
        return self._seen(entry["routing_key"], entry["headers"], entry["body"])

    def _seen(self, routing_key: str, headers_json: str, body: bytes) -> str:
        """The marker that the same bytes, headers and key were quarantined already (one entry)."""
        fingerprint = hashlib.sha256(b"|".join([routing_key.encode(), headers_json.encode(), body]))
        return self.key("quarantine", "seen", fingerprint.hexdigest()[:32])

    # -- figures -------------------------------------------------------------------------
    def stats(self) -> dict[str, int]:
        return {k: int(v) for k, v in text_map(self.r.hgetall(self.key("stats"))).items()}

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
