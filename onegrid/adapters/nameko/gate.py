"""intake's gate: the tenant's HTTP tokens and per-department rate limit, as a nameko
dependency on its own small Redis pool (onegrid.adapters.redis.auth has the logic)."""

from __future__ import annotations

from nameko.extensions import DependencyProvider
from prometheus_client import Counter

from onegrid.adapters.redis import connect
from onegrid.adapters.redis.auth import RateLimiter, Tokens

REFUSED = Counter(
    "onegrid_intake_http_refused_total",
    "HTTP requests intake refused before judging any event, by reason",
    ["tenant", "department", "reason"],
)


class Gate(DependencyProvider):
    def setup(self):
        self.url = self.container.config.get("REDIS_URL", "redis://127.0.0.1:6379/0")
        self.tenant = self.container.config["TENANT"]

    def start(self):
        self.client = connect.client(self.url, max_connections=16)
        self.tokens = Tokens(self.client, self.tenant)
        self.limiter = RateLimiter(self.client, self.tenant)

    def stop(self):
        self.client.close()

    def get_dependency(self, worker_ctx):
        return self
