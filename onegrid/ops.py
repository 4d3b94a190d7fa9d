"""Operator actions on a tenant's bus and store: onboarding, replaying quarantine and
dead letters. Shared by the CLI, the demo and the tests."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import redis
import yaml
from kombu import Connection

from onegrid import settings
from onegrid.adapters import topology
from onegrid.adapters.bus import Bus, amqp_uri
from onegrid.adapters.management import Management
from onegrid.adapters.store import Store
from onegrid.contracts import load_strict
from onegrid.tenant import Tenant


def tenant(tenant_id: str, contracts_dir: str | None = None) -> Tenant:
    registry = load_strict(contracts_dir or settings.contracts_dir())
    if tenant_id not in registry.tenants:
        raise SystemExit(f"no tenant {tenant_id!r}; known: {', '.join(sorted(registry.tenants))}")
    return registry.tenants[tenant_id]


def clone_tenant(contracts_dir: str | Path, base: str, new_id: str, dest: str | Path) -> Path:
    """A copy of the contracts tree at `dest` with tenant `new_id` cloned from `base`: a
    private county for a test or a benchmark, so they never touch a real tenant's bus."""
    root = Path(dest)
    shutil.copytree(contracts_dir, root, dirs_exist_ok=True)
    manifest = yaml.safe_load((root / "tenants" / f"{base}.yaml").read_text(encoding="utf-8"))
    manifest["tenant"] = new_id
    (root / "tenants" / f"{new_id}.yaml").write_text(yaml.safe_dump(manifest, allow_unicode=True), encoding="utf-8")
    return root


def uri(tenant_id: str) -> str:
    return amqp_uri(settings.amqp_base(), tenant_id)


def store(tenant_id: str) -> Store:
    return Store(redis.Redis.from_url(settings.redis_url()), tenant_id)


def onboard(t: Tenant, reset: bool = False) -> dict:
    """The tenant's vhost and topology on RabbitMQ; with `reset`, an empty bus and store."""
    mgmt = Management(settings.management_url())
    if reset:
        mgmt.delete_vhost(t.id)
        store(t.id).purge()
    created = mgmt.ensure_vhost(t.id, f"OneGrid tenant {t.id}: {t.name}")
    with Connection(uri(t.id)) as conn:
        queues = topology.declare(conn, t.departments)
    return {"vhost": t.id, "vhost_created": created, "queues": queues}


def replay_quarantine(tenant_id: str, reason: str | None = None, entry_id: str | None = None,
                      limit: int = 10_000) -> list[dict]:
    """Put quarantined events back on the intake exchange, original bytes and headers, and
    forget them; intake judges them again (a still-bad one is quarantined again)."""
    st, bus = store(tenant_id), Bus(uri(tenant_id))
    replayed = []
    start = entry_id or "-"
    for entry in st.quarantined(count=1 if entry_id else limit, reason=reason, start=start):
        if entry_id and entry["id"] != entry_id:
            break
        headers = json.loads(entry["headers"])
        key = entry["routing_key"] or headers.get("ce-type") or _structured_type(entry["body"]) or "unknown.unknown"
        bus.publish_raw(entry["body"], headers, entry["content_type"] or None, topology.INTAKE, key,
                        mandatory=True)
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
