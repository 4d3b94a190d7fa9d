"""Gauges read from Redis when Prometheus scrapes, so they are right whichever process
changed the state: the overdue cases of a tenant, by level and category."""

from __future__ import annotations

from collections import Counter

from nameko.extensions import DependencyProvider
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily

CAP = 10_000  # an overdue list longer than this is itself the alert; count the first CAP


class OverdueCollector:
    def __init__(self, store_of):
        self.store_of = store_of  # the store may start after the collector is registered

    def collect(self):
        family = GaugeMetricFamily(
            "onegrid_cases_overdue",
            "Open cases with a deadline passed, by handling level",
            labels=["tenant", "level", "category"],
        )
        store = self.store_of()
        if store is not None:
            ids = store.r.zrange(store.key("overdue"), 0, CAP - 1)
            pipe = store.r.pipeline()
            for case_id in ids:
                pipe.hmget(store.key("case", case_id.decode()), "level", "category")
            counts = Counter((lvl.decode(), cat.decode()) for lvl, cat in pipe.execute() if lvl and cat)
            for (level, category), n in sorted(counts.items()):
                family.add_metric([store.tenant, level, category], n)
        yield family


class OverdueGauge(DependencyProvider):
    """Registers the collector for the life of the service (needs a CaseworkProvider)."""

    def start(self):
        from onegrid.adapters.nameko.providers import CaseworkProvider

        provider = next(d for d in self.container.dependencies if isinstance(d, CaseworkProvider))
        self.collector = OverdueCollector(lambda: getattr(getattr(provider, "work", None), "store", None))
        REGISTRY.register(self.collector)

    def stop(self):
        REGISTRY.unregister(self.collector)
