"""The command-centre page's dependencies: its Jinja2 pages (one environment per process, the
county's category names in it) and the county's evidence store (S3-compatible or a local
directory, onegrid.kernel.settings.evidence_store)."""

from __future__ import annotations

from nameko.extensions import DependencyProvider

from onegrid.adapters.nameko.providers import TenantContext
from onegrid.adapters.web import render
from onegrid.adapters.web.evidence import evidence_store
from onegrid.kernel import settings


class Pages(DependencyProvider):
    def start(self):
        ctx = next(d for d in self.container.dependencies if isinstance(d, TenantContext))
        self.env = render.environment(ctx.registry.categories)

    def get_dependency(self, worker_ctx):
        return self.env


class Evidence(DependencyProvider):
    def start(self):
        self.store = evidence_store(**settings.evidence_store())

    def get_dependency(self, worker_ctx):
        return self.store
