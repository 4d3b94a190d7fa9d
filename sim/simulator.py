"""A county's departments publishing: a realistic mix of valid events, and some bad ones.

The category mix is Qinling Rd street's 805 problems (DOMAIN.md) for 85% of the events; the
other 15% spread over the remaining categories, so every department speaks. About a third
arrive the way most reports really do: the grid workers' app and the 12345 hotline (both
published by governance). Each deliberately bad event says which quarantine reason it must
end with, so a run can be reconciled event by event.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from kombu import Connection
from shapely import Point

from onegrid.adapters.amqp import topology
from onegrid.adapters.geo import shape_of
from onegrid.app.registry import load_strict
from onegrid.contracts import Registry
from onegrid.kernel import envelope as ce
from onegrid.kernel import settings
from onegrid.kernel.tenant import SEVERITIES, Tenant
from sim.fake import CST, sample_object

QINLING_MIX = {
    "illegal_production": 36,
    "illegal_business": 220,
    "illegal_construction": 181,
    "work_safety": 209,
    "petition_stability": 145,
    "grassroots_organisation": 1,
    "other": 4,
}
SEVERITY_MIX = (40, 35, 20, 5)  # minor, general, major, critical
# Penglai: 89,000+ reports from 1,115 grid workers, 17,400+ problems solved (about one in five);
# the article gives no on-site count, so "most of the rest settled on the spot" is read as 60%
# of grid reports (docs/lifecycle.md, On-site resolution)
ON_SITE_SHARE = 0.6
LOCATED_ONLY = 0.2  # of the reports with a location, the share that name no grid (a citizen's app)
GENERAL_REPORTERS = ("governance.grid_report_submitted", "governance.hotline_order_received")
# a department system rides out a broker restart: reconnect and publish again (a resend the
# broker had already taken is a duplicate intake recognises by the event's identity)
RETRY = {"max_retries": 60, "interval_start": 0.5, "interval_step": 0.5, "interval_max": 2}
BAD_KINDS = (
    "malformed_json",
    "schema_violation",
    "unknown_event_type",
    "unknown_version",
    "unknown_department",
    "payload_too_large",
    "unknown_grid",
    "missing_attribute",
    "unknown_tenant",
    "invalid_encoding",
)


@dataclass
class Planned:
    routing_key: str
    headers: dict
    body: bytes
    expect: str  # "case", "merged" (a deliberate duplicate), or the quarantine reason it must end with
    department: str
    category: str | None = None
    event_id: str = ""
    content_type: str = ce.JSON
    duplicate_of: str | None = None  # the event this one reports again


@dataclass
class Sent:
    total: int = 0
    bad: int = 0
    seconds: float = 0.0
    events: list[Planned] = field(default_factory=list)
    published_at: dict[str, float] = field(default_factory=dict)  # event id -> time.time()


class Simulator:
    def __init__(
        self,
        tenant: Tenant,
        uri: str,
        registry: Registry | None = None,
        seed: int = 7,
        run_id: str | None = None,
        epoch: float | None = None,
        spacing_s: float = 1800,
        on_site_share: float = 0.0,
    ):
        self.tenant, self.uri = tenant, uri
        self.registry = registry or load_strict(settings.contracts_dir())
        self.rng = random.Random(seed)
        self.run_id = run_id or uuid.uuid4().hex[:8]
        self.seq = 0
        # simulated incidents start three months back unless told, `spacing_s` apart on average
        self.epoch = time.time() - 90 * 86400 if epoch is None else epoch
        self.spacing_s = spacing_s
        # the share of grid reports the worker settled on site (resolved_on_site: true); its own
        # generator, so a seed's other events stay what they were. 0 unless asked: a test that
        # waits for a dispatch gets one; the demo asks for ON_SITE_SHARE
        self.on_site_share = on_site_share
        self.on_site = random.Random(f"{seed}-on-site")
        enabled = [c for c in self.registry.events.values() if c.department in tenant.departments]
        self.by_category: dict[str, list] = {}
        for c in enabled:
            if c.category:
                self.by_category.setdefault(c.category, []).append(c)
        self.general = [self.registry.events[(k, 1)] for k in GENERAL_REPORTERS if (k, 1) in self.registry.events]
        rest = [c for c in self.by_category if c not in QINLING_MIX]
        # every category at least 1%, so every department speaks (Qinling had 1 grassroots case in 805)
        weights = {c: max(0.01, w * 0.85 / sum(QINLING_MIX.values())) for c, w in QINLING_MIX.items()}
        weights.update({c: 0.15 / len(rest) for c in rest})
        self.categories, self.weights = list(weights), list(weights.values())
        self.grids = [g.code for g in tenant.grids()]
        # where in its grid each report stands, and which give only their location: a generator
        # of their own, so the rest of a seed's events are what they were before geography
        self.places = random.Random(f"{seed}-places")
        self.shapes = {a.code: shape_of(a) for a in tenant.geography.grids()} if tenant.geography else {}

    # -- planning ------------------------------------------------------------------------
    def good(self) -> Planned:
        category = self.rng.choices(self.categories, self.weights)[0]
        if self.general and (self.rng.random() < 0.35 or category not in self.by_category):
            contract = self.rng.choice(self.general)
        else:
            contract = self.rng.choice(self.by_category[category])
        fixed = {
            "grid": self.rng.choice(self.grids),
            "severity": self.rng.choices(SEVERITIES, SEVERITY_MIX)[0],
            "category": category,
        }
        fixed["occurred_at"] = self._occurred()
        data = sample_object(contract.fields, self.rng, fixed)
        data["summary"] = f"[{category}] {data['summary']}"[:500]
        if "resolved_on_site" in data:
            data["resolved_on_site"] = self.on_site.random() < self.on_site_share
        if "location" in data and self.shapes:
            data["location"] = self._spot(data["grid"])
            if self.places.random() < LOCATED_ONLY:
                del data["grid"]  # intake places it by its location
        return self._planned(contract.key, contract.version, data, category)

    def _spot(self, grid: str) -> dict:
        """A point inside the grid (WGS84, as a phone gives it; the demo counties are drawn in WGS84)."""
        shape = self.shapes[grid]
        minx, miny, maxx, maxy = shape.bounds
        while True:
            lon, lat = self.places.uniform(minx, maxx), self.places.uniform(miny, maxy)
            if shape.contains(Point(lon, lat)):
                return {"lat": round(lat, 6), "lon": round(lon, 6)}

    def one(self, key: str, like: int, version: int, **extra) -> Planned:
        """One good event of `key` as version `version`: data of version `like` (which this
        simulator's contracts know) with `extra` fields (the ones the new version adds)."""
        contract = self.registry.events[(key, like)]
        fixed = {"grid": self.rng.choice(self.grids), "severity": "minor", "occurred_at": self._occurred()}
        data = {**sample_object(contract.fields, self.rng, fixed), **extra}
        return self._planned(key, version, data, contract.category)

    def _occurred(self) -> str:
        """Incidents spread over simulated weeks, half an hour apart on average by default, so
        unrelated reports rarely look like duplicates (the pipeline itself runs in seconds)."""
        at = self.epoch + self.seq * self.spacing_s + self.rng.uniform(0, self.spacing_s)
        return datetime.fromtimestamp(at, CST).isoformat(timespec="seconds")

    def duplicate(self, of: Planned) -> Planned:
        """The same incident reported again minutes later by someone else (e.g. a citizen after
        the grid worker), word for word and from the same spot: intake registers it, routing
        merges it into the first. (sim/duplicate_pairs.py makes the harder, paraphrased twins.)"""
        data = json.loads(of.body)
        if data.get("resolved_on_site"):  # a problem settled on the spot is nobody's twin (never merged into)
            data["resolved_on_site"] = False
            of.body = json.dumps(data, ensure_ascii=False).encode()
        if not isinstance(data.get("location"), dict):  # routing merges on its own only where both say where
            data["location"] = {
                "lat": round(self.rng.uniform(34.70, 34.80), 6),
                "lon": round(self.rng.uniform(113.55, 113.70), 6),
            }
            of.body = json.dumps(data, ensure_ascii=False).encode()
        first = datetime.fromisoformat(data["occurred_at"])
        data["occurred_at"] = (first + timedelta(minutes=self.rng.randint(1, 15))).isoformat(timespec="seconds")
        data["reporter"] = {"kind": "citizen", "id": f"citizen-{self.rng.randint(1000, 9999)}"}
        p = self._planned(
            of.routing_key, int(of.headers["ce-dataschema"].rsplit(":", 1)[1]), data, of.category, expect="merged"
        )
        p.duplicate_of = of.event_id
        return p

    def _planned(self, key: str, version: int, data, category=None, expect="case") -> Planned:
        self.seq += 1
        dept = key.split(".")[0]
        env = ce.new(
            tenant=self.tenant.id,
            department=dept,
            type=key,
            version=version,
            source=f"/{self.tenant.id}/departments/{dept}/sim",
            subject=data.get("grid") if isinstance(data, dict) else None,
            id=f"sim-{self.run_id}-{self.seq}",
        )
        body = json.dumps(data, ensure_ascii=False).encode()
        return Planned(key, env.headers(), body, expect, dept, category, env.id)

    def bad(self, kind: str) -> Planned:
        p = self.good()
        p.expect, p.category = kind, None
        data = json.loads(p.body)
        if kind == "malformed_json":
            text = p.body.decode()
            p.body = text[: len(text) // 2].encode()  # cut on a character, so it is still UTF-8
        elif kind == "invalid_encoding":
            p.body = b'{"summary": "\xff\xfe broken"}'
        elif kind == "schema_violation":
            data["severity"] = 5
            data.pop("reporter")
            p.body = json.dumps(data, ensure_ascii=False).encode()
        elif kind == "unknown_event_type":
            p.routing_key = p.headers["ce-type"] = f"{p.department}.no_such_event"
            p.headers["ce-dataschema"] = ce.dataschema(p.routing_key, 1)
        elif kind == "unknown_version":
            p.headers["ce-dataschema"] = ce.dataschema(p.routing_key, 9)
        elif kind == "unknown_department":
            p.department = "tourism"
            p.routing_key = p.headers["ce-type"] = "tourism.scenic_spot_crowded"
            p.headers["ce-department"] = "tourism"
            p.headers["ce-dataschema"] = ce.dataschema(p.routing_key, 1)
        elif kind == "payload_too_large":
            data["summary"] = "大" * (self.tenant.max_payload_bytes // 2)
            p.body = json.dumps(data, ensure_ascii=False).encode()
        elif kind == "unknown_grid":
            data["grid"] = self.tenant.root + "-999-999-999"
            p.body = json.dumps(data, ensure_ascii=False).encode()
        elif kind == "missing_attribute":
            del p.headers["ce-source"]
        elif kind == "unknown_tenant":
            p.headers["ce-tenant"] = "some-other-county"
        if kind in (
            "unknown_department",
            "malformed_json",
            "invalid_encoding",
            "missing_attribute",
            "payload_too_large",
        ):
            p.department = "unknown"  # intake cannot (or must not) trust a department name here
        return p

    def plan(self, n: int, bad_every: int = 0, duplicate_every: int = 0) -> list[Planned]:
        out = []
        for i in range(n):
            if bad_every and i % bad_every == bad_every - 1:
                out.append(self.bad(BAD_KINDS[(i // bad_every) % len(BAD_KINDS)]))
            elif duplicate_every and i % duplicate_every == duplicate_every - 2 and out and out[-1].expect == "case":
                out.append(self.duplicate(out[-1]))
            else:
                out.append(self.good())
        return out

    # -- publishing ----------------------------------------------------------------------
    def publish(self, planned: list[Planned], threads: int = 1, rate: float = 0, on_sent=None) -> Sent:
        """Publish with publisher confirms (each returns once the broker has it)."""
        sent = Sent(events=planned)
        lock = threading.Lock()
        chunks = [planned[i::threads] for i in range(threads)]
        started = time.perf_counter()

        def worker(chunk):
            interval = threads / rate if rate else 0
            with Connection(self.uri, transport_options={"confirm_publish": True}) as conn:
                producer = conn.Producer()
                nxt = time.perf_counter()
                for p in chunk:
                    if interval:
                        nxt += interval
                        time.sleep(max(0.0, nxt - time.perf_counter()))
                    at = time.time()
                    producer.publish(
                        p.body,
                        exchange=topology.INTAKE.name,
                        routing_key=p.routing_key,
                        headers=p.headers,
                        content_type=p.content_type,
                        content_encoding="binary",
                        delivery_mode=2,
                        mandatory=True,
                        retry=True,
                        retry_policy=RETRY,
                    )
                    with lock:
                        sent.published_at[p.event_id] = at
                        sent.total += 1
                        sent.bad += p.expect not in ("case", "merged")
                    if on_sent:
                        on_sent(p)

        pool = [threading.Thread(target=worker, args=(c,), daemon=True) for c in chunks if c]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        sent.seconds = time.perf_counter() - started
        return sent

    def run(self, n: int, bad_every: int = 50, rate: float = 0, progress: bool = False) -> Sent:
        planned = self.plan(n, bad_every)
        if not progress:
            return self.publish(planned, rate=rate)
        from rich.progress import Progress

        with Progress() as bar:
            task = bar.add_task(f"publishing to {self.tenant.id}", total=len(planned))
            return self.publish(planned, rate=rate, on_sent=lambda p: bar.advance(task))
