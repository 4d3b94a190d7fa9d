"""In-memory fakes of the app's ports (onegrid/app/ports.py), for the services' unit tests:
no broker, no Redis. They keep the contracts the use cases rely on (idempotent writes,
the lifecycle's refusals), not the adapters' storage details."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from onegrid.app.departments import Departments
from onegrid.app.intake import Intake
from onegrid.app.routing import Routing
from onegrid.contracts import Registry
from onegrid.domain import lifecycle as lc
from onegrid.domain.cases import dispatch_step, first_entry
from onegrid.domain.duplicates import Candidates, Suggestion, pair_key
from onegrid.domain.intake import RawEvent
from onegrid.domain.routing import Decision, Dispatch
from onegrid.domain.supervision import Policy
from onegrid.domain.timeline import link, recorded
from onegrid.domain.versions import Use
from onegrid.kernel import topology
from onegrid.kernel.envelope import Envelope
from onegrid.kernel.tenant import Tenant
from tests.unit.helpers import binary, envelope_for, sample_data

GRID_REPORT = "governance.grid_report_submitted"  # the category is a field: any route can be asked for


class FakeClock:
    """Starts at 2024-05-01T08:00:00Z; each reading of `now_iso` moves it on a second, so
    records made one after the other are ordered."""

    def __init__(self, start: float = 1714550400.0):
        self.t = start

    def now(self) -> float:
        return self.t

    def now_iso(self) -> str:
        self.t += 1
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.t)) + ".000Z"


class FakeStore:
    def __init__(self, tenant: str):
        self.tenant = tenant
        self.events: dict[str, tuple[str, str]] = {}  # dedup key -> (case id, digest)
        self.records: dict[str, dict] = {}  # case id -> the case as stored
        self.timelines: dict[str, list[dict]] = {}
        self.wos: dict[str, dict] = {}
        self.queues: dict[str, dict[str, float]] = {}  # department -> work order id -> score
        self.quarantined: list[dict] = []
        self._seen: dict[str, str] = {}
        self.receipts: dict[tuple[str, str], dict] = {}
        self.arrivals: dict[str, float] = {}  # case id -> the arrival deadline armed
        self.register_calls: list[int] = []  # how many cases each register_cases call held
        self.reads: list[list[str]] = []  # the case ids of each read of `case` or `cases`, in order
        self.dispatch_calls: list[list[str]] = []  # the case ids of each dispatch_many, in order

    # -- cases
    def register_case(self, case: dict, dedup_key: str) -> tuple[bool, str, str, str]:
        if dedup_key in self.events:
            cid, digest = self.events[dedup_key]
            return False, cid, digest, self.records[cid]["status"]
        self.events[dedup_key] = (case["id"], case["digest"])
        first, head = first_entry(self.tenant, case)
        self.records[case["id"]] = json.loads(json.dumps({**case, "chainhead": str(head)}))  # stored, not shared
        self.timelines[case["id"]] = [first]
        return True, case["id"], case["digest"], "registered"

    def register_cases(self, cases: list[tuple[dict, str]]) -> list[tuple[bool, str, str, str]]:
        self.register_calls.append(len(cases))
        return [self.register_case(case, dedup_key) for case, dedup_key in cases]

    def case(self, case_id: str) -> dict | None:
        self.reads.append([case_id])
        return dict(self.records[case_id]) if case_id in self.records else None

    def cases(self, case_ids: list[str]) -> list[dict]:
        self.reads.append(list(case_ids))
        return [dict(self.records[i]) for i in case_ids if i in self.records]

    def timeline(self, case_id: str) -> list[dict]:
        return list(self.timelines.get(case_id, []))

    def recent(self, category: str, since: float, until: float) -> list[dict]:
        return [dict(c) for c in self.records.values() if c["category"] == category and since <= c["occurred"] <= until]

    # -- work orders
    def dispatch(
        self, case: dict, decision: Decision, work_orders: list[dict], at: str, arrival: float | None = None
    ) -> tuple[list[str], str | None]:
        created = []
        stored = self.records[case["id"]]
        head = recorded(self.tenant, case["id"], stored.get("chainhead"))
        for wo in work_orders:
            if wo["id"] in self.wos:
                continue
            self.wos[wo["id"]] = dict(wo)
            self.queues.setdefault(wo["department"], {})[wo["id"]] = wo["dispatched_epoch"]
            entry, head = link(head, dispatch_step(case, wo, at, "routing").as_dict())
            self.timelines[case["id"]].append(entry)
            created.append(wo["id"])
        stored["chainhead"] = str(head)
        if stored["status"] == "registered":
            stored.update(status="dispatched", level=decision.level, unit=decision.unit, dispatched_at=at)
            if arrival is not None:  # the first dispatch arms it, once
                stored.setdefault("arrival_due", arrival)
                self.arrivals.setdefault(case["id"], arrival)
        return created, str(head)

    def dispatch_many(self, dispatches: list[Dispatch]) -> list[tuple[list[str], str | None]]:
        self.dispatch_calls.append([d.case["id"] for d in dispatches])
        return [self.dispatch(d.case, d.decision, d.work_orders, d.at, d.arrival) for d in dispatches]

    def work_order(self, wo_id: str) -> dict | None:
        return dict(self.wos[wo_id]) if wo_id in self.wos else None

    def work_orders_of(self, case_id: str) -> list[dict]:
        return [dict(w) for _, w in sorted(self.wos.items()) if w["case_id"] == case_id]

    def department_queue(self, department: str, offset: int = 0, limit: int = 50) -> tuple[int, list[dict]]:
        queue = self.queues.get(department, {})
        ids = sorted(queue, key=lambda i: (queue[i], i))
        return len(ids), [dict(self.wos[i]) for i in ids[offset : offset + limit]]

    # -- quarantine
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
        fingerprint = json.dumps([routing_key or "", headers, body.decode("latin-1")], sort_keys=True, default=str)
        if fingerprint in self._seen:
            return False, self._seen[fingerprint]
        entry = f"q-{len(self.quarantined) + 1}"
        self._seen[fingerprint] = entry
        self.quarantined.append(
            {
                "id": entry,
                "body": body,
                "headers": dict(headers),
                "content_type": content_type,
                "routing_key": routing_key,
                "transport": transport,
                "reason": reason,
                "detail": detail,
                "department": department,
            }
        )
        return True, entry

    # -- receipts
    def record_receipt(self, department: str, event_id: str, receipt: dict) -> None:
        self.receipts[(department, event_id)] = dict(receipt)

    def record_receipts(self, receipts: list[tuple[str, str, dict]]) -> None:
        for department, event_id, receipt in receipts:
            self.record_receipt(department, event_id, receipt)

    def receipt(self, department: str, event_id: str) -> dict | None:
        found = self.receipts.get((department, event_id))
        return dict(found) if found else None

    def quarantined_from(self, who: str, count: int = 100, start: str = "-") -> list[dict]:
        return [dict(e) for e in self.quarantined if e["headers"].get("x-og-user-id") == who][:count]


@dataclass
class Published:
    env: Envelope
    data: dict
    exchange: str
    routing_key: str
    mandatory: bool


class FakeBus:
    def __init__(self):
        self.published: list[Published] = []

    def publish(
        self,
        env: Envelope,
        data,
        exchange: str = topology.EVENTS,
        routing_key: str | None = None,
        mandatory: bool = True,
    ) -> None:
        # what the broker would carry: the data as JSON, not the caller's object
        self.published.append(
            Published(env, json.loads(json.dumps(data)), exchange, routing_key or env.type, mandatory)
        )

    def of_type(self, kind: str) -> list[Published]:
        return [p for p in self.published if p.env.type == kind]

    def deferred(self) -> FakeDeferred:
        return FakeDeferred(self)


class FakeDeferred:
    """Bus.deferred(): kept until flush(), then published in order."""

    def __init__(self, bus: FakeBus):
        self.bus, self.kept = bus, []

    def publish(self, *args, **kwargs) -> None:
        self.kept.append((args, kwargs))

    def flush(self) -> int:
        kept, self.kept = self.kept, []
        for args, kwargs in kept:
            self.bus.publish(*args, **kwargs)
        return len(kept)


class FakeOutbox:
    """The Outbox port; the service binds the events' source when it builds the real one."""

    def __init__(self):
        self.announced: list[list[str]] = []

    def announce(self, event_ids: list[str]) -> int:
        self.announced.append(list(event_ids))
        return len(event_ids)

    def sweep(self) -> int:
        return 0


@dataclass
class Changes:
    case: dict
    events: list[tuple[str, dict]] = field(default_factory=list)
    work_order: dict | None = None
    outbox: list[str] = field(default_factory=list)
    closure: object = None  # what a closing transition closed; the fakes close nothing


class FakeCasework:
    """The casework port on a FakeStore, with the lifecycle's own rules (onegrid.domain.lifecycle)
    deciding: what a department may do, and what its parts make of the case."""

    def __init__(self, store: FakeStore, policy: Policy | None = None):
        self.store, self.policy = store, policy or Policy()
        self.calls: list[tuple] = []  # what the use cases asked, in order
        self._events = 0

    def _event(self, out: Changes, kind: str, extra: dict) -> None:
        self._events += 1
        out.events.append((kind, extra))
        out.outbox.append(f"e-{self._events}")

    def department_act(
        self,
        wo_id: str,
        department: str,
        action: str,
        actor: str,
        note: str = "",
        evidence: list[str] | None = None,
        extension: float | None = None,
    ) -> Changes:
        self.calls.append(("department_act", wo_id, department, action, actor, note, evidence, extension))
        wo = self.store.wos.get(wo_id)
        if wo is None:
            raise LookupError(f"no work order {wo_id} in {self.store.tenant}")
        wo["status"] = lc.work_order_next(wo, action, department)
        if wo["status"] in ("returned", "resolved"):
            self.store.queues[wo["department"]].pop(wo_id, None)
        case = self.store.records[wo["case_id"]]
        out = Changes(case)
        self._event(out, f"work_order.{wo['status']}", {"work_order": dict(wo)})
        parts = [w for w in self.store.wos.values() if w["case_id"] == case["id"]]
        while (step := lc.case_after_parts(case["status"], parts)) is not None:
            case["status"] = lc.case_next(case, step)
        out.case, out.work_order = dict(case), dict(wo)
        return out

    def merge(self, case_id: str, primary_id: str, actor: str = "routing", note: str = "") -> Changes:
        self.calls.append(
            ("merge", case_id, primary_id) if actor == "routing" else ("merge", case_id, primary_id, actor)
        )
        case, primary = self.store.records[case_id], self.store.records[primary_id]
        case["status"] = lc.case_next(case, "merge")
        case["merged_into"] = primary_id
        primary.setdefault("linked", []).append({"case_id": case_id, "event_id": case["event_id"]})
        out = Changes(dict(case))
        self._event(out, "case.merged", {"primary_id": primary_id})
        return out

    def unmerge(self, case_id: str, actor: str, note: str = "") -> Changes:
        self.calls.append(("unmerge", case_id, actor))
        case = self.store.records[case_id]
        primary = self.store.records[case["merged_into"]]
        case["status"] = lc.case_next(case, "unmerge")
        case["unmerged_from"], case["merged_into"] = case["merged_into"], ""
        primary["linked"] = [x for x in primary.get("linked", []) if x["case_id"] != case_id]
        out = Changes(dict(case))
        self._event(out, "case.unmerged", {"primary_id": case["unmerged_from"]})
        return out

    def settle_on_site(self, case_id: str, sampled: bool, actor: str = "routing") -> Changes:
        self.calls.append(("settle_on_site", case_id, sampled))
        case = self.store.records[case_id]
        case["status"] = lc.case_next(case, "resolve_on_site" if sampled else "close_on_site")
        case.update(resolution="on_site", level="grid", unit=case["grid"])
        out = Changes(dict(case))
        self._event(out, "case.resolved" if sampled else "case.closed", {})
        return out

    def extension(self, wo_id, grant, actor, seconds=None, note=""):
        raise NotImplementedError

    def overdue(self, kind, wo_id, due):
        raise NotImplementedError

    def whistle(self, case_id, actor, to_level, departments, note):
        raise NotImplementedError

    def case_act(self, case_id, action, actor, note="", evidence=None):
        raise NotImplementedError


class FakeDuplicateBook:
    """Suggestions and distinct pairs in memory, first decision standing; the candidates are
    `store`'s recent cases."""

    def __init__(self, store: FakeStore | None = None):
        self.store = store
        self.windows_read: list[int] = []  # how many windows each read of recent ids asked for
        self.suggestions: dict[str, Suggestion] = {}
        self.distinct_pairs: set[str] = set()
        self.counters: dict[str, int] = {}

    def suggest(self, s: Suggestion, score: float) -> bool:
        if s.case_id in self.suggestions:
            return False
        self.suggestions[s.case_id] = s
        self.count("suggested")
        return True

    def suggestion(self, case_id: str) -> Suggestion | None:
        return self.suggestions.get(case_id)

    def decide(self, s: Suggestion) -> bool:
        if self.suggestions[s.case_id].status != "open":
            return False
        self.suggestions[s.case_id] = s
        self.count(s.status)
        if s.status == "dismissed":
            self.mark_distinct(s.case_id, s.primary_id)
        return True

    def mark_distinct(self, a: str, b: str) -> None:
        self.distinct_pairs.add(pair_key(a, b))

    def distinct(self, pairs: list[str]) -> set[str]:
        return {p for p in pairs if p in self.distinct_pairs}

    def recent_ids(self, windows: list[tuple[str, float, float]]) -> list[list[str]]:
        assert self.store is not None, "a book that looks for candidates needs the store"
        self.windows_read.append(len(windows))
        return [[c["id"] for c in self.store.recent(*w)] for w in windows]

    def candidates(
        self, case_id: str, category: str, since: float, until: float, ids: list[str] | None = None
    ) -> Candidates:
        assert self.store is not None, "a book that looks for candidates needs the store"
        if ids is None:
            [ids] = self.recent_ids([(category, since, until)])
        found = [dict(self.store.records[i]) for i in ids if i != case_id and i in self.store.records]
        return Candidates(found, frozenset(self.distinct([pair_key(case_id, c["id"]) for c in found])))

    def count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def open(self, offset: int = 0, limit: int = 50) -> tuple[int, list[Suggestion]]:
        found = [s for s in self.suggestions.values() if s.status == "open"]
        return len(found), found[offset : offset + limit]

    def counts(self) -> dict[str, int]:
        return {**self.counters, "open": self.open()[0]}


class FakeUsage:
    """The Usage port: what intake counted, per (department, key, version)."""

    def __init__(self):
        self.counts: dict[tuple[str, str, int], int] = {}
        self.last: dict[tuple[str, str, int], float] = {}

    def record_use(self, department: str, key: str, version: int, at: float) -> None:
        self.counts[(department, key, version)] = self.counts.get((department, key, version), 0) + 1
        self.last[(department, key, version)] = max(at, self.last.get((department, key, version), 0.0))

    def record_uses(self, uses: list[tuple[str, str, int, float]]) -> None:
        for use in uses:
            self.record_use(*use)

    def uses(self) -> list[Use]:
        return [Use(k, v, d, n, self.last[(d, k, v)]) for (d, k, v), n in sorted(self.counts.items())]


class County:
    """One tenant's use cases wired to one set of fakes, as the services wire them to the adapters."""

    def __init__(self, tenant: Tenant, registry: Registry):
        self.tenant, self.registry = tenant, registry
        self.clock, self.store, self.bus, self.outbox = FakeClock(), FakeStore(tenant.id), FakeBus(), FakeOutbox()
        self.work = FakeCasework(self.store)
        self.book = FakeDuplicateBook(self.store)
        self.usage = FakeUsage()

    def intake(self) -> Intake:
        return Intake(self.tenant, self.registry, self.store, self.bus, self.clock, usage=self.usage)

    def routing(self) -> Routing:
        return Routing(self.tenant, self.store, self.work, self.bus, self.outbox, self.clock, self.book)

    def departments(self) -> Departments:
        return Departments(self.tenant, self.store, self.work, self.outbox)


def grid_report(
    county: County,
    event_id: str,
    *,
    category: str = "illegal_business",
    severity: str = "minor",
    grid: str | None = None,
    occurred_at: str = "2024-05-01T08:00:00+08:00",
    seed: int = 0,
    **data,
) -> RawEvent:
    """A valid grid worker's report as it comes off `intake.events` (binary mode)."""
    contract = county.registry.events[(GRID_REPORT, 1)]
    fields = sample_data(
        contract, county.tenant, seed=seed, grid=grid, severity=severity, category=category, occurred_at=occurred_at
    )
    fields["resolved_on_site"] = False  # dispatched as any report unless a test says it was settled on site
    fields.update(data)
    return binary(envelope_for(contract, county.tenant, id=event_id), fields)
