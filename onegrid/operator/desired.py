"""A county's desired broker state: the one source both ways of provisioning a bus render.

`desired(tenant, services)` is a pure function of the tenant manifest, the bus names in
onegrid.kernel.topology and what each service of onegrid.catalogue declares. It returns
typed records and no secret. Two renderers read it and only render it:

- onegrid.operator.provisioning.plan: the management-API changes `onegrid tenant onboard`
  applies (onegrid.operator.ops);
- onegrid.operator.k8s.topology_resources: the Messaging Topology Operator resources of a
  county's overlay (deploy/k8s/overlays/<county>/bus.yaml).

tests/unit/test_desired.py renders both for every tenant manifest and proves them equal, and
checks that docs/operations.md carries `figures_table` (the bounds a county is held to) as it is.

Who may do what in the county's vhost (RabbitMQ's configure / write / read regexes):

  <county>.<department>   publish to onegrid.intake, only routing keys `<department>.*` (a topic
                          permission); read only workorders.<department> and
                          receipts.<department>; declare nothing;
                          at most limits.max_connections_per_department connections
  <county>.svc.<service>  its own consumed queues with their retry tiers and dead letters, bound
                          to their exchanges; nameko RPC (its rpc-<service> queue, reply queues
                          of its calls) where it serves or calls RPC; publishes on the platform
                          exchanges and through the default exchange (retries, dead letters);
                          a door (open311) also onegrid.intake, its one event type only;
                          read the history streams HISTORY_READERS names for it (supervision:
                          history.lifecycle, the heads a timeline's verify checks; registry:
                          both streams, for what-if)
  <county>.keda           nothing over AMQP; the management tag, to read queue depths
  <county>.ops            read the dead-letter queues and the history streams, publish back
                          through the default exchange and onegrid.intake (`onegrid dlq`,
                          `onegrid quarantine replay`, `onegrid history`)

The history streams (topology.HISTORY_INTAKE, HISTORY_LIFECYCLE) are bound to the exchanges the
services already publish on with confirms, so the broker appends a copy as part of routing the
publish: a publish is confirmed once every queue it routes to, the stream too, has it. Their
retention is a policy, not queue arguments: a county can change it without re-creating the
stream (which would lose its history).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from onegrid.kernel import topology
from onegrid.kernel.tenant import Tenant

# A poison message (one that crashed its consumer this many times) goes to its queue's dead
# letters. Handler errors never count: they are retried through the tiers and acknowledged,
# so redeliveries come only from crashes and unreadable frames.
DELIVERY_LIMIT = 10
WORK_QUEUE_MAX = 1_000_000  # messages waiting in one department's work queue
# receipts a department has not read: past this the oldest go (drop-head), never a refused
# publish, so a department that never reads its receipts cannot stall intake; every
# receipt can still be read over HTTP (GET /events/<id>)
RECEIPTS_MAX = 100_000
# the history streams a service reads with its own user (consume only: a stream is never
# declared or changed by a service): supervision, the chain heads the bus carried, for
# GET /cases/<id>/timeline/verify; the registry, both (the cases registered and what happened to
# them), for POST /whatif/manifest
HISTORY_READERS: Mapping[str, tuple[str, ...]] = {
    "supervision": (topology.HISTORY_LIFECYCLE,),
    "registry": (topology.HISTORY_INTAKE, topology.HISTORY_LIFECYCLE),
}
REJECT = "reject-publish"  # a full queue nacks the publisher, never drops what it holds
TIERS = r"(\.dlq|\.retry\.[0-9]+ms)?"  # after a consumed queue's name: its dead letters and retry tiers


class ServiceNeeds(Protocol):
    """What the state needs of a service (onegrid.catalogue.Service has it)."""

    @property
    def name(self) -> str: ...
    @property
    def queues(self) -> tuple[str, ...]: ...  # topology.CONSUMED names it consumes
    @property
    def rpc(self) -> bool: ...  # serves nameko RPC
    @property
    def client(self) -> bool: ...  # calls other services over RPC


@dataclass(frozen=True)
class QueueSettings:
    """How the services declare their queues (ONEGRID_QUEUE_TYPE, RETRY_DELAYS_MS): the broker
    refuses a second declaration with other arguments, so provisioning declares the same."""

    queue_type: str = topology.DEFAULT_QUEUE_TYPE
    retry_delays_ms: tuple[int, ...] = topology.DEFAULT_RETRY_DELAYS_MS


DEFAULT_QUEUES = QueueSettings()  # what the Kubernetes ConfigMap runs with (it sets neither)


@dataclass(frozen=True)
class VhostLimits:
    max_connections: int
    max_queues: int

    def as_dict(self) -> dict[str, int]:
        """As RabbitMQ names them (vhost-limits)."""
        return {"max-connections": self.max_connections, "max-queues": self.max_queues}


@dataclass(frozen=True)
class Policy:
    name: str
    pattern: str
    apply_to: str
    priority: int
    definition: Mapping[str, int | str]


@dataclass(frozen=True)
class Permissions:
    configure: str
    write: str
    read: str

    def as_dict(self) -> dict[str, str]:
        return {"configure": self.configure, "write": self.write, "read": self.read}


@dataclass(frozen=True)
class TopicPermission:
    exchange: str
    write: str
    read: str


@dataclass(frozen=True)
class User:
    name: str  # the broker username
    kind: str  # department | service | tooling
    who: str  # the department, the service, or keda / ops
    permissions: Permissions
    topic: tuple[TopicPermission, ...] = ()
    tags: tuple[str, ...] = ()
    max_connections: int | None = None  # a user limit; None: only the vhost's bounds it
    purpose: str = ""


@dataclass(frozen=True)
class Exchange:
    name: str
    type: str
    durable: bool = True


@dataclass(frozen=True)
class Queue:
    name: str
    arguments: Mapping[str, int | str]  # with x-queue-type where the services declare it
    durable: bool = True


@dataclass(frozen=True)
class Binding:
    exchange: str
    queue: str
    key: str
    arguments: Mapping[str, str] = field(default_factory=dict)  # a headers exchange's match


@dataclass(frozen=True)
class BusState:
    vhost: str
    description: str
    limits: VhostLimits
    policies: tuple[Policy, ...]
    users: tuple[User, ...]
    exchanges: tuple[Exchange, ...]
    queues: tuple[Queue, ...]
    bindings: tuple[Binding, ...]

    def user(self, name: str) -> User:
        return next(u for u in self.users if u.name == name)


def literal(name: str) -> str:
    """A name as a literal in RabbitMQ's (PCRE) permission and policy patterns."""
    return re.sub(r"([.^$*+?()\[\]{}|\\])", r"\\\1", name)


def one_of(patterns: Iterable[str]) -> str:
    """A pattern matching exactly one of `patterns` (already regexes); none: nothing."""
    found = sorted(set(patterns))
    return "^(" + "|".join(found) + ")$" if found else "^$"


def department_user(tenant_id: str, department: str) -> str:
    return f"{tenant_id}.{department}"


def service_user(tenant_id: str, service: str) -> str:
    return f"{tenant_id}.svc.{service}"


def desired(tenant: Tenant, services: Sequence[ServiceNeeds], queues: QueueSettings = DEFAULT_QUEUES) -> BusState:
    """Everything `tenant`'s vhost should hold, as the manifest sizes it."""
    return BusState(
        vhost=tenant.id,
        description=f"OneGrid tenant {tenant.id}: {tenant.name}",
        limits=VhostLimits(tenant.max_connections, tenant.max_queues),
        policies=policies(tenant),
        users=users(tenant, services),
        exchanges=tuple(Exchange(name, kind) for name, kind in topology.EXCHANGES.items()),
        queues=queues_of(tenant.departments, queues) + streams(),
        bindings=bindings(tenant.departments),
    )


def streams() -> tuple[Queue, ...]:
    """The county's history streams; their retention is the `onegrid-history` policy."""
    return tuple(
        Queue(name, {"x-queue-type": topology.STREAM}) for name in (topology.HISTORY_INTAKE, topology.HISTORY_LIFECYCLE)
    )


def bindings(departments: Iterable[str]) -> tuple[Binding, ...]:
    """Each consumed queue to its exchange, each work queue to onegrid.workorders, each receipts
    queue to onegrid.receipts, and each reason RabbitMQ dead-letters a message from
    intake.events for to the queue that takes it."""
    routes = {(topology.INTAKE_DEAD, queue, reason) for reason, queue in topology.INTAKE_DEAD_LETTERS.items()}
    routes |= {(exchange, queue, key) for queue, (exchange, key) in topology.CONSUMED.items()}
    out = [
        Binding(exchange, queue, key, topology.binding_arguments(exchange, key))
        for exchange, queue, key in sorted(routes)
    ]
    departments = tuple(departments)
    return (
        tuple(out)
        + tuple(Binding(topology.WORKORDERS, topology.work_queue(d), d) for d in departments)
        + tuple(Binding(topology.RECEIPTS, topology.receipt_queue(d), d) for d in departments)
        + tuple(Binding(exchange, stream, key) for exchange, stream, key in topology.history_routes(departments))
    )


def policies(tenant: Tenant) -> tuple[Policy, ...]:
    """One policy applies to a queue (the highest priority). A consumed queue sends a poison
    message to its dead letters; what departments publish (intake.events), dead letters and
    work queues are bounded and refuse publishes when full. intake.events dead-letters through
    onegrid.intake.dead-letters, which sorts by the reason. Policies cannot change a queue's
    type (fixed at declaration, docs/operations.md)."""
    out = []
    for name in sorted(topology.CONSUMED):
        definition: dict[str, int | str] = {
            "delivery-limit": DELIVERY_LIMIT,
            "dead-letter-exchange": "",
            "dead-letter-routing-key": topology.dead_letter_queue(name),
        }
        if topology.CONSUMED[name][0] == topology.INTAKE:
            definition.update({"max-length": tenant.max_intake_backlog, "overflow": REJECT})
            # sorted by why: an event whose per-message TTL ran out goes to intake.expired
            # (quarantined), a poison one to the dead letters (topology.INTAKE_DEAD_LETTERS)
            definition["dead-letter-exchange"] = topology.INTAKE_DEAD
            del definition["dead-letter-routing-key"]
        out.append(Policy(f"onegrid-consumed-{name}", f"^{literal(name)}$", "queues", 10, definition))
    out.append(
        Policy(
            "onegrid-dead-letters",
            literal(topology.dead_letter_queue("")) + "$",
            "queues",
            5,
            {"max-length": tenant.max_dead_letters, "overflow": REJECT},
        )
    )
    out.append(
        Policy(
            "onegrid-work-queues",
            "^" + literal(topology.WORK_QUEUE_PREFIX),
            "queues",
            5,
            {"max-length": WORK_QUEUE_MAX, "overflow": REJECT},
        )
    )
    out.append(
        Policy(
            "onegrid-receipts",
            "^" + literal(topology.RECEIPT_QUEUE_PREFIX),
            "queues",
            5,
            {"max-length": RECEIPTS_MAX, "overflow": "drop-head"},
        )
    )
    out.append(
        Policy(
            "onegrid-history",
            "^" + literal(topology.HISTORY_PREFIX),
            "queues",
            5,
            {"max-age": f"{tenant.history_max_age_days}D", "max-length-bytes": tenant.history_max_bytes},
        )
    )
    return tuple(out)


def users(tenant: Tenant, services: Sequence[ServiceNeeds]) -> tuple[User, ...]:
    tid = tenant.id
    out = [
        User(
            service_user(tid, s.name),
            "service",
            s.name,
            service_permissions(s),
            topic=_door_topic(s.name),
            purpose=f"the {s.name} service",
        )
        for s in services
    ]
    for dept in tenant.departments:
        out.append(
            User(
                department_user(tid, dept),
                "department",
                dept,
                Permissions(
                    "^$", f"^{literal(topology.INTAKE)}$", one_of(literal(q) for q in topology.department_queues(dept))
                ),
                topic=(TopicPermission(topology.INTAKE, f"^{literal(dept)}\\.", "^$"),),
                max_connections=tenant.max_connections_per_department,
                purpose=f"the {dept} department's systems",
            )
        )
    out.append(
        User(
            f"{tid}.keda",
            "tooling",
            "keda",
            Permissions("^$", "^$", "^$"),
            tags=("management",),
            purpose="KEDA reading queue depths (management API)",
        )
    )
    out.append(
        User(
            f"{tid}.ops",
            "tooling",
            "ops",
            Permissions(
                "^$",
                one_of([literal(topology.DEFAULT_EXCHANGE), literal(topology.INTAKE)]),
                "^(.+" + literal(topology.dead_letter_queue("")) + "|" + literal(topology.HISTORY_PREFIX) + ".+)$",
            ),
            purpose="operators: onegrid dlq list/replay, onegrid quarantine replay, onegrid history",
        )
    )
    return tuple(out)


def _door_topic(service: str) -> tuple[TopicPermission, ...]:
    """A door (topology.DOORS) publishes into onegrid.intake its one event type only."""
    if service not in topology.DOORS:
        return ()
    department, event_type = topology.DOORS[service]
    return (TopicPermission(topology.INTAKE, f"^{literal(department + '.' + event_type)}$", "^$"),)


def service_permissions(service: ServiceNeeds) -> Permissions:
    """Configure its own queues (with tiers) and the exchanges they bind to; write (publish, and
    bind its queues) the platform exchanges but onegrid.intake, the default exchange and its
    queues; read what it consumes and the exchanges it binds from. RPC as it serves or calls."""
    bound = [literal(topology.CONSUMED[q][0]) for q in service.queues]
    configure = [literal(q) + TIERS for q in service.queues] + bound
    platform = [literal(e) for e in topology.EXCHANGES if e not in (topology.INTAKE, topology.INTAKE_DEAD)]
    write = [literal(topology.DEFAULT_EXCHANGE), *platform] + [literal(q) for q in service.queues]
    if service.name in topology.DOORS:
        write.append(literal(topology.INTAKE))  # its one routing key: the topic permission
    read = bound + [literal(q) for q in service.queues] + [literal(s) for s in HISTORY_READERS.get(service.name, ())]
    rpc = []
    if service.rpc:
        rpc.append(literal(topology.rpc_queue(service.name)))
    if service.client:
        rpc.append(literal(topology.rpc_reply_prefix(service.name)) + ".+")
    if rpc:
        rpc.append(literal(topology.RPC_EXCHANGE))
    return Permissions(one_of(configure + rpc), one_of(write + rpc), one_of(read + rpc))


def queues_of(departments: Iterable[str], settings: QueueSettings = DEFAULT_QUEUES) -> tuple[Queue, ...]:
    """In the order onegrid.adapters.amqp.topology.all_queues declares them, with its arguments."""
    durable = {"x-queue-type": settings.queue_type}
    out = []
    for name in topology.CONSUMED:
        out += [Queue(name, durable), Queue(topology.dead_letter_queue(name), durable)]
        out += [
            # classic: a per-queue TTL that dead-letters through the default exchange back to `name`
            Queue(
                topology.retry_queue(name, delay),
                {"x-message-ttl": delay, "x-dead-letter-exchange": "", "x-dead-letter-routing-key": name},
            )
            for delay in settings.retry_delays_ms
        ]
    departments = list(departments)
    out += [Queue(topology.work_queue(d), durable) for d in departments]
    return tuple(out + [Queue(topology.receipt_queue(d), durable) for d in departments])


# -- the figures the docs quote (tests/unit/test_desired.py checks the docs against these) --
@dataclass(frozen=True)
class Figure:
    what: str
    value: int
    source: str  # the manifest limit or the constant it comes from


def figures(bus: BusState) -> tuple[Figure, ...]:
    """The numbers a county's bus is held to, read back from the state itself."""
    by_name = {p.name: p.definition for p in bus.policies}
    intake = next(q for q, (exchange, _) in topology.CONSUMED.items() if exchange == topology.INTAKE)
    consumed = by_name[f"onegrid-consumed-{intake}"]
    department = next(u for u in bus.users if u.kind == "department")
    return (
        Figure("connections to the county's vhost", bus.limits.max_connections, "limits.max_connections"),
        Figure("queues in the county's vhost", bus.limits.max_queues, "limits.max_queues"),
        Figure(
            "connections of one department user",
            department.max_connections or 0,
            "limits.max_connections_per_department",
        ),
        Figure(
            "deliveries before a consumed queue dead-letters a message (delivery-limit)",
            int(consumed["delivery-limit"]),
            "DELIVERY_LIMIT",
        ),
        Figure(
            f"messages waiting in `{intake}` (max-length)", int(consumed["max-length"]), "limits.max_intake_backlog"
        ),
        Figure(
            "messages in each `<queue>.dlq` (max-length)",
            int(by_name["onegrid-dead-letters"]["max-length"]),
            "limits.max_dead_letters",
        ),
        Figure(
            "messages in each `workorders.<department>` (max-length)",
            int(by_name["onegrid-work-queues"]["max-length"]),
            "WORK_QUEUE_MAX",
        ),
        Figure(
            "receipts kept in each `receipts.<department>` (max-length, oldest dropped)",
            int(by_name["onegrid-receipts"]["max-length"]),
            "RECEIPTS_MAX",
        ),
        Figure("queues the topology declares", len(bus.queues), "onegrid.kernel.topology"),
        Figure(
            "days each `history.*` stream keeps (max-age)",
            int(str(by_name["onegrid-history"]["max-age"]).rstrip("D")),
            "limits.history_max_age_days",
        ),
        Figure(
            "bytes each `history.*` stream keeps (max-length-bytes, oldest segments dropped)",
            int(by_name["onegrid-history"]["max-length-bytes"]),
            "limits.history_max_bytes",
        ),
    )


def figures_table(bus: BusState) -> str:
    """`figures` as the markdown table the docs carry (a full queue refuses publishes)."""
    rows = ["| what | bound | from |", "| --- | ---: | --- |"]
    rows += [f"| {f.what} | {f.value:,} | `{f.source}` |" for f in figures(bus)]
    return "\n".join(rows) + "\n"
