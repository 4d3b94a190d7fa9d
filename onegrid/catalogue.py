"""The services OneGrid runs: each one's nameko class, and (read from the class itself) the
queues it consumes, whether it serves RPC or runs a timer, and its HTTP routes. The one list
that Kubernetes rendering, the OpenAPI documents, broker provisioning and the process runner
all read."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

SERVICES = {
    "intake": "services.intake.service:IntakeService",
    "routing": "services.routing.service:RoutingService",
    "departments": "services.departments.service:DepartmentsService",
    "supervision": "services.supervision.service:SupervisionService",
    "scoring": "services.scoring.service:ScoringService",
    "notify": "services.notify.service:NotifyService",
    "open311": "services.open311.service:Open311Service",
    "registry": "services.registry.service:RegistryService",
    "console": "services.console.service:ConsoleService",
}
# served by every service beside its own routes (providers.Observable; the probes by probes.py)
COMMON_ROUTES = ("/livez", "/readyz", "/health", "/metrics", "/openapi.json")


@dataclass(frozen=True)
class Service:
    name: str
    target: str  # module:Class, what `nameko run` takes
    queues: tuple[str, ...] = ()  # reliable consumers: topology.CONSUMED names
    rpc: bool = False
    client: bool = False  # calls another service over RPC
    timer: bool = False
    routes: tuple[str, ...] = ()  # "METHOD /url" of its own HTTP surface


def service_class(name: str) -> type:
    module, cls_name = SERVICES[name].split(":")
    return getattr(importlib.import_module(module), cls_name)


def services() -> list[Service]:
    """Every service, read from its class (this imports the services, and so nameko)."""
    from nameko.rpc import Rpc, RpcProxy
    from nameko.timer import Timer
    from nameko.web.handlers import HttpRequestHandler

    from onegrid.adapters.nameko.reliable import ReliableConsumer

    out = []
    for name, target in SERVICES.items():
        cls = service_class(name)
        queues, routes, rpc, timer, client = [], [], False, False, False
        for attr in sorted(dir(cls)):
            value = getattr(cls, attr, None)
            if isinstance(value, RpcProxy):
                client = True
            for ep in getattr(value, "nameko_entrypoints", ()) or ():
                if isinstance(ep, ReliableConsumer):
                    queues.append(ep.queue_name)
                elif isinstance(ep, Rpc):
                    rpc = True
                elif isinstance(ep, Timer):
                    timer = True
                elif isinstance(ep, HttpRequestHandler) and ep.url not in COMMON_ROUTES:
                    routes.append(f"{ep.method} {ep.url}")
        out.append(Service(name, target, tuple(sorted(queues)), rpc, client, timer, tuple(sorted(routes))))
    return out
