"""Operator actions on a tenant's bus and store: onboarding and offboarding, credentials,
status, replaying quarantine and dead letters. Shared by the CLI, the demo and the tests.

Onboarding compares what the manifest asks for (onegrid.operator.provisioning) with what the broker
and Redis have, prints the difference and applies it: a second run finds nothing to do.
Passwords and tokens are generated when a user or token is created, returned once to the
caller (the CLI prints them or writes Kubernetes Secrets) and kept nowhere in clear.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlparse, urlunparse

import redis
import yaml
from kombu import Connection

from onegrid.adapters.amqp import topology
from onegrid.adapters.amqp.bus import Bus, amqp_uri
from onegrid.adapters.amqp.management import Management
from onegrid.adapters.redis import connect, redis_acl
from onegrid.adapters.redis.auth import Tokens
from onegrid.adapters.redis.open311 import Clients
from onegrid.adapters.redis.store import Store
from onegrid.app.registry import SECTIONS, load, load_strict
from onegrid.contracts import ContractsInvalid, Problem, Registry
from onegrid.contracts.registry import SAFE_LOADER
from onegrid.domain.intake import first_transport
from onegrid.domain.open311 import clients_of as open311_clients
from onegrid.kernel import settings
from onegrid.kernel.tenant import TENANT_ID, Tenant, parse_tenant
from onegrid.operator import k8s
from onegrid.operator import provisioning as prov
from onegrid.operator.desired import BusState, QueueSettings

# headers of onegrid.adapters.nameko.reliable (not imported: it loads nameko and eventlet)
ATTEMPT, ROUTING_KEY, USER_ID = "x-og-attempt", "x-og-routing-key", "x-og-user-id"
REPLAYED_FROM = "x-og-replayed-from"


class OpsError(SystemExit):
    """An operator action that cannot go on; the message says why (the CLI prints it)."""


def tenant(tenant_id: str, contracts_dir: str | None = None) -> Tenant:
    root = contracts_dir or settings.contracts_dir()
    registry = load_strict(root)
    if tenant_id not in registry.tenants:
        where = str(Path(root) / "tenants" / f"{tenant_id}.yaml")
        raise ContractsInvalid([Problem(where, "$", f"no such tenant; known: {', '.join(sorted(registry.tenants))}")])
    return registry.tenants[tenant_id]


def manifest(ref: str, contracts_dir: str | None = None) -> tuple[Tenant, Registry]:
    """A tenant by id, or by the path of its manifest: in a contracts tree
    (`contracts/tenants/<id>.yaml`, checked with the whole tree) or alone (checked against
    the departments and categories of `contracts_dir`)."""
    path = Path(ref)
    if not (ref.endswith((".yaml", ".yml")) or os.sep in ref):
        registry = load_strict(contracts_dir or settings.contracts_dir())
        return tenant(ref, contracts_dir), registry
    if not path.is_file():
        raise ContractsInvalid([Problem(ref, "$", "no such manifest")])
    root = path.resolve().parent.parent
    if path.resolve().parent.name == "tenants" and (root / "departments").is_dir():
        registry, problems = load(root)
        if problems:
            raise ContractsInvalid(problems)
        if path.stem not in registry.tenants:
            raise ContractsInvalid([Problem(ref, "$", f"no tenant manifest named {path.stem} was loaded")])
        return registry.tenants[path.stem], registry
    registry = load_strict(contracts_dir or settings.contracts_dir())
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ContractsInvalid([Problem(ref, "$", f"cannot be read as YAML: {exc}".replace("\n", " "))]) from None
    found, problems = parse_tenant(doc, path.stem, registry.categories, registry.departments)
    if isinstance(doc, dict):  # the sections the domain owns, as the whole tree's loader checks them
        problems += [p for check in SECTIONS for p in check(doc, found)]
    if problems or found is None:
        raise ContractsInvalid([Problem(ref, where, why) for where, why in problems])
    registry.tenants[found.id] = found
    return found, registry


SAFE_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def clone_tenant(
    contracts_dir: str | Path, base: str, new_id: str, dest: str | Path, sections: dict | None = None
) -> Path:
    """A copy of the contracts tree at `dest` with tenant `new_id` cloned from `base` (and the
    manifest's top-level `sections` replaced): a private county for a test or a benchmark,
    so they never touch a real tenant's bus. Of the tenant manifests only the base's comes along
    (with its boundaries): the copy's services load every manifest in it, and Taiyuan's 9,375
    grids would cost each of them a second for a county they do not serve."""
    root, tenants = Path(dest), Path(contracts_dir) / "tenants"
    base_doc = yaml.load((tenants / f"{base}.yaml").read_text(encoding="utf-8"), Loader=SAFE_LOADER)
    keep = {f"{base}.yaml", str((base_doc.get("geography") or {}).get("file", ""))}

    def others(folder: str, names: list[str]) -> set[str]:
        return {n for n in names if n not in keep} if Path(folder) == tenants else set()

    shutil.copytree(contracts_dir, root, dirs_exist_ok=True, ignore=others)
    manifest = {**base_doc, **(sections or {}), "tenant": new_id}
    if "grid_tree" in (sections or {}) and "geography" not in (sections or {}):
        manifest.pop("geography", None)  # the base's boundaries are of the base's tree
    text = yaml.dump(manifest, Dumper=SAFE_DUMPER, allow_unicode=True)
    (root / "tenants" / f"{new_id}.yaml").write_text(text, encoding="utf-8")
    return root


def uri(tenant_id: str) -> str:
    return amqp_uri(settings.amqp_base(), tenant_id)


def store(tenant_id: str) -> Store:
    """The tenant's store as the operator: with a county's Redis user (the services'), another
    county's keys answer NOPERM and its own look empty, so that is refused up front."""
    return Store(admin_redis(), tenant_id, settings.redis_wait_replicas())


def admin_redis() -> redis.Redis:
    """Redis as the operator (REDIS_URL): its admin user, which manages the tenants' users."""
    r = connect.client(settings.redis_url())
    try:
        redis_acl.supported(r)
    except redis_acl.NotAdmin as exc:
        raise OpsError(str(exc)) from None
    return r


@dataclass
class Credential:
    """A principal's new secrets, to show once or to write as a Kubernetes Secret."""

    principal: str
    kind: str  # department | service | tooling (keda, ops) | redis | notify | open311 (a client's api key)
    name: str  # the department, the service, or "redis"
    values: dict = field(default_factory=dict, repr=False)


def snapshot(t: Tenant, mgmt: Management, r: redis.Redis) -> prov.Snapshot:
    """What the broker and Redis hold for `t` now."""
    snap = prov.Snapshot(vhost=mgmt.vhost(t.id))
    snap.users = {u["name"]: {"tags": _tags(u.get("tags"))} for u in mgmt.users()}
    snap.user_limits = mgmt.user_limits()
    if snap.vhost is not None:
        snap.vhost_limits = mgmt.vhost_limits(t.id)
        snap.permissions = mgmt.permissions(t.id)
        snap.topic_permissions = mgmt.topic_permissions(t.id)
        snap.policies = mgmt.policies(t.id)
        snap.exchanges = {e["name"]: e["type"] for e in mgmt.exchanges(t.id) if e["name"]}
        snap.queues = {
            q["name"]: {
                "type": q.get("type", "classic"),
                "arguments": q.get("arguments") or {},
                "messages": q.get("messages", 0),
            }
            for q in mgmt.queues(t.id)
        }
        snap.bindings = {
            (b["source"], b["destination"], b["routing_key"])
            for b in mgmt.bindings(t.id)
            if b["source"] and b["destination_type"] == "queue"
        }
    snap.redis_acl = redis_acl.supported(r)
    if snap.redis_acl:
        snap.redis_user = redis_acl.get_user(r, prov.redis_user(t.id))
        if snap.redis_user is not None:
            snap.redis_wanted = redis_acl.normalised(r, prov.redis_rules(t.id))
    snap.tokens = Tokens(r, t.id).states(list(t.departments))
    snap.notify_secrets = Tokens(r, t.id).secrets_issued()
    return snap


def desired_state(t: Tenant) -> BusState:
    """The county's desired broker state, its queues as this machine's services declare them
    (ONEGRID_QUEUE_TYPE, RETRY_DELAYS_MS)."""
    return prov.state(t, queues=QueueSettings(settings.queue_type(), settings.retry_delays_ms()))


def _tags(tags) -> list[str]:
    if isinstance(tags, str):
        return [x for x in tags.split(",") if x]
    return list(tags or [])


def onboard(
    t: Tenant,
    reset: bool = False,
    dry_run: bool = False,
    registry: Registry | None = None,
    services_amqp: str | None = None,
    services_redis: str | None = None,
) -> dict:
    """Bring the broker and Redis to what `t`'s manifest asks for: the vhost with its limits,
    policies, exchanges and queues, a user per department and per service with their
    permissions, the Redis ACL user, an HTTP token per department. Idempotent; with `reset`,
    an empty bus and store first (demo and tests); with `dry_run`, only the plan. The
    services' new credentials name the broker and Redis as `services_amqp` and
    `services_redis` (default: where this command reaches them)."""
    mgmt, r = Management(settings.management_url()), admin_redis()
    if reset and not dry_run:
        mgmt.delete_vhost(t.id)
        store(t.id).purge()
    snap, bus = snapshot(t, mgmt, r), desired_state(t)
    plan = prov.plan(t, snap, mgmt.user, registry.departments if registry else t.departments, bus)
    if plan.problems:
        raise OpsError(f"{t.id}: cannot onboard:\n" + "\n".join(plan.problems))
    where = Where(services_amqp or settings.amqp_base(), services_redis or settings.redis_url())
    credentials, notes = ([], []) if dry_run else _apply(t, plan, mgmt, r, where)
    if not dry_run:
        credentials += open311_keys(t, r)
    return {
        "vhost": t.id,
        "vhost_created": snap.vhost is None and not dry_run,
        "queues": [q.name for q in bus.queues],
        "changes": plan.changes,
        "notes": plan.notes + notes,
        "credentials": credentials,
        "dry_run": dry_run,
    }


NOTIFY = "notify"  # the key of notify's credential among those onboarding makes


@dataclass(frozen=True)
class Where:
    """How the services reach the broker and Redis: written into their new credentials."""

    amqp_base: str
    redis_url: str


def _apply(
    t: Tenant, plan: prov.Plan, mgmt: Management, r: redis.Redis, where: Where
) -> tuple[list[Credential], list[str]]:
    creds: dict[str, Credential] = {}
    notes: list[str] = []
    tokens = Tokens(r, t.id)
    declare: list[prov.Change] = []
    for ch in plan.changes:
        if ch.kind == "vhost":
            mgmt.put_vhost(t.id, ch.data["description"])
        elif ch.kind == "vhost-limit":
            mgmt.set_vhost_limit(t.id, ch.name, ch.data["value"])
        elif ch.kind == "policy":
            if ch.op == "-":
                mgmt.delete_policy(t.id, ch.name)
            else:
                mgmt.put_policy(t.id, ch.name, ch.data["policy"])
        elif ch.kind in ("exchange", "queue", "binding"):
            declare.append(ch)
        elif ch.kind == "user":
            _apply_user(t, ch, mgmt, tokens, creds, where)
        elif ch.kind == "permissions":
            if ch.op == "-":
                mgmt.clear_permissions(t.id, ch.data["user"])
            else:
                mgmt.set_permissions(t.id, ch.data["user"], ch.data["configure"], ch.data["write"], ch.data["read"])
        elif ch.kind == "topic-permissions":
            if ch.op == "-":
                mgmt.clear_topic_permissions(t.id, ch.data["user"])
            else:
                mgmt.set_topic_permissions(
                    t.id, ch.data["user"], ch.data["exchange"], ch.data["write"], ch.data["read"]
                )
        elif ch.kind == "user-limit":
            mgmt.set_user_limit(ch.data["user"], ch.data["limit"], ch.data["value"])
        elif ch.kind == "redis-user":
            password = redis_acl.new_password() if ch.op == "+" else None
            redis_acl.set_user(r, ch.name, prov.redis_rules(t.id), password)
            if password:
                creds[ch.name] = redis_credential(ch.name, password, where)
            problem = redis_acl.persist(r)
            if problem:
                notes.append(problem)
        elif ch.kind == "notify-secret":
            value = new_password()
            tokens.note_secret(ch.name, value)
            cred = creds.setdefault(NOTIFY, Credential(f"{t.id}.notify", "notify", "notify"))
            cred.values[ch.name] = value
        elif ch.kind == "token":
            user = prov.department_user(t.id, ch.name)
            cred = creds.setdefault(user, Credential(user, "department", ch.name, {"username": user, "vhost": t.id}))
            cred.values["http-token"] = tokens.issue(ch.name)
    if declare:  # as the operator, whose permissions in the vhost were set above
        _declare(t, declare)
    if NOTIFY in creds or any(ch.kind == "vhost" and ch.op == "+" for ch in plan.changes):
        # notify's Secret exists from the first onboarding on (its Deployment needs it), with
        # the providers' credentials (SMTP, SMS) as empty keys to fill in by hand
        cred = creds.setdefault(NOTIFY, Credential(f"{t.id}.notify", "notify", "notify"))
        for channel in k8s.notify_channels(t):
            for env in channel["env"]:
                cred.values.setdefault(env, "")
    return list(creds.values()), notes


def open311_keys(t: Tenant, r: redis.Redis) -> list[Credential]:
    """An api_key for each Open311 client application the manifest names that has no active one
    (a second onboarding issues none; `onegrid open311 add-client` rotates one)."""
    clients = Clients(r, t.id)
    states = clients.states()
    return [
        Credential(f"{t.id}.open311.{client}", "open311", client, {"api-key": clients.issue(client)})
        for client in open311_clients(t.source)
        if states.get(client) != "active"
    ]


def _apply_user(t: Tenant, ch: prov.Change, mgmt: Management, tokens: Tokens, creds: dict, where: Where) -> None:
    if ch.op == "+":
        password = new_password()
        mgmt.put_user(ch.name, password=password, tags=",".join(ch.data["tags"]))
        kind, name = ch.data["kind"], ch.data["name"]
        creds[ch.name] = (
            service_credential(t, name, password, where)
            if kind == "service"
            else Credential(ch.name, kind, name, {"username": ch.name, "password": password, "vhost": t.id})
        )
    elif ch.op == "~":
        mgmt.put_user(ch.name, tags=",".join(ch.data["tags"]))
    else:
        mgmt.delete_user(ch.name)
        tokens.forget(ch.data["name"])


def service_credential(t: Tenant, service: str, password: str, where: Where) -> Credential:
    user = prov.service_user(t.id, service)
    return Credential(
        user,
        "service",
        service,
        {
            "username": user,
            "password": password,
            "uri": amqp_uri(with_credentials(where.amqp_base, user, password), t.id),
        },
    )


def redis_credential(user: str, password: str, where: Where) -> Credential:
    return Credential(
        user,
        "redis",
        "redis",
        {"username": user, "password": password, "url": with_credentials(where.redis_url, user, password)},
    )


def new_password() -> str:
    return secrets.token_urlsafe(24)


def _declare(t: Tenant, changes: list[prov.Change]) -> None:
    """Declare the missing exchanges, queues and bindings, as the plan says (in its order:
    exchanges, then queues, then bindings), as the operator."""
    with Connection(uri(t.id)) as conn:
        channel = conn.channel()
        try:
            for ch in changes:
                if ch.kind == "exchange":
                    channel.exchange_declare(ch.name, ch.data["type"], durable=True, auto_delete=False)
                elif ch.kind == "queue":
                    channel.queue_declare(ch.name, durable=True, auto_delete=False, arguments=ch.data["arguments"])
                elif ch.kind == "binding":
                    args = ch.data.get("arguments") or None  # a headers exchange's match
                    channel.queue_bind(ch.data["queue"], ch.data["exchange"], ch.data["key"], arguments=args)
        finally:
            channel.close()


def with_credentials(url: str, user: str, password: str) -> str:
    """`url` (amqp://… or redis://…) with `user` and `password` instead of its own."""
    parsed = urlparse(url)
    host = parsed.hostname or "127.0.0.1"
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}" + (f":{parsed.port}" if parsed.port else "")
    return urlunparse(parsed._replace(netloc=netloc))


def secret_name(cred: Credential) -> str:
    """The Secret the Kubernetes overlays read (onegrid/operator/k8s.py): bus-user-svc-<service>,
    bus-user-dept-<department>, onegrid-redis; DNS-1123, so no underscores."""
    if cred.kind == "redis":
        return "onegrid-redis"
    if cred.kind == "notify":  # read whole into notify's environment (envFrom)
        return "onegrid-notify"
    if cred.kind == "tooling":  # keda, ops
        return f"bus-user-{cred.name}"
    if cred.kind == "open311":  # handed to the client application, not read by a service
        return f"open311-client-{cred.name}"
    return "bus-user-" + ("svc-" if cred.kind == "service" else "dept-") + cred.name.replace("_", "-")


def k8s_namespace(tenant_id: str) -> str:
    return k8s.namespace(tenant_id)


def write_k8s_secrets(tenant_id: str, credentials: list[Credential], directory: str | Path) -> list[Path]:
    """One Secret YAML per principal (mode 0600), in the tenant's namespace, for `kubectl
    apply -f`. A Secret already there is updated: a new token alone keeps the password."""
    out = Path(directory)
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    written = []
    for cred in credentials:
        name = secret_name(cred)
        path = out / f"{name}.yaml"
        data: dict[str, str] = {}
        if path.exists():
            data = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("stringData") or {}
        data.update({k: v for k, v in cred.values.items() if v or k not in data})  # "": to fill in, keep any value
        doc = k8s.secret(name, k8s.namespace(tenant_id), tenant_id, data)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(yaml.safe_dump(doc, sort_keys=False))
        os.chmod(path, 0o600)
        written.append(path)
    return written


def rotate(
    t: Tenant, who: str, services_amqp: str | None = None, services_redis: str | None = None, token_only: bool = False
) -> list[Credential]:
    """New credentials for a department (broker password and HTTP token; its connections are
    closed, so the old password stops working at once), a service (`svc.<name>`) or the
    tenant's Redis user (`redis`). A revoked department is reinstated. `token_only`: a
    department's new HTTP token alone (where the broker users are another's to manage)."""
    mgmt, r = Management(settings.management_url()), admin_redis()
    where = Where(services_amqp or settings.amqp_base(), services_redis or settings.redis_url())
    if who == "redis":
        name = prov.redis_user(t.id)
        if not redis_acl.supported(r) or redis_acl.get_user(r, name) is None:
            raise OpsError(f"{t.id} has no Redis user; run `onegrid tenant onboard` first")
        password = redis_acl.new_password()
        redis_acl.set_user(r, name, prov.redis_rules(t.id), password)
        redis_acl.persist(r)
        return [redis_credential(name, password, where)]
    if who.startswith("svc."):
        service = who[4:]
        if service not in prov.SERVICES:
            raise OpsError(f"no service {service!r}; one of {', '.join(prov.SERVICES)}")
        user = prov.service_user(t.id, service)
        if mgmt.get_user(user) is None:
            raise OpsError(f"no user {user}; run `onegrid tenant onboard` first")
        password = new_password()
        mgmt.put_user(user, password=password)  # running services keep their connections until redeployed
        return [service_credential(t, service, password, where)]
    if who not in t.departments:
        raise OpsError(f"{who!r} is not a department of {t.id} (nor svc.<service> or redis)")
    user = prov.department_user(t.id, who)
    if token_only:
        return [Credential(user, "department", who, {"http-token": Tokens(r, t.id).issue(who)})]
    if mgmt.get_user(user) is None:
        raise OpsError(f"no user {user}; run `onegrid tenant onboard` first")
    password = new_password()
    mgmt.put_user(user, password=password)  # clears the revoked tag
    want = prov.principals(t)[user]
    mgmt.set_permissions(t.id, user, **want["permissions"])
    for exchange, tp in want["topic"].items():
        mgmt.set_topic_permissions(t.id, user, exchange, tp["write"], tp["read"])
    for limit, value in want["limits"].items():
        mgmt.set_user_limit(user, limit, value)
    token = Tokens(r, t.id).issue(who)
    mgmt.close_connections(user, "OneGrid: credentials rotated")
    return [
        Credential(
            user, "department", who, {"username": user, "password": password, "vhost": t.id, "http-token": token}
        )
    ]


def revoke(t: Tenant, department: str) -> dict:
    """Cut a department off: its broker user loses its password and permissions (and keeps
    the tag onegrid-revoked, so onboarding leaves it so), its connections are closed, its
    HTTP token is retired. `rotate` reinstates it with new credentials."""
    if department not in t.departments:
        raise OpsError(f"{department!r} is not a department of {t.id}")
    mgmt, r = Management(settings.management_url()), admin_redis()
    user = prov.department_user(t.id, department)
    if mgmt.get_user(user) is None:
        raise OpsError(f"no user {user}; nothing to revoke")
    mgmt.put_user(user, no_password=True, tags=prov.REVOKED_TAG)
    mgmt.clear_permissions(t.id, user)
    mgmt.clear_topic_permissions(t.id, user)
    closed = mgmt.close_connections(user, "OneGrid: credentials revoked")
    had_token = Tokens(r, t.id).revoke(department)
    return {"user": user, "connections_closed": closed, "token_revoked": had_token}


def status(t: Tenant, registry: Registry | None = None) -> dict:
    """Queues with their backlog, the tenant's users and tokens, limits, contract versions,
    and how many changes onboarding would make."""
    mgmt, r = Management(settings.management_url()), admin_redis()
    snap, bus = snapshot(t, mgmt, r), desired_state(t)
    plan = prov.plan(t, snap, mgmt.user, registry.departments if registry else t.departments, bus)
    queues = [
        {
            "name": q["name"],
            "type": q.get("type", "classic"),
            "ready": q.get("messages_ready", 0),
            "unacked": q.get("messages_unacknowledged", 0),
            "consumers": q.get("consumers", 0),
            "policy": q.get("policy") or "",
        }
        for q in (mgmt.queues(t.id) if snap.vhost else [])
    ]
    connections: dict[str, int] = {}
    for conn in mgmt.connections(t.id) if snap.vhost else []:
        connections[conn.get("user", "")] = connections.get(conn.get("user", ""), 0) + 1
    wanted = prov.principals(t, snap, bus)
    users = []
    for name in sorted(set(wanted) | {u for u in snap.users if u.startswith(t.id + ".")}):
        want = wanted.get(name)
        tags = snap.users.get(name, {}).get("tags", [])
        if name not in snap.users:
            state = "missing"
        elif prov.REVOKED_TAG in tags:
            state = "revoked"
        elif want is None:
            state = "not in manifest"
        elif snap.permissions.get(name) != want["permissions"]:
            state = "permissions differ"
        else:
            state = "ok"
        kind = want["kind"] if want else "?"
        dept = want["name"] if want and kind == "department" else None
        users.append(
            {
                "user": name,
                "kind": kind,
                "state": state,
                "connections": connections.get(name, 0),
                "http_token": snap.tokens.get(dept, "none") if dept else "",
            }
        )
    versions: dict[str, list[int]] = {}
    if registry is not None:
        for c in sorted(registry.events.values(), key=lambda c: (c.key, c.version)):
            if c.department in t.departments:
                versions.setdefault(c.key, []).append(c.version)
    return {
        "tenant": t.id,
        "vhost": snap.vhost is not None,
        "limits": snap.vhost_limits,
        "policies": sorted(snap.policies),
        "queues": queues,
        "users": users,
        "redis_user": (prov.redis_user(t.id) if snap.redis_user else "missing") if snap.redis_acl else "no ACLs",
        "departments": list(t.departments),
        "versions": versions,
        "pending": [str(c) for c in plan.changes],
        "notes": plan.notes,
    }


def offboard(tenant_id: str, delete_data: bool, force: bool = False) -> dict:
    """Take a tenant off the platform: its broker users, its vhost (with every queue in it),
    its Redis user and credentials; with `delete_data` also its cases, work orders, timelines
    and quarantine (every og:{tenant}:* key). Refuses while queues still hold messages,
    unless `force`."""
    if not TENANT_ID.match(tenant_id or ""):  # it becomes a key pattern: never a wildcard
        raise OpsError(f"{tenant_id!r} is not a tenant id")
    mgmt, r = Management(settings.management_url()), admin_redis()
    backlog = {q["name"]: q.get("messages", 0) for q in mgmt.queues(tenant_id) if q.get("messages", 0)}
    if backlog and not force:
        raise OpsError(
            f"{tenant_id}: {sum(backlog.values())} messages are still on the bus "
            f"({', '.join(f'{k} {v}' for k, v in sorted(backlog.items()))}); drain them, or pass --force"
        )
    users = [u["name"] for u in mgmt.users() if u["name"].startswith(tenant_id + ".")]
    for user in users:
        mgmt.delete_user(user)
    vhost = mgmt.vhost(tenant_id) is not None
    if vhost:
        mgmt.delete_vhost(tenant_id)
    redis_user = redis_acl.supported(r) and redis_acl.delete_user(r, prov.redis_user(tenant_id))
    if redis_user:
        redis_acl.persist(r)
    Tokens(r, tenant_id).clear()
    purged = store(tenant_id).purge() if delete_data else 0
    kept = 0 if delete_data else sum(1 for _ in r.scan_iter(match=f"og:\\{{{tenant_id}\\}}:*", count=1000))
    return {
        "tenant": tenant_id,
        "users_deleted": users,
        "vhost_deleted": vhost,
        "messages_dropped": sum(backlog.values()),
        "redis_user_deleted": bool(redis_user),
        "keys_deleted": purged,
        "keys_kept": kept,
    }


def replay_quarantine(
    tenant_id: str, reason: str | None = None, entry_id: str | None = None, limit: int = 10_000
) -> list[dict]:
    """Put quarantined events back into intake's queue, original bytes and headers, and
    forget them; intake judges them again (a still-bad one is quarantined again). They go
    through the default exchange, which only the operator and the services may write to, so
    the identity the event was authenticated with (kept with it) travels along."""
    st, bus = store(tenant_id), Bus(uri(tenant_id))
    replayed = []
    start = entry_id or "-"
    for entry in st.quarantined(count=1 if entry_id else limit, reason=reason, start=start):
        if entry_id and entry["id"] != entry_id:
            break
        headers = json.loads(entry["headers"])
        key = entry["routing_key"] or headers.get("ce-type") or _structured_type(entry["body"]) or "unknown.unknown"
        headers.pop(ATTEMPT, None)
        headers[ROUTING_KEY], headers[USER_ID] = key, headers.get(USER_ID) or ""
        headers[REPLAYED_FROM] = first_transport(entry.get("transport") or "amqp")
        st.unmark(entry)  # first: intake may judge the replay before this loop releases the entry
        bus.publish_raw(entry["body"], headers, entry["content_type"] or None, "", "intake.events", mandatory=True)
        st.release(entry)
        replayed.append({"id": entry["id"], "reason": entry["reason"], "routing_key": key})
    return replayed


def quarantine_record(entry: dict) -> dict:
    """A quarantine entry as JSON can carry it: the whole detail, the headers as they were kept,
    and the original bytes as text when they are UTF-8 (`body`), else base64 (`body_base64`)."""
    body: bytes = entry["body"]
    record = {k: entry.get(k, "") for k in QUARANTINE_FIELDS}
    record["headers"] = json.loads(entry["headers"]) if entry.get("headers") else {}
    record["bytes"] = len(body)
    try:
        record["body"] = body.decode("utf-8")
    except UnicodeDecodeError:
        record["body_base64"] = base64.b64encode(body).decode("ascii")
    return record


QUARANTINE_FIELDS = (
    "id",
    "reason",
    "detail",
    "department",
    "transport",
    "routing_key",
    "content_type",
    "received_at",
)


def _structured_type(body: bytes) -> str | None:
    try:
        doc = json.loads(body)
        return doc.get("type") if isinstance(doc, dict) and isinstance(doc.get("type"), str) else None
    except (ValueError, UnicodeDecodeError):
        return None


def dead_letters(tenant_id: str, queue: str | None = None, replay: bool = False, limit: int = 10_000) -> list[dict]:
    """Read (and with `replay`, move back to their queue) messages in `<queue>.dlq`."""
    names = [queue] if queue else list(topology.CONSUMED)
    found: list[dict] = []
    with Connection(uri(tenant_id)) as conn:
        bus = Bus(uri(tenant_id))
        for name in names:
            dlq = topology.dead_letter_queue(name)(conn.default_channel)
            held = []
            while len(found) < limit:
                msg = dlq.get(no_ack=False)
                if msg is None:
                    break
                headers = dict(msg.headers or {})
                found.append(
                    {
                        "queue": name,
                        "error": headers.get("x-og-error", ""),
                        "failed_at": headers.get("x-og-failed-at", ""),
                        "attempts": headers.get("x-og-attempt", 0),
                        "bytes": len(msg.body),
                    }
                )
                if replay:
                    headers.pop("x-og-attempt", None)
                    headers.pop("x-og-first-failed-at", None)  # a replay is given its retries afresh
                    bus.publish_raw(msg.body, headers, msg.content_type, "", name)
                    msg.ack()
                else:
                    held.append(msg)
            for msg in held:
                msg.reject(requeue=True)
    return found


def contract_registry(tenant_id: str, contracts_dir: str | None = None):
    """The county's registry use cases as the operator: the image's contracts (or
    `contracts_dir`) with what the county published, on its store and bus. The caller closes
    `.bus`."""
    from onegrid.adapters.calendar import CHINA
    from onegrid.adapters.redis.registry import Published
    from onegrid.app.publishing import ContractRegistry
    from onegrid.kernel.clock import CLOCK

    root = contracts_dir or settings.contracts_dir()
    published = Published(store(tenant_id).r, tenant_id)
    registry = load_strict(root, published.overlay())
    if tenant_id not in registry.tenants:
        raise ContractsInvalid(
            [Problem(tenant_id, "$", f"no such tenant; known: {', '.join(sorted(registry.tenants))}")]
        )
    return ContractRegistry(tenant_id, root, registry, published, Bus(uri(tenant_id)), CLOCK, CHINA)
