"""What a tenant needs on RabbitMQ and Redis, and the changes that bring it there.

Pure: `plan(tenant, snapshot, admin)` compares the county's desired broker state
(onegrid.operator.desired, the one source the Kubernetes overlays render too) and its Redis
user with a snapshot of the broker and Redis (taken by onegrid.operator.ops) and returns the
changes, in the order they must be applied. No secret is ever part of a plan: passwords and
tokens are generated when a change is applied.

Who may do what on the bus: onegrid.operator.desired. In Redis:

  Redis user <tenant>        keys og:{<tenant>}:* only, no admin or dangerous command
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from onegrid.catalogue import SERVICES as RUNNABLE
from onegrid.kernel import topology
from onegrid.kernel.tenant import Tenant
from onegrid.operator.desired import (
    DEFAULT_QUEUES,
    BusState,
    Policy,
    QueueSettings,
    ServiceNeeds,
    User,
    department_user,
    desired,
    queues_of,
    service_user,  # noqa: F401  (ops names a service's user through provisioning)
    streams,
)

SERVICES = tuple(RUNNABLE)  # every OneGrid service has its own broker user
REVOKED_TAG = "onegrid-revoked"
ADMIN_PERMISSIONS = {"configure": ".*", "write": ".*", "read": ".*"}
ROOM_FOR_SERVICES = len(SERVICES) + 4  # queues beyond the topology: nameko's RPC and reply queues


def redis_user(tenant_id: str) -> str:
    return tenant_id


# CLIENT subcommands that concern only the caller's own connection. Every other one is denied:
# CLIENT TRACKING ... BCAST PREFIX og:{another}: is not checked against the key patterns and sends
# the caller invalidations naming another county's keys (CACHING, GETREDIR and TRACKINGINFO
# only serve tracking); LIST, KILL, PAUSE... see or touch other connections.
OWN_CONNECTION_CLIENT = ("id", "getname", "setname", "info", "reply")


def redis_rules(tenant_id: str) -> list[str]:
    """The tenant's Redis ACL: its own keys, the commands the services use, nothing global.

    Key patterns confine every command that names keys; what could still leak another county's
    key names (or stall the server) is a keyless command, so the keyless ones are denied unless
    they only concern the caller (tests/integration/test_tenancy.py lists what stays allowed)."""
    return [
        "on",
        "resetkeys",
        f"~og:{{{tenant_id}}}:*",
        "resetchannels",
        "-@all",
        "+@read",
        "+@write",
        "+@keyspace",
        "+@transaction",
        "+@connection",
        "+@scripting",
        "+time",
        "-@dangerous",  # KEYS, SORT BY/GET patterns, INFO, MONITOR, DEBUG, SLOWLOG...
        "-@admin",
        "-@pubsub",  # keyspace notifications and PUBSUB CHANNELS name keys
        "-scan",
        "-randomkey",
        "-dbsize",
        "-function",
        "-fcall",
        "-fcall_ro",
        "-script|flush",
        "-script|kill",
        "-script|debug",  # SCRIPT DEBUG SYNC blocks the whole server while a county debugs
        "-client",
        *(f"+client|{sub}" for sub in OWN_CONNECTION_CLIENT),
    ]


def state(
    tenant: Tenant, services: Sequence[ServiceNeeds] | None = None, queues: QueueSettings = DEFAULT_QUEUES
) -> BusState:
    """The county's desired broker state; the services as onegrid.catalogue reads them from
    their classes (which imports nameko) unless given."""
    if services is None:
        from onegrid import catalogue

        with warnings.catch_warnings():  # importing the services imports eventlet, which says it is deprecated
            warnings.filterwarnings("ignore", message=r"\s+Eventlet is deprecated")
            services = catalogue.services()
    return desired(tenant, services, queues)


# -- the state as the management API speaks it ----------------------------------------------
def policy_body(policy: Policy) -> dict[str, Any]:
    return {
        "pattern": policy.pattern,
        "apply-to": policy.apply_to,
        "priority": policy.priority,
        "definition": dict(policy.definition),
    }


def policies(bus: BusState) -> dict[str, dict]:
    return {p.name: policy_body(p) for p in bus.policies}


def exchanges(bus: BusState) -> dict[str, str]:
    return {e.name: e.type for e in bus.exchanges}


def queues(tenant: Tenant, settings: QueueSettings = DEFAULT_QUEUES) -> dict[str, dict]:
    """name -> arguments, as the services declare them (and the history streams)."""
    return {q.name: dict(q.arguments) for q in queues_of(tenant.departments, settings) + streams()}


def bindings(bus: BusState) -> set[tuple[str, str, str]]:
    """(exchange, queue, routing key)."""
    return {(b.exchange, b.queue, b.key) for b in bus.bindings}


def topic_permissions(user: User) -> dict[str, dict[str, str]]:
    return {t.exchange: {"write": t.write, "read": t.read} for t in user.topic}


def user_limits(user: User) -> dict[str, int]:
    return {} if user.max_connections is None else {"max-connections": user.max_connections}


@dataclass
class Snapshot:
    """What is there now, as onegrid.operator.ops read it from the broker and Redis."""

    vhost: dict | None = None
    vhost_limits: dict = field(default_factory=dict)
    users: dict[str, dict] = field(default_factory=dict)  # every broker user: name -> {tags: [...]}
    permissions: dict[str, dict] = field(default_factory=dict)  # in the vhost: user -> {configure, write, read}
    topic_permissions: dict[str, dict] = field(default_factory=dict)  # user -> exchange -> {write, read}
    user_limits: dict[str, dict] = field(default_factory=dict)
    policies: dict[str, dict] = field(default_factory=dict)
    exchanges: dict[str, str] = field(default_factory=dict)  # name -> type
    queues: dict[str, dict] = field(default_factory=dict)  # name -> {type, arguments, messages}
    bindings: set = field(default_factory=set)
    redis_acl: bool = True  # the server has ACLs (Redis >= 6)
    redis_user: dict | None = None  # ACL GETUSER of the tenant's user
    redis_wanted: dict | None = None  # the same, as Redis normalises redis_rules()
    tokens: dict[str, str] = field(default_factory=dict)  # department -> active | revoked | none
    notify_secrets: set[str] = field(default_factory=set)  # signing keys issued (ops.Tokens.secrets_issued)


@dataclass(frozen=True)
class Change:
    op: str  # + create, ~ change, - delete
    kind: str  # vhost, vhost-limit, policy, exchange, queue, binding, user, permissions,
    # topic-permissions, user-limit, redis-user, token, notify-secret
    name: str
    detail: str = ""
    data: dict = field(default_factory=dict, compare=False)

    def __str__(self) -> str:
        return f"{self.op} {self.kind} {self.name}" + (f": {self.detail}" if self.detail else "")


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # things seen and deliberately left alone
    problems: list[str] = field(default_factory=list)  # things that stop onboarding

    def add(self, *args, **kw) -> None:
        self.changes.append(Change(*args, **kw))


def _perm(p: dict) -> str:
    return " ".join(f"{k} {p.get(k)!r}" for k in ("configure", "write", "read") if k in p)


def plan(
    tenant: Tenant,
    snap: Snapshot,
    admin: str,
    known_departments: Iterable[str] = (),
    bus: BusState | None = None,
) -> Plan:
    """The changes that make the broker and Redis what `tenant`'s manifest asks for: `bus`, its
    desired state (default: `state(tenant)`), rendered as management-API changes.
    `known_departments` (every department with a contract) tells a department user that is
    no longer enabled, and deleted, from a user someone else made (left alone)."""
    bus = state(tenant) if bus is None else bus
    out = Plan()
    tid = tenant.id
    if tenant.max_queues < len(bus.queues) + ROOM_FOR_SERVICES:
        out.problems.append(
            f"limits.max_queues {tenant.max_queues} leaves no room: the topology has "
            f"{len(bus.queues)} queues and the services declare a few more "
            f"(at least {len(bus.queues) + ROOM_FOR_SERVICES})"
        )
    if snap.vhost is None:
        out.add("+", "vhost", tid, bus.description, {"description": bus.description})
    elif snap.vhost.get("description", "") != bus.description:
        out.add(
            "~",
            "vhost",
            tid,
            f"description {snap.vhost.get('description', '')!r} → {bus.description!r}",
            {"description": bus.description},
        )
    _admin(out, snap, admin, tid)
    for name, value in bus.limits.as_dict().items():
        have = snap.vhost_limits.get(name)
        if have != value:
            out.add(
                "+" if have is None else "~",
                "vhost-limit",
                name,
                f"{value}" if have is None else f"{have} → {value}",
                {"value": value},
            )
    wanted_policies = policies(bus)
    for name, policy in wanted_policies.items():
        have = snap.policies.get(name)
        if have != policy:
            out.add(
                "+" if have is None else "~",
                "policy",
                name,
                f"{policy['pattern']} {policy['definition']}",
                {"policy": policy},
            )
    for name in sorted(set(snap.policies) - set(wanted_policies)):
        if name.startswith("onegrid-"):
            out.add("-", "policy", name, "not part of the topology any more")
    for exchange in bus.exchanges:
        if exchange.name not in snap.exchanges:
            out.add("+", "exchange", exchange.name, exchange.type, {"type": exchange.type})
        elif snap.exchanges[exchange.name] != exchange.type:
            out.notes.append(
                f"exchange {exchange.name} is {snap.exchanges[exchange.name]}, the topology wants "
                f"{exchange.type}: delete it by hand to re-declare it"
            )
    wanted_queues = {q.name: dict(q.arguments) for q in bus.queues}
    for name, args in wanted_queues.items():
        have = snap.queues.get(name)
        if have is None:
            ttl = args.get("x-message-ttl")
            detail = f"retry tier, ttl {ttl} ms" if ttl is not None else str(args.get("x-queue-type", "classic"))
            out.add("+", "queue", name, detail, {"arguments": args})
            continue
        kind, their = have.get("type", "classic"), have.get("arguments") or {}
        if args.get("x-queue-type", "classic") != kind or any(
            their.get(k) != v for k, v in args.items() if k != "x-queue-type"
        ):
            out.notes.append(
                f"queue {name} is {kind} {their}, the topology wants {args}: a queue's type and "
                f"arguments are fixed at declaration (docs/operations.md); left as it is"
            )
    for name, have in sorted(snap.queues.items()):
        if name.startswith((topology.WORK_QUEUE_PREFIX, topology.RECEIPT_QUEUE_PREFIX)) and name not in wanted_queues:
            out.notes.append(
                f"queue {name} belongs to no enabled department ({have.get('messages', 0)} messages); "
                f"left as it is: delete it by hand once drained"
            )
    for b in bus.bindings:
        if (b.exchange, b.queue, b.key) not in snap.bindings:
            out.add(
                "+",
                "binding",
                f"{b.exchange} → {b.queue}",
                f"routing key {b.key!r}" + (f", arguments {dict(b.arguments)}" if b.arguments else ""),
                {"exchange": b.exchange, "queue": b.queue, "key": b.key, "arguments": dict(b.arguments)},
            )
    _users(out, tenant, bus, snap, admin, set(known_departments))
    _redis(out, tenant, snap)
    for env in signing_secrets(tenant):
        if env not in snap.notify_secrets:
            out.add("+", "notify-secret", env, "the notify webhook's signing key (shown once)", {"env": env})
    for dept in tenant.departments:
        user = department_user(tid, dept)
        revoked = REVOKED_TAG in (snap.users.get(user) or {}).get("tags", [])
        token = snap.tokens.get(dept, "none")
        if token == "none" and not revoked:
            out.add("+", "token", dept, "HTTP token (shown once)", {"department": dept})
        elif token == "revoked" and not revoked:
            out.notes.append(
                f"the HTTP token of {dept} is revoked: `onegrid tenant rotate {tid} {dept}` issues a new one"
            )
    return out


def _admin(out: Plan, snap: Snapshot, admin: str, tid: str) -> None:
    if snap.permissions.get(admin) != ADMIN_PERMISSIONS:
        out.add(
            "+" if admin not in snap.permissions else "~",
            "permissions",
            admin,
            f"{_perm(ADMIN_PERMISSIONS)} (the operator's management user)",
            {"user": admin, **ADMIN_PERMISSIONS},
        )


def principals(tenant: Tenant, snap: Snapshot | None = None, bus: BusState | None = None) -> dict[str, dict]:
    """Every broker user the tenant should have: name -> kind, name, tags, permissions, topic,
    limits; a department revoked on the broker (tag onegrid-revoked) stays without permissions."""
    bus = state(tenant) if bus is None else bus
    out = {}
    for user in bus.users:
        revoked = (
            user.kind == "department"
            and snap is not None
            and REVOKED_TAG in (snap.users.get(user.name) or {}).get("tags", [])
        )
        out[user.name] = {
            "kind": user.kind,
            "name": user.who,
            "tags": [REVOKED_TAG] if revoked else list(user.tags),
            "permissions": None if revoked else user.permissions.as_dict(),
            "topic": None if revoked else (topic_permissions(user) or None),
            "limits": user_limits(user),
        }
    return out


def _users(out: Plan, tenant: Tenant, bus: BusState, snap: Snapshot, admin: str, known_departments: set) -> None:
    tid = tenant.id
    wanted = principals(tenant, snap, bus)
    for name, want in wanted.items():
        have = snap.users.get(name)
        if have is None:
            out.add(
                "+",
                "user",
                name,
                f"{want['kind']} {want['name']} (password shown once)",
                {"kind": want["kind"], "name": want["name"], "tags": want["tags"]},
            )
        elif sorted(have.get("tags", [])) != sorted(want["tags"]):
            out.add("~", "user", name, f"tags {have.get('tags', [])} → {want['tags']}", {"tags": want["tags"]})
        perms = snap.permissions.get(name)
        if want["permissions"] is None:
            if perms is not None:
                out.add("-", "permissions", name, "revoked", {"user": name})
        elif perms != want["permissions"]:
            out.add(
                "+" if perms is None else "~",
                "permissions",
                name,
                _perm(want["permissions"]),
                {"user": name, **want["permissions"]},
            )
        topic = snap.topic_permissions.get(name, {})
        if (want["topic"] or {}) != topic:
            if not want["topic"]:
                out.add(
                    "-", "topic-permissions", name, "revoked" if want["kind"] == "department" else "", {"user": name}
                )
            else:
                for exchange, tp in want["topic"].items():
                    out.add(
                        "+" if not topic else "~",
                        "topic-permissions",
                        name,
                        f"on {exchange}: write {tp['write']!r} read {tp['read']!r}",
                        {"user": name, "exchange": exchange, **tp},
                    )
        for limit, value in want["limits"].items():
            if snap.user_limits.get(name, {}).get(limit) != value:
                out.add(
                    "+" if limit not in snap.user_limits.get(name, {}) else "~",
                    "user-limit",
                    name,
                    f"{limit} {value}",
                    {"user": name, "limit": limit, "value": value},
                )
    for name in sorted(snap.users):
        if name.startswith(tid + ".") and name not in wanted:
            rest = name[len(tid) + 1 :]
            if rest in known_departments or rest.startswith("svc."):
                out.add("-", "user", name, "not in the manifest any more", {"name": rest})
            else:
                out.notes.append(f"user {name} is not one OneGrid onboarding makes; left alone")
    for name, perms in sorted(snap.permissions.items()):
        stranger = name not in wanted and name != admin and not name.startswith(tid + ".")
        # the tenant's own leftovers go with their user; an administrator is someone else's
        if stranger and "administrator" not in snap.users.get(name, {}).get("tags", []):
            out.add("-", "permissions", name, f"{_perm(perms)}: not a principal of {tid}", {"user": name})


def signing_secrets(tenant: Tenant) -> list[str]:
    """The variables holding the signing keys of the tenant's enabled webhooks (notify.channels
    .webhook.secret_env): OneGrid makes these (the receiver is given a copy); notify refuses to
    start without them. The SMTP and SMS credentials are the providers' to give, not ours."""
    channels = ((tenant.source or {}).get("notify") or {}).get("channels") or {}
    hook = channels.get("webhook")
    if not isinstance(hook, dict) or hook.get("enabled", True) is False or not hook.get("secret_env"):
        return []
    return [hook["secret_env"]]


def _redis(out: Plan, tenant: Tenant, snap: Snapshot) -> None:
    name = redis_user(tenant.id)
    if not snap.redis_acl:
        out.notes.append("Redis has no ACLs (version < 6): the services share the Redis credentials of REDIS_URL")
        return
    if snap.redis_user is None:
        out.add("+", "redis-user", name, f"keys og:{{{tenant.id}}}:* (password shown once)")
    elif snap.redis_wanted is not None and _acl(snap.redis_user) != _acl(snap.redis_wanted):
        out.add("~", "redis-user", name, f"rules {_acl(snap.redis_user)} → {_acl(snap.redis_wanted)}")


def _acl(user: dict) -> dict:
    return {
        "on": "on" in user.get("flags", []),
        "keys": user.get("keys"),
        "channels": user.get("channels"),
        "commands": user.get("commands"),
    }
