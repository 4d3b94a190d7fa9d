"""What a tenant needs on RabbitMQ and Redis, and the changes that bring it there.

Pure: `desired(tenant)` is the state a manifest asks for, `plan(tenant, snapshot, admin)`
compares it with a snapshot of the broker and Redis (taken by onegrid.ops) and returns the
changes, in the order they must be applied. No secret is ever part of a plan: passwords and
tokens are generated when a change is applied.

Who may do what, in the tenant's vhost (RabbitMQ's configure / write / read regexes):

  <tenant>.<department>      publish to onegrid.intake, only routing keys `<department>.*`
                             (a topic permission), read only workorders.<department>;
                             declare, bind or delete nothing
  <tenant>.svc.<service>     its own queues `<service>.*` (with their retry tiers and dead
                             letters) bound to their exchanges, its nameko RPC queue
                             rpc-<service>; publishes on onegrid.events (routing also on
                             onegrid.workorders); e.g. intake: intake.events on onegrid.intake
  Redis user <tenant>        keys og:{<tenant>}:* only, no admin or dangerous command
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from onegrid.adapters import topology
from onegrid.runner import SERVICES as RUNNABLE

SERVICES = tuple(RUNNABLE)  # every OneGrid service has its own broker user
REVOKED_TAG = "onegrid-revoked"
_TIERS = r"(\.dlq|\.retry\.[0-9]+ms)?"  # a consumed queue's dead letters and retry tiers


def department_user(tenant_id: str, department: str) -> str:
    return f"{tenant_id}.{department}"


def service_user(tenant_id: str, service: str) -> str:
    return f"{tenant_id}.svc.{service}"


def redis_user(tenant_id: str) -> str:
    return tenant_id


def department_permissions(department: str) -> dict:
    return {"configure": "^$", "write": r"^onegrid\.intake$", "read": rf"^workorders\.{re.escape(department)}$"}


def department_topic_permissions(department: str) -> dict:
    return {"write": rf"^{re.escape(department)}\.", "read": "^$"}


# the exchanges a service publishes to, beyond onegrid.events (platform events) and the
# default exchange (its own retry tiers and dead letters)
PUBLISHES_TO = {"routing": (topology.WORKORDERS.name,)}


def _esc(name: str) -> str:
    """A name as a literal in RabbitMQ's (PCRE) regexes."""
    return re.sub(r"([.^$*+?()\[\]{}|\\])", r"\\\1", name)


def _alternatives(names) -> str:
    return "|".join(_esc(n) for n in names)


def service_permissions(service: str) -> dict:
    """What a service needs in the vhost, from the topology: its consumed queues
    (`<service>.*` in topology.CONSUMED) with their retry tiers and dead letters, bound to
    their exchanges; its nameko RPC queue `rpc-<service>` on `nameko-rpc`; publishing to
    onegrid.events (and PUBLISHES_TO)."""
    own = [q for q in topology.CONSUMED if q.split(".", 1)[0] == service]
    bound = sorted({topology.CONSUMED[q][0].name for q in own})
    rpc = ["nameko-rpc", f"rpc-{service}"]
    tiers = [f"({_alternatives(own)}){_TIERS}"] if own else []
    publishes = [topology.EVENTS.name, *PUBLISHES_TO.get(service, ()), "amq.default"]
    return {
        "configure": f"^({'|'.join([_alternatives(bound + rpc)] + tiers)})$",
        "write": f"^({'|'.join([_alternatives(publishes + rpc)] + tiers)})$",
        "read": f"^({_alternatives(bound + own + rpc)})$",
    }


ADMIN_PERMISSIONS = {"configure": ".*", "write": ".*", "read": ".*"}
ROOM_FOR_SERVICES = len(SERVICES) + 4  # queues beyond the topology: nameko's RPC and reply queues


def redis_rules(tenant_id: str) -> list[str]:
    """The tenant's Redis ACL: its own keys, the commands the services use, nothing global."""
    return ["on", "resetkeys", f"~og:{{{tenant_id}}}:*", "resetchannels", "-@all",
            "+@read", "+@write", "+@keyspace", "+@transaction", "+@connection", "+@scripting", "+time",
            "-@dangerous", "-@admin", "-@pubsub",
            "-scan", "-randomkey", "-dbsize", "-function", "-fcall", "-fcall_ro", "-script|flush", "-script|kill"]


WORK_QUEUE_MAX = 1_000_000   # as deploy/k8s (onegrid/k8s.py policies) bounds them
DELIVERY_LIMIT = 10  # redeliveries come only from crashes and unreadable frames (handler errors are retried apart)


def policies(tenant) -> dict[str, dict]:
    """The same policies the Kubernetes overlays declare (onegrid/k8s.py), sized by the
    manifest: one policy applies to a queue (the highest priority). A consumed queue sends a
    poison message (one that crashed its consumer DELIVERY_LIMIT times) to its dead letters;
    intake's queue, dead-letter and work queues are bounded and refuse publishes when full
    (the publisher's confirm is a nack), never dropping what they hold. Policies cannot
    change a queue's type (fixed at declaration, see docs/operations.md)."""
    out = {}
    for name in sorted(topology.CONSUMED):
        definition = {"delivery-limit": DELIVERY_LIMIT, "dead-letter-exchange": "",
                      "dead-letter-routing-key": topology.dead_letter_queue(name).name}
        if topology.CONSUMED[name][0] is topology.INTAKE:  # what departments publish is bounded per tenant
            definition.update({"max-length": tenant.max_intake_backlog, "overflow": "reject-publish"})
        out[f"onegrid-consumed-{name}"] = {"pattern": f"^{_esc(name)}$", "apply-to": "queues", "priority": 10,
                                           "definition": definition}
    out["onegrid-dead-letters"] = {"pattern": r"\.dlq$", "apply-to": "queues", "priority": 5, "definition": {
        "max-length": tenant.max_dead_letters, "overflow": "reject-publish"}}
    out["onegrid-work-queues"] = {"pattern": "^" + _esc(topology.work_queue("x").name[:-1]), "apply-to": "queues",
                                  "priority": 5, "definition": {"max-length": WORK_QUEUE_MAX,
                                                                "overflow": "reject-publish"}}
    return out


def vhost_limits(tenant) -> dict[str, int]:
    return {"max-connections": tenant.max_connections, "max-queues": tenant.max_queues}


def vhost_description(tenant) -> str:
    return f"OneGrid tenant {tenant.id}: {tenant.name}"


def exchanges() -> dict[str, str]:
    return {e.name: e.type for e in (topology.INTAKE, topology.EVENTS, topology.WORKORDERS)}


def queues(tenant) -> dict[str, dict]:
    """name -> arguments, as topology declares them (ONEGRID_QUEUE_TYPE, RETRY_DELAYS_MS)."""
    return {q.name: dict(q.queue_arguments or {}) for q in topology.all_queues(tenant.departments)}


def bindings(tenant) -> set[tuple[str, str, str]]:
    """(exchange, queue, routing key) the topology binds."""
    out = {(exchange.name, name, key) for name, (exchange, key) in topology.CONSUMED.items()}
    return out | {(topology.WORKORDERS.name, f"workorders.{d}", d) for d in tenant.departments}


@dataclass
class Snapshot:
    """What is there now, as onegrid.ops read it from the broker and Redis."""
    vhost: dict | None = None
    vhost_limits: dict = field(default_factory=dict)
    users: dict[str, dict] = field(default_factory=dict)          # every broker user: name -> {tags: [...]}
    permissions: dict[str, dict] = field(default_factory=dict)    # in the vhost: user -> {configure, write, read}
    topic_permissions: dict[str, dict] = field(default_factory=dict)  # user -> exchange -> {write, read}
    user_limits: dict[str, dict] = field(default_factory=dict)
    policies: dict[str, dict] = field(default_factory=dict)
    exchanges: dict[str, str] = field(default_factory=dict)       # name -> type
    queues: dict[str, dict] = field(default_factory=dict)         # name -> {type, arguments, messages}
    bindings: set = field(default_factory=set)
    redis_acl: bool = True                                        # the server has ACLs (Redis >= 6)
    redis_user: dict | None = None                                # ACL GETUSER of the tenant's user
    redis_wanted: dict | None = None                              # the same, as Redis normalises redis_rules()
    tokens: dict[str, str] = field(default_factory=dict)          # department -> active | revoked | none


@dataclass(frozen=True)
class Change:
    op: str       # + create, ~ change, - delete
    kind: str     # vhost, vhost-limit, policy, exchange, queue, binding, user, permissions,
                  # topic-permissions, user-limit, redis-user, token
    name: str
    detail: str = ""
    data: dict = field(default_factory=dict, compare=False)

    def __str__(self) -> str:
        return f"{self.op} {self.kind} {self.name}" + (f": {self.detail}" if self.detail else "")


@dataclass
class Plan:
    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)     # things seen and deliberately left alone
    problems: list[str] = field(default_factory=list)  # things that stop onboarding

    def add(self, *args, **kw) -> None:
        self.changes.append(Change(*args, **kw))


def _perm(p: dict) -> str:
    return " ".join(f"{k} {p.get(k)!r}" for k in ("configure", "write", "read") if k in p)


def plan(tenant, snap: Snapshot, admin: str, known_departments=()) -> Plan:
    """The changes that make the broker and Redis what `tenant`'s manifest asks for.
    `known_departments` (every department with a contract) tells a department user that is
    no longer enabled, and deleted, from a user someone else made (left alone)."""
    out = Plan()
    tid = tenant.id
    wanted_queues = queues(tenant)
    if tenant.max_queues < len(wanted_queues) + ROOM_FOR_SERVICES:
        out.problems.append(f"limits.max_queues {tenant.max_queues} leaves no room: the topology has "
                            f"{len(wanted_queues)} queues and the services declare a few more "
                            f"(at least {len(wanted_queues) + ROOM_FOR_SERVICES})")
    if snap.vhost is None:
        out.add("+", "vhost", tid, vhost_description(tenant), {"description": vhost_description(tenant)})
    elif snap.vhost.get("description", "") != vhost_description(tenant):
        out.add("~", "vhost", tid, f"description {snap.vhost.get('description', '')!r} → "
                f"{vhost_description(tenant)!r}", {"description": vhost_description(tenant)})
    _admin(out, snap, admin, tid)
    for name, value in vhost_limits(tenant).items():
        have = snap.vhost_limits.get(name)
        if have != value:
            out.add("+" if have is None else "~", "vhost-limit", name,
                    f"{value}" if have is None else f"{have} → {value}", {"value": value})
    wanted_policies = policies(tenant)
    for name, policy in wanted_policies.items():
        have = snap.policies.get(name)
        if have != policy:
            out.add("+" if have is None else "~", "policy", name,
                    f"{policy['pattern']} {policy['definition']}", {"policy": policy})
    for name in sorted(set(snap.policies) - set(wanted_policies)):
        if name.startswith("onegrid-"):
            out.add("-", "policy", name, "not part of the topology any more")
    for name, kind in exchanges().items():
        if name not in snap.exchanges:
            out.add("+", "exchange", name, kind)
        elif snap.exchanges[name] != kind:
            out.notes.append(f"exchange {name} is {snap.exchanges[name]}, the topology wants {kind}: "
                             f"delete it by hand to re-declare it")
    for name, args in wanted_queues.items():
        have = snap.queues.get(name)
        if have is None:
            out.add("+", "queue", name, args.get("x-queue-type", "classic") if "x-message-ttl" not in args
                    else f"retry tier, ttl {args['x-message-ttl']} ms")
            continue
        kind, their = have.get("type", "classic"), have.get("arguments") or {}
        if args.get("x-queue-type", "classic") != kind or any(
                their.get(k) != v for k, v in args.items() if k != "x-queue-type"):
            out.notes.append(f"queue {name} is {kind} {their}, the topology wants {args}: a queue's type and "
                             f"arguments are fixed at declaration (docs/operations.md); left as it is")
    for name, have in sorted(snap.queues.items()):
        if name.startswith("workorders.") and name not in wanted_queues:
            out.notes.append(f"queue {name} belongs to no enabled department ({have.get('messages', 0)} messages); "
                             f"left as it is: delete it by hand once drained")
    for exchange, queue, key in sorted(bindings(tenant) - snap.bindings):
        if queue in snap.queues:  # a new queue is bound when it is declared
            out.add("+", "binding", f"{exchange} → {queue}", f"routing key {key!r}",
                    {"exchange": exchange, "queue": queue, "key": key})
    _users(out, tenant, snap, admin, set(known_departments))
    _redis(out, tenant, snap)
    for dept in tenant.departments:
        user = department_user(tid, dept)
        revoked = REVOKED_TAG in (snap.users.get(user) or {}).get("tags", [])
        state = snap.tokens.get(dept, "none")
        if state == "none" and not revoked:
            out.add("+", "token", dept, "HTTP token (shown once)", {"department": dept})
        elif state == "revoked" and not revoked:
            out.notes.append(f"the HTTP token of {dept} is revoked: `onegrid tenant rotate {tid} {dept}` issues a "
                             f"new one")
    return out


def _admin(out: Plan, snap: Snapshot, admin: str, tid: str) -> None:
    if snap.permissions.get(admin) != ADMIN_PERMISSIONS:
        out.add("+" if admin not in snap.permissions else "~", "permissions", admin,
                f"{_perm(ADMIN_PERMISSIONS)} (the operator's management user)", {"user": admin, **ADMIN_PERMISSIONS})


def principals(tenant, snap: Snapshot | None = None) -> dict[str, dict]:
    """Every broker user the tenant should have: name -> kind, permissions, topic, limits, tags."""
    tid, out = tenant.id, {}
    for dept in tenant.departments:
        name = department_user(tid, dept)
        revoked = snap is not None and REVOKED_TAG in (snap.users.get(name) or {}).get("tags", [])
        out[name] = {"kind": "department", "name": dept, "tags": [REVOKED_TAG] if revoked else [],
                     "permissions": None if revoked else department_permissions(dept),
                     "topic": None if revoked else {topology.INTAKE.name: department_topic_permissions(dept)},
                     "limits": {"max-connections": tenant.max_connections_per_department}}
    for svc in SERVICES:
        out[service_user(tid, svc)] = {"kind": "service", "name": svc, "tags": [],
                                       "permissions": service_permissions(svc), "topic": None, "limits": {}}
    return out


def _users(out: Plan, tenant, snap: Snapshot, admin: str, known_departments: set) -> None:
    tid = tenant.id
    wanted = principals(tenant, snap)
    for name, want in wanted.items():
        have = snap.users.get(name)
        if have is None:
            out.add("+", "user", name, f"{want['kind']} {want['name']} (password shown once)",
                    {"kind": want["kind"], "name": want["name"]})
        elif sorted(have.get("tags", [])) != sorted(want["tags"]):
            out.add("~", "user", name, f"tags {have.get('tags', [])} → {want['tags']}", {"tags": want["tags"]})
        perms = snap.permissions.get(name)
        if want["permissions"] is None:
            if perms is not None:
                out.add("-", "permissions", name, "revoked", {"user": name})
        elif perms != want["permissions"]:
            out.add("+" if perms is None else "~", "permissions", name, _perm(want["permissions"]),
                    {"user": name, **want["permissions"]})
        topic = snap.topic_permissions.get(name, {})
        if (want["topic"] or {}) != topic:
            if not want["topic"]:
                out.add("-", "topic-permissions", name, "revoked" if want["kind"] == "department" else "",
                        {"user": name})
            else:
                for exchange, tp in want["topic"].items():
                    out.add("+" if not topic else "~", "topic-permissions", name,
                            f"on {exchange}: write {tp['write']!r} read {tp['read']!r}",
                            {"user": name, "exchange": exchange, **tp})
        for limit, value in want["limits"].items():
            if snap.user_limits.get(name, {}).get(limit) != value:
                out.add("+" if limit not in snap.user_limits.get(name, {}) else "~", "user-limit", name,
                        f"{limit} {value}", {"user": name, "limit": limit, "value": value})
    for name in sorted(snap.users):
        if name.startswith(tid + ".") and name not in wanted:
            rest = name[len(tid) + 1:]
            if rest in known_departments or rest.startswith("svc."):
                out.add("-", "user", name, "not in the manifest any more", {"name": rest})
            else:
                out.notes.append(f"user {name} is not one OneGrid onboarding makes; left alone")
    for name, perms in sorted(snap.permissions.items()):
        if name not in wanted and name != admin and "administrator" not in snap.users.get(name, {}).get("tags", []):
            if not name.startswith(tid + "."):  # the tenant's own leftovers go with their user
                out.add("-", "permissions", name, f"{_perm(perms)}: not a principal of {tid}", {"user": name})


def _redis(out: Plan, tenant, snap: Snapshot) -> None:
    name = redis_user(tenant.id)
    if not snap.redis_acl:
        out.notes.append("Redis has no ACLs (version < 6): the services share the Redis credentials of REDIS_URL")
        return
    if snap.redis_user is None:
        out.add("+", "redis-user", name, f"keys og:{{{tenant.id}}}:* (password shown once)")
    elif snap.redis_wanted is not None and _acl(snap.redis_user) != _acl(snap.redis_wanted):
        out.add("~", "redis-user", name, f"rules {_acl(snap.redis_user)} → {_acl(snap.redis_wanted)}")


def _acl(user: dict) -> dict:
    return {"on": "on" in user.get("flags", []), "keys": user.get("keys"), "channels": user.get("channels"),
            "commands": user.get("commands")}
