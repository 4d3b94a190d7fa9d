"""Operator actions on a tenant's bus and store: onboarding and offboarding, credentials,
status, replaying quarantine and dead letters. Shared by the CLI, the demo and the tests.

Onboarding compares what the manifest asks for (onegrid.provisioning) with what the broker
and Redis have, prints the difference and applies it: a second run finds nothing to do.
Passwords and tokens are generated when a user or token is created, returned once to the
caller (the CLI prints them or writes Kubernetes Secrets) and kept nowhere in clear.
"""
from __future__ import annotations

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

from onegrid import provisioning as prov
from onegrid import settings
from onegrid.adapters import redis_acl, topology
from onegrid.adapters.auth import Tokens
from onegrid.adapters.bus import Bus, amqp_uri
from onegrid.adapters.management import Management
from onegrid.adapters.store import Store
from onegrid.contracts import Registry, load, load_strict
from onegrid.tenant import TENANT_ID, Tenant, parse_tenant


# headers of onegrid.adapters.reliable (not imported: it loads nameko and eventlet)
ATTEMPT, ROUTING_KEY, USER_ID = "x-og-attempt", "x-og-routing-key", "x-og-user-id"


class OpsError(SystemExit):
    """An operator action that cannot go on; the message says why (the CLI prints it)."""


def tenant(tenant_id: str, contracts_dir: str | None = None) -> Tenant:
    registry = load_strict(contracts_dir or settings.contracts_dir())
    if tenant_id not in registry.tenants:
        raise SystemExit(f"no tenant {tenant_id!r}; known: {', '.join(sorted(registry.tenants))}")
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
        raise OpsError(f"no manifest at {ref}")
    root = path.resolve().parent.parent
    if path.resolve().parent.name == "tenants" and (root / "departments").is_dir():
        registry, problems = load(root)
        if problems:
            raise OpsError("the contracts do not check; nothing was changed:\n" + "\n".join(map(str, problems)))
        return registry.tenants[path.stem], registry
    registry = load_strict(contracts_dir or settings.contracts_dir())
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    found, problems = parse_tenant(doc, path.stem, registry.categories, registry.departments)
    if problems:
        raise OpsError("the manifest does not check; nothing was changed:\n" +
                       "\n".join(f"{ref}: {where}: {why}" for where, why in problems))
    registry.tenants[found.id] = found
    return found, registry


def clone_tenant(contracts_dir: str | Path, base: str, new_id: str, dest: str | Path,
                 sections: dict | None = None) -> Path:
    """A copy of the contracts tree at `dest` with tenant `new_id` cloned from `base` (and the
    manifest's top-level `sections` replaced): a private county for a test or a benchmark,
    so they never touch a real tenant's bus."""
    root = Path(dest)
    shutil.copytree(contracts_dir, root, dirs_exist_ok=True)
    manifest = yaml.safe_load((root / "tenants" / f"{base}.yaml").read_text(encoding="utf-8"))
    manifest.update(sections or {}, tenant=new_id)
    (root / "tenants" / f"{new_id}.yaml").write_text(yaml.safe_dump(manifest, allow_unicode=True), encoding="utf-8")
    return root


def uri(tenant_id: str) -> str:
    return amqp_uri(settings.amqp_base(), tenant_id)


def store(tenant_id: str) -> Store:
    return Store(redis.Redis.from_url(settings.redis_url()), tenant_id)


def admin_redis() -> redis.Redis:
    """Redis as the operator (REDIS_URL): its admin user, which manages the tenants' users."""
    r = redis.Redis.from_url(settings.redis_url())
    try:
        redis_acl.supported(r)
    except redis_acl.NotAdmin as exc:
        raise OpsError(str(exc)) from None
    return r


@dataclass
class Credential:
    """A principal's new secrets, to show once or to write as a Kubernetes Secret."""
    principal: str
    kind: str   # department | service | redis
    name: str   # the department, the service, or "redis"
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
        snap.queues = {q["name"]: {"type": q.get("type", "classic"), "arguments": q.get("arguments") or {},
                                   "messages": q.get("messages", 0)} for q in mgmt.queues(t.id)}
        snap.bindings = {(b["source"], b["destination"], b["routing_key"]) for b in mgmt.bindings(t.id)
                         if b["source"] and b["destination_type"] == "queue"}
    snap.redis_acl = redis_acl.supported(r)
    if snap.redis_acl:
        snap.redis_user = redis_acl.get_user(r, prov.redis_user(t.id))
        if snap.redis_user is not None:
            snap.redis_wanted = redis_acl.normalised(r, prov.redis_rules(t.id))
    snap.tokens = Tokens(r, t.id).states(list(t.departments))
    return snap


def _tags(tags) -> list[str]:
    if isinstance(tags, str):
        return [x for x in tags.split(",") if x]
    return list(tags or [])


def onboard(t: Tenant, reset: bool = False, dry_run: bool = False, registry: Registry | None = None,
            services_amqp: str | None = None, services_redis: str | None = None) -> dict:
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
    snap = snapshot(t, mgmt, r)
    plan = prov.plan(t, snap, mgmt.user, registry.departments if registry else t.departments)
    if plan.problems:
        raise OpsError(f"{t.id}: cannot onboard:\n" + "\n".join(plan.problems))
    where = Where(services_amqp or settings.amqp_base(), services_redis or settings.redis_url())
    credentials, notes = ([], []) if dry_run else _apply(t, plan, mgmt, r, where)
    return {"vhost": t.id, "vhost_created": snap.vhost is None and not dry_run, "queues": list(prov.queues(t)),
            "changes": plan.changes, "notes": plan.notes + notes, "credentials": credentials, "dry_run": dry_run}


@dataclass(frozen=True)
class Where:
    """How the services reach the broker and Redis: written into their new credentials."""
    amqp_base: str
    redis_url: str


def _apply(t: Tenant, plan: prov.Plan, mgmt: Management, r: redis.Redis,
           where: Where) -> tuple[list[Credential], list[str]]:
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
                mgmt.set_topic_permissions(t.id, ch.data["user"], ch.data["exchange"], ch.data["write"],
                                           ch.data["read"])
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
        elif ch.kind == "token":
            user = prov.department_user(t.id, ch.name)
            cred = creds.setdefault(user, Credential(user, "department", ch.name, {"username": user,
                                                                                   "vhost": t.id}))
            cred.values["http-token"] = tokens.issue(ch.name)
    if declare:  # as the operator, whose permissions in the vhost were set above
        _declare(t, declare)
    return list(creds.values()), notes


def _apply_user(t: Tenant, ch: prov.Change, mgmt: Management, tokens: Tokens, creds: dict, where: Where) -> None:
    if ch.op == "+":
        password = new_password()
        mgmt.put_user(ch.name, password=password)
        kind, name = ch.data["kind"], ch.data["name"]
        creds[ch.name] = (service_credential(t, name, password, where) if kind == "service"
                          else Credential(ch.name, kind, name, {"username": ch.name, "password": password,
                                                                "vhost": t.id}))
    elif ch.op == "~":
        mgmt.put_user(ch.name, tags=",".join(ch.data["tags"]))
    else:
        mgmt.delete_user(ch.name)
        tokens.forget(ch.data["name"])


def service_credential(t: Tenant, service: str, password: str, where: Where) -> Credential:
    user = prov.service_user(t.id, service)
    return Credential(user, "service", service, {"username": user, "password": password,
                                                 "uri": amqp_uri(with_credentials(where.amqp_base, user, password),
                                                                 t.id)})


def redis_credential(user: str, password: str, where: Where) -> Credential:
    return Credential(user, "redis", "redis", {"username": user, "password": password,
                                               "url": with_credentials(where.redis_url, user, password)})


def new_password() -> str:
    return secrets.token_urlsafe(24)


def _declare(t: Tenant, changes: list[prov.Change]) -> None:
    """Declare the missing exchanges and queues (a declared queue is bound) as the operator."""
    names = {ch.name for ch in changes if ch.kind == "queue"} | {ch.data["queue"] for ch in changes
                                                                 if ch.kind == "binding"}
    with Connection(uri(t.id)) as conn:
        channel = conn.channel()
        try:
            for exchange in (topology.INTAKE, topology.EVENTS, topology.WORKORDERS):
                exchange(channel).declare()
            for queue in topology.all_queues(t.departments):
                if queue.name in names:
                    queue(channel).declare()
        finally:
            channel.close()


def with_credentials(url: str, user: str, password: str) -> str:
    """`url` (amqp://… or redis://…) with `user` and `password` instead of its own."""
    parsed = urlparse(url)
    host = parsed.hostname or "127.0.0.1"
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}" + (f":{parsed.port}" if parsed.port else "")
    return urlunparse(parsed._replace(netloc=netloc))


def secret_name(cred: Credential) -> str:
    """The Secret the Kubernetes overlays read (onegrid/k8s.py): bus-user-svc-<service>,
    bus-user-dept-<department>, onegrid-redis; DNS-1123, so no underscores."""
    if cred.kind == "redis":
        return "onegrid-redis"
    return "bus-user-" + ("svc-" if cred.kind == "service" else "dept-") + cred.name.replace("_", "-")


def k8s_namespace(tenant_id: str) -> str:
    return f"onegrid-{tenant_id}"


def write_k8s_secrets(tenant_id: str, credentials: list[Credential], directory: str | Path) -> list[Path]:
    """One Secret YAML per principal (mode 0600), in the tenant's namespace, for `kubectl
    apply -f`. A Secret already there is updated: a new token alone keeps the password."""
    out = Path(directory)
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    written = []
    for cred in credentials:
        name = secret_name(cred)
        path = out / f"{name}.yaml"
        data = {}
        if path.exists():
            data = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("stringData") or {}
        data.update(cred.values)
        doc = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
               "metadata": {"name": name, "namespace": k8s_namespace(tenant_id),
                            "labels": {"app.kubernetes.io/part-of": "onegrid", "onegrid.io/tenant": tenant_id}},
               "stringData": data}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(yaml.safe_dump(doc, sort_keys=False))
        os.chmod(path, 0o600)
        written.append(path)
    return written


def rotate(t: Tenant, who: str, services_amqp: str | None = None, services_redis: str | None = None,
           token_only: bool = False) -> list[Credential]:
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
    return [Credential(user, "department", who, {"username": user, "password": password, "vhost": t.id,
                                                 "http-token": token})]


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
    snap = snapshot(t, mgmt, r)
    plan = prov.plan(t, snap, mgmt.user, registry.departments if registry else t.departments)
    queues = [{"name": q["name"], "type": q.get("type", "classic"), "ready": q.get("messages_ready", 0),
               "unacked": q.get("messages_unacknowledged", 0), "consumers": q.get("consumers", 0),
               "policy": q.get("policy") or ""} for q in (mgmt.queues(t.id) if snap.vhost else [])]
    connections: dict[str, int] = {}
    for conn in mgmt.connections(t.id) if snap.vhost else []:
        connections[conn.get("user", "")] = connections.get(conn.get("user", ""), 0) + 1
    wanted = prov.principals(t, snap)
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
        users.append({"user": name, "kind": kind, "state": state, "connections": connections.get(name, 0),
                      "http_token": snap.tokens.get(dept, "none") if dept else ""})
    versions = {}
    if registry is not None:
        for c in sorted(registry.events.values(), key=lambda c: (c.key, c.version)):
            if c.department in t.departments:
                versions.setdefault(c.key, []).append(c.version)
    return {"tenant": t.id, "vhost": snap.vhost is not None, "limits": snap.vhost_limits,
            "policies": sorted(snap.policies), "queues": queues, "users": users,
            "redis_user": (prov.redis_user(t.id) if snap.redis_user else "missing") if snap.redis_acl else "no ACLs",
            "departments": list(t.departments), "versions": versions,
            "pending": [str(c) for c in plan.changes], "notes": plan.notes}


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
        raise OpsError(f"{tenant_id}: {sum(backlog.values())} messages are still on the bus "
                       f"({', '.join(f'{k} {v}' for k, v in sorted(backlog.items()))}); drain them, or pass --force")
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
    return {"tenant": tenant_id, "users_deleted": users, "vhost_deleted": vhost,
            "messages_dropped": sum(backlog.values()),
            "redis_user_deleted": bool(redis_user), "keys_deleted": purged, "keys_kept": kept}


def replay_quarantine(tenant_id: str, reason: str | None = None, entry_id: str | None = None,
                      limit: int = 10_000) -> list[dict]:
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
        bus.publish_raw(entry["body"], headers, entry["content_type"] or None, "", "intake.events", mandatory=True)
        st.release(entry)
        replayed.append({"id": entry["id"], "reason": entry["reason"], "routing_key": key})
    return replayed


def _structured_type(body: bytes) -> str | None:
    try:
        doc = json.loads(body)
        return doc.get("type") if isinstance(doc, dict) and isinstance(doc.get("type"), str) else None
    except (ValueError, UnicodeDecodeError):
        return None


def dead_letters(tenant_id: str, queue: str | None = None, replay: bool = False, limit: int = 10_000) -> list[dict]:
    """Read (and with `replay`, move back to their queue) messages in `<queue>.dlq`."""
    names = [queue] if queue else list(topology.CONSUMED)
    found = []
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
                found.append({"queue": name, "error": headers.get("x-og-error", ""),
                              "failed_at": headers.get("x-og-failed-at", ""),
                              "attempts": headers.get("x-og-attempt", 0), "bytes": len(msg.body)})
                if replay:
                    headers.pop("x-og-attempt", None)
                    bus.publish_raw(msg.body, headers, msg.content_type, "", name)
                    msg.ack()
                else:
                    held.append(msg)
            for msg in held:
                msg.reject(requeue=True)
    return found
