"""`onegrid`: the operator's command line (python -m onegrid, or the `onegrid` script)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from onegrid.cli import archive, history, people, report
from onegrid.cli.ui import console
from onegrid.cli.ui import table as _table
from onegrid.kernel import settings


def cmd_contracts_check(args) -> int:
    from onegrid.app.registry import load
    from onegrid.contracts import release

    registry, problems = load(args.dir)
    lock = release.read(args.dir)
    # released versions must not change, new ones are held to the last released; checked on a
    # tree that loads (a version the loader refused would look deleted)
    if lock is not None and not problems:
        problems = release.check(registry, registry.common, lock, _department_file(args.dir))
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) in {args.dir}", file=sys.stderr)
        return 1
    print(
        f"ok: {len(registry.departments)} departments, {len(registry.events)} event types, "
        f"{len(registry.categories)} categories, {len(registry.tenants)} tenants"
    )
    return 0


def _department_file(root: str):
    return lambda department: str(Path(root).name + f"/departments/{department}.yaml")


def cmd_contracts_release(args) -> int:
    """Record the versions not yet released in the release lock, once the whole tree checks."""
    from onegrid.app.registry import load
    from onegrid.contracts import release

    registry, problems = load(args.dir)
    lock = release.read(args.dir)
    common_changed = False
    if lock is not None and not problems and getattr(args, "common", False):
        # a deliberate release of changed common fields, refused when any released version's mode breaks
        breaks = release.common_breaks(registry, lock.common, registry.common)
        for b in breaks:
            print(f"contracts/common.yaml: case_fields: {b}", file=sys.stderr)
        if breaks:
            return 1
        if lock.common != registry.common:
            print(
                "released the changed common case fields: " + "; ".join(release.changes(lock.common, registry.common))
            )
            common_changed = True
        lock.common = registry.common
    if lock is not None and not problems:
        problems = release.check(registry, registry.common, lock, _department_file(args.dir))
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) in {args.dir}: nothing released", file=sys.stderr)
        return 1
    new, added = release.record(registry, registry.common, lock)
    if not added and lock is not None and not common_changed:
        print(f"nothing new: {len(new.versions)} version(s) released")
        return 0
    path = release.write(args.dir, new)
    for key, version in added:
        print(f"released {key} v{version}")
    print(f"wrote {path}: {len(new.versions)} version(s) released")
    return 0


def cmd_contracts_usage(args) -> int:
    """Events per version and department, as the county's registry counts them: the query
    behind "retire v1 once no department sends it"."""
    import time

    from onegrid.operator import ops

    reg = ops.contract_registry(args.tenant, args.dir)
    try:
        usage = reg.usage(args.key)
    finally:
        reg.bus.close()
    now = time.time()
    rows = [
        (u["version"], u["department"], u["events"], f"{(now - u['last_seen']) / 86400:.1f} days ago")
        for u in usage["uses"]
    ]
    title = f"{args.tenant}: {args.key} (a version is in use if sent within {usage['recent_use_days']} days)"
    console.print(_table(title, ["version", "department", "events", "last sent"], rows))
    return 0


def cmd_contracts_retire(args) -> int:
    """Stop accepting a version in one county: what the registry's retire route does, refused
    while a department still sends it."""
    from onegrid.domain.lifecycle import TransitionRefused
    from onegrid.operator import ops

    reg = ops.contract_registry(args.tenant, args.dir)
    try:
        change = reg.retire(args.key, args.version, args.actor)
    except (TransitionRefused, LookupError) as exc:
        print(f"refused: {str(exc).strip(chr(39))}", file=sys.stderr)
        return 1
    finally:
        reg.bus.close()
    print(f"{args.key} v{args.version}: {change.outcome} in {args.tenant} (revision {change.revision})")
    return 0


def cmd_tenant_list(args) -> int:
    from onegrid.app.registry import load_strict

    registry = load_strict(args.dir)
    onboarded = _onboarded()
    rows = [
        (
            t.id,
            t.name_zh,
            len(t.departments),
            sum(1 for n in t.nodes.values() if n.level == "community"),
            len(t.grids()),
            len(t.routing),
            "?" if onboarded is None else "yes" if t.id in onboarded else "no",
        )
        for t in registry.tenants.values()
    ]
    console.print(
        _table("Tenants", ["tenant", "name", "departments", "communities", "grids", "routing rules", "onboarded"], rows)
    )
    return 0


def _onboarded() -> set[str] | None:
    """The vhosts on the broker (None when its management API does not answer)."""
    from onegrid.adapters.amqp.management import Management

    try:
        return {v["name"] for v in Management(settings.management_url()).vhosts()}
    except Exception:
        return None


def cmd_tenant_onboard(args) -> int:
    from onegrid.operator import ops

    t, registry = ops.manifest(args.tenant, args.dir)
    plan = ops.onboard(t, dry_run=True, registry=registry) if not args.reset else None
    if plan is not None and not plan["changes"]:
        print(
            f"{t.id}: no changes (vhost, {len(plan['queues'])} queues, users, permissions, limits, policies, "
            f"Redis user and tokens are as the manifest says)"
        )
        _print_notes(plan["notes"])
        return 0
    if plan is not None:
        print(f"{t.id}: {len(plan['changes'])} change(s)")
        for change in plan["changes"]:
            print(f"  {change}")
        _print_notes(plan["notes"])
        if args.dry_run:
            print("dry run: nothing was changed")
            return 0
        existing = not any(c.kind == "vhost" and c.op == "+" for c in plan["changes"])
        if (
            existing
            and sys.stdin.isatty()
            and not args.yes
            and input("apply these changes? [y/N] ").strip().lower() != "y"
        ):
            print("nothing was changed")
            return 1
    result = ops.onboard(
        t, reset=args.reset, registry=registry, services_amqp=args.services_amqp, services_redis=args.services_redis
    )
    print(f"{t.id}: applied {len(result['changes'])} change(s); vhost {t.id}, {len(result['queues'])} queues")
    _print_notes([n for n in result["notes"] if plan is None or n not in plan["notes"]])
    _hand_over(t.id, result["credentials"], args.k8s_secrets)
    return 0


def _print_notes(notes) -> None:
    for note in notes:
        print(f"note: {note}")


def _hand_over(tenant_id: str, credentials, k8s_dir: str | None) -> None:
    """New secrets: shown once on stdout, or written as Kubernetes Secrets (never logged)."""
    from onegrid.operator import ops

    if not credentials:
        return
    if k8s_dir:
        for path in ops.write_k8s_secrets(tenant_id, credentials, k8s_dir):
            print(f"wrote {path} (mode 0600)")
        print(f"kubectl apply -f {k8s_dir}   # then delete the files")
        return
    print("\nnew credentials, shown once (OneGrid keeps no copy in clear): store them now")
    for cred in credentials:
        print(f"  {cred.principal} ({cred.kind} {cred.name})")
        for key, value in cred.values.items():
            print(f"    {key:<11} {value or '(the provider gives it: set it in the service environment)'}")


def cmd_tenant_status(args) -> int:
    from onegrid.operator import ops

    t, registry = ops.manifest(args.tenant, args.dir)
    st = ops.status(t, registry)
    if not st["vhost"]:
        print(f"{t.id} is not onboarded (no vhost): onegrid tenant onboard {t.id}")
    limits = ", ".join(f"{k} {v}" for k, v in sorted(st["limits"].items())) or "none"
    print(
        f"{t.id}: vhost {'yes' if st['vhost'] else 'no'}; limits {limits}; "
        f"policies {', '.join(st['policies']) or 'none'}; Redis user {st['redis_user']}"
    )
    console.print(
        _table(
            f"{t.id}: queues",
            ["queue", "type", "ready", "unacked", "consumers", "policy"],
            [(q["name"], q["type"], q["ready"], q["unacked"], q["consumers"], q["policy"]) for q in st["queues"]],
        )
    )
    console.print(
        _table(
            f"{t.id}: users",
            ["user", "kind", "state", "connections", "http token"],
            [(u["user"], u["kind"], u["state"], u["connections"], u["http_token"]) for u in st["users"]],
        )
    )
    console.print(
        _table(
            f"{t.id}: contracts of its {len(st['departments'])} departments",
            ["event type", "versions"],
            [(k, ", ".join(map(str, v))) for k, v in st["versions"].items()],
        )
    )
    if st["pending"]:
        print(f"{len(st['pending'])} change(s) pending: onegrid tenant onboard {t.id} --dry-run")
    else:
        print("in line with the manifest: onboarding would change nothing")
    _print_notes(st["notes"])
    return 0


def cmd_tenant_rotate(args) -> int:
    from onegrid.operator import ops

    t, _ = ops.manifest(args.tenant, args.dir)
    creds = ops.rotate(
        t, args.who, services_amqp=args.services_amqp, services_redis=args.services_redis, token_only=args.token_only
    )
    what = "a new HTTP token" if args.token_only else "new credentials"
    print(
        f"{t.id}: {what} for {args.who}; the old ones no longer work"
        + (" (its connections were closed)" if args.who in t.departments and not args.token_only else "")
    )
    _hand_over(t.id, creds, args.k8s_secrets)
    return 0


def cmd_tenant_revoke(args) -> int:
    from onegrid.operator import ops

    t, _ = ops.manifest(args.tenant, args.dir)
    done = ops.revoke(t, args.department)
    print(
        f"{t.id}: revoked {done['user']}: no password, no permissions, {done['connections_closed']} "
        f"connection(s) closed; HTTP token {'revoked' if done['token_revoked'] else 'was not active'}. "
        f"`onegrid tenant rotate {t.id} {args.department}` reinstates it with new credentials"
    )
    return 0


def cmd_tenant_offboard(args) -> int:
    from onegrid.operator import ops

    done = ops.offboard(args.tenant, delete_data=args.delete_data, force=args.force)
    vhost = f"the vhost ({done['messages_dropped']} message(s) dropped)" if done["vhost_deleted"] else "no vhost"
    print(
        f"{done['tenant']}: deleted {len(done['users_deleted'])} broker user(s), {vhost}, "
        f"{'the' if done['redis_user_deleted'] else 'no'} Redis user, and the HTTP tokens"
    )
    if args.delete_data:
        print(f"deleted {done['keys_deleted']} Redis key(s): cases, work orders, timelines, quarantine")
    else:
        print(
            f"kept {done['keys_kept']} Redis key(s) og:{{{done['tenant']}}}:* (cases, work orders, timelines, "
            f"quarantine); `onegrid tenant offboard {done['tenant']} --delete-data` deletes them"
        )
    print(f"the manifest contracts/tenants/{done['tenant']}.yaml is left for you to remove in a reviewed change")
    return 0


def _tenant_in_registry(args):
    """(registry, tenant) for `args.tenant`, or None when there is no such tenant (said on stderr)."""
    from onegrid.app.registry import load_strict

    registry = load_strict(args.dir)
    if args.tenant not in registry.tenants:
        print(f"no tenant {args.tenant!r}; known: {', '.join(sorted(registry.tenants))}", file=sys.stderr)
        return None
    return registry, registry.tenants[args.tenant]


def cmd_contracts_asyncapi(args) -> int:
    from onegrid.contracts import asyncapi

    found = _tenant_in_registry(args)
    if found is None:
        return 2
    registry, tenant = found
    text = asyncapi.render(asyncapi.document(tenant, registry))
    if not args.out:
        sys.stdout.write(text)
        return 0
    _write(args.out, text)
    return 0


def cmd_openapi(args) -> int:
    from pathlib import Path

    from onegrid.operator import openapi

    found = _tenant_in_registry(args)
    if found is None:
        return 2
    if not args.out and not args.service:
        print("name a --service to print its document, or --out DIR to write them all", file=sys.stderr)
        return 2
    registry, tenant = found
    for service in [args.service] if args.service else openapi.SERVICES:
        text = openapi.render(openapi.document(service, tenant, registry))
        if args.out:
            _write(Path(args.out) / args.tenant / f"{service}.json", text)
        else:
            sys.stdout.write(text)
    return 0


def _write(path, text: str) -> None:
    """Write `text` to `path` unless it holds it already; say which."""
    from pathlib import Path

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    unchanged = out.exists() and out.read_text(encoding="utf-8") == text
    if not unchanged:
        out.write_text(text, encoding="utf-8")
    print(f"{'unchanged' if unchanged else 'wrote'} {out}")


def cmd_stats(args) -> int:
    from onegrid.operator import ops

    stats = ops.store(args.tenant).stats()
    console.print(_table(f"{args.tenant}: counts in the store", ["counter", "value"], sorted(stats.items())))
    return 0


def cmd_quarantine_list(args) -> int:
    import json

    from onegrid.operator import ops

    entries = ops.store(args.tenant).quarantined(count=args.limit, reason=args.reason)
    if args.json:
        print(json.dumps([ops.quarantine_record(e) for e in entries], ensure_ascii=False, indent=2))
        return 0
    width = None if args.full else DETAIL_WIDTH
    rows = [
        (e["id"], e["reason"], e["department"], e["transport"], len(e["body"]), clip(e["detail"], width))
        for e in entries
    ]
    console.print(
        _table(
            f"{args.tenant}: quarantine ({len(rows)})", ["id", "reason", "department", "via", "bytes", "detail"], rows
        )
    )
    if any(len(e["detail"]) > DETAIL_WIDTH for e in entries) and not args.full:
        print("a detail ending in … is cut: --full shows it whole, --json with the original bytes")
    return 0


DETAIL_WIDTH = 100


def clip(text: str, width: int | None) -> str:
    """`text`, cut to `width` characters with a visible … when it is longer (None: whole)."""
    return text if width is None or len(text) <= width else text[: width - 1] + "…"


def cmd_quarantine_replay(args) -> int:
    from onegrid.operator import ops

    if not (args.reason or args.id or args.all):
        print("say which: --reason R, --id ID or --all", file=sys.stderr)
        return 2
    replayed = ops.replay_quarantine(args.tenant, reason=args.reason, entry_id=args.id)
    print(f"replayed {len(replayed)} quarantined event(s) onto {args.tenant}'s intake exchange")
    return 0


def cmd_dlq(args) -> int:
    from onegrid.operator import ops

    found = ops.dead_letters(args.tenant, queue=args.queue, replay=args.action == "replay")
    verb = "replayed" if args.action == "replay" else "held"
    rows = [(f["queue"], f["attempts"], f["failed_at"], f["error"][:100]) for f in found]
    console.print(
        _table(f"{args.tenant}: dead letters {verb} ({len(rows)})", ["queue", "attempts", "failed at", "error"], rows)
    )
    return 0


def cmd_simulate(args) -> int:
    from onegrid.operator import ops

    Simulator = _harness("sim.simulator").Simulator
    sim = Simulator(ops.tenant(args.tenant, args.dir), ops.uri(args.tenant), seed=args.seed)
    sent = sim.run(args.events, bad_every=args.bad_every, rate=args.rate, progress=True)
    print(f"published {sent.total} events ({sent.bad} deliberately bad) to {args.tenant}")
    return 0


def _harness(module: str):
    """The demo harness (sim/) lives beside the package in a source checkout; the image
    leaves it out, so say so instead of a traceback."""
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and e.name.split(".")[0] == "sim":
            raise SystemExit(
                "onegrid: the demo harness (sim/) is not installed here; run `make demo` from a source checkout"
            ) from None
        raise


def cmd_demo(args) -> int:
    run = _harness("sim.demo").run
    return run(args.tenant, args.events, args.dir)


def cmd_scenario(args) -> int:
    run = _harness(f"sim.{args.name}").run
    return run(args.dir)


def cmd_tenant_render_k8s(args) -> int:
    import warnings

    warnings.filterwarnings("ignore", message=r"\s+Eventlet is deprecated")  # the services are imported
    from onegrid.app.registry import load_strict
    from onegrid.operator import k8s

    registry = load_strict(args.dir)
    ids = sorted(registry.tenants) if args.all else args.tenants
    unknown = [t for t in ids if t not in registry.tenants]
    if unknown or not ids:
        print(
            f"say which tenants (or --all); unknown: {', '.join(unknown) or '-'}; "
            f"known: {', '.join(sorted(registry.tenants))}",
            file=sys.stderr,
        )
        return 2
    if args.out and len(ids) != 1:
        print("--out takes one tenant", file=sys.stderr)
        return 2
    rendered = k8s.render([registry.tenants[t] for t in ids], registry.tenants, args.deploy_dir, args.out)
    changed = rendered.write()
    for path in sorted(rendered.files):
        print(f"{'wrote' if path in changed else 'unchanged'} {path}")
    return 0


def cmd_tenant_draw_geography(args) -> int:
    from onegrid.operator import geography, ops

    t, _ = ops.manifest(args.tenant, args.dir)
    try:
        lon, lat = (float(x) for x in args.centre.split(","))
        doc = geography.draw(t, lon, lat, args.area_km2, args.crs)
    except ValueError as exc:
        print(f"draw-geography: {exc} (--centre is LON,LAT in WGS84)", file=sys.stderr)
        return 2
    out = Path(args.dir) / "tenants" / f"{t.id}.geojson"
    geography.write(doc, out)
    print(f"wrote {out}: {len(t.grids())} grids, {len(doc['features'])} features ({args.crs})")
    if not isinstance(t.source.get("geography"), dict):
        print(f"name it in the manifest: geography: {{file: {out.name}}}")
    return 0


def cmd_open311(args) -> int:
    from onegrid.adapters.redis.open311 import Clients
    from onegrid.domain.open311 import CLIENT_ID
    from onegrid.operator import ops

    t, _ = ops.manifest(args.tenant, args.dir)
    clients = Clients(ops.admin_redis(), t.id)
    if args.action == "clients":
        console.print(_table(f"Open311 clients of {t.id}", ["client", "state"], list(clients.states().items())))
        return 0
    if not args.client or not CLIENT_ID.match(args.client):
        print("open311: name the client: ^[a-z][a-z0-9-]{1,39}$ (e.g. hotline-12345)", file=sys.stderr)
        return 2
    if args.action == "revoke-client":
        print(f"{args.client}: {'revoked' if clients.revoke(args.client) else 'had no active key'}")
        return 0
    print(f"api_key of {args.client} for {t.id} (shown once; a new one retires the old):")
    print(clients.issue(args.client))
    return 0


def cmd_tenant_secrets(args) -> int:
    import warnings

    warnings.filterwarnings("ignore", message=r"\s+Eventlet is deprecated")  # the services are imported
    from onegrid.operator import k8s, ops

    bus = k8s.BusRef(args.bus_name, args.bus_namespace)
    sys.stdout.write(k8s.dump(k8s.secrets(ops.tenant(args.tenant, args.dir), bus)))
    return 0


def cmd_tenant_certs(args) -> int:
    """Client certificates for department systems (mutual TLS on 5671), from the county CA."""
    import yaml

    from onegrid.operator import certs, desired, ops

    t = ops.tenant(args.tenant, args.dir)
    depts = args.department or list(t.departments)
    unknown = [d for d in depts if d not in t.departments]
    if unknown:
        print(f"{t.id} has no department {', '.join(unknown)}; it has: {', '.join(t.departments)}", file=sys.stderr)
        return 2
    try:
        if args.init_ca and not (Path(args.ca_dir) / certs.CA_CERT).exists():
            for path in certs.save_ca(certs.make_ca(f"OneGrid {t.id} county CA"), args.ca_dir):
                print(f"wrote {path}", file=sys.stderr)
        ca = certs.load_ca(args.ca_dir)
    except certs.CAError as e:
        print(f"certs: {e}", file=sys.stderr)
        return 2
    issued = [certs.issue(ca, desired.department_user(t.id, d), d, t.id, args.days) for d in depts]
    if args.out:
        for cert in issued:
            for path in certs.write_issued(cert, Path(args.out) / t.id)[:2]:
                print(f"wrote {path}")
        print(f"wrote {Path(args.out) / t.id / 'ca.pem'} (the county CA, for the department's trust store)")
        return 0
    # on stdout, shown once: Secrets for `kubectl create -f -` (the keys are kept nowhere else)
    docs = [certs.tls_secret(c, ops.k8s_namespace(t.id), t.id) for c in issued]
    sys.stdout.write("---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs))
    return 0


def cmd_serve(args) -> int:
    """Become the service's `nameko run` process (exec: signals reach nameko directly)."""
    from onegrid.catalogue import SERVICES

    argv = [sys.executable, "-m", "nameko", "run", "--config", args.config, SERVICES[args.service]]
    os.execv(sys.executable, argv)
    return 0  # not reached


def cmd_notify(args) -> int:
    from onegrid.adapters.channels.notifications import Outbox
    from onegrid.adapters.redis import connect
    from onegrid.operator import ops

    ops.admin_redis()  # refuses a county's Redis user, as every operator command does
    outbox = Outbox(connect.client(settings.redis_url(), decode_responses=True), args.tenant)
    if args.action == "replay":
        n = outbox.replay(args.id or None)
        print(f"replayed {n} parked notification(s) of {args.tenant}; the notify service delivers them")
        return 0
    rows = [
        (p["id"], p["kind"], p["channel"], p["address"], p["attempts"], p.get("parked_at", ""), p["reason"][:100])
        for p in outbox.parked(args.limit)
    ]
    console.print(
        _table(
            f"{args.tenant}: parked notifications ({len(rows)})",
            ["id", "kind", "channel", "to", "attempts", "parked at", "reason"],
            rows,
        )
    )
    return 0


def _service_names() -> list[str]:
    from onegrid.catalogue import SERVICES

    return sorted(SERVICES)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="onegrid", description=__doc__)
    parser.add_argument("--dir", default=settings.contracts_dir(), help="contracts directory (default: %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)

    contracts = sub.add_parser("contracts", help="the contracts registry").add_subparsers(dest="sub", required=True)
    contracts.add_parser(
        "check", help="validate every contract and manifest, and the released versions against the release lock"
    ).set_defaults(func=cmd_contracts_check)
    crel = contracts.add_parser(
        "release", help="record the versions not yet released in the release lock (contracts/released.json)"
    )
    crel.add_argument(
        "--common",
        action="store_true",
        help="also release changed common case fields, when no released version's compatibility mode breaks",
    )
    crel.set_defaults(func=cmd_contracts_release)
    cusage = contracts.add_parser("usage", help="events per version and department of an event type in a county")
    cusage.add_argument("tenant")
    cusage.add_argument("key", help="<department>.<type>")
    cusage.set_defaults(func=cmd_contracts_usage)
    retire = contracts.add_parser(
        "retire", help="stop accepting a version in a county (refused while a department still sends it)"
    )
    retire.add_argument("tenant")
    retire.add_argument("key", help="<department>.<type>")
    retire.add_argument("version", type=int)
    retire.add_argument("--actor", required=True, help="who retires it (recorded with the change)")
    retire.set_defaults(func=cmd_contracts_retire)
    aapi = contracts.add_parser("asyncapi", help="the tenant's AsyncAPI 3 document, for department integrators")
    aapi.add_argument("tenant")
    aapi.add_argument("--out", help="write it here (e.g. docs/asyncapi/<tenant>.yaml) instead of stdout")
    aapi.set_defaults(func=cmd_contracts_asyncapi)

    oapi = sub.add_parser("openapi", help="the OpenAPI 3.1 documents of the services' HTTP surfaces for a tenant")
    oapi.add_argument("tenant")
    oapi.add_argument("--service", choices=_service_names(), help="one service (default: all, with --out)")
    oapi.add_argument("--out", help="write <out>/<tenant>/<service>.json (e.g. --out docs/openapi) instead of stdout")
    oapi.set_defaults(func=cmd_openapi)

    tenant = sub.add_parser("tenant", help="counties on the platform").add_subparsers(dest="sub", required=True)
    tenant.add_parser("list", help="the tenant manifests").set_defaults(func=cmd_tenant_list)
    onboard = tenant.add_parser(
        "onboard",
        help="provision the tenant from its manifest: vhost, limits, policies, "
        "topology, users, Redis user, tokens (idempotent; shows the diff)",
    )
    onboard.add_argument("tenant", help="a tenant id, or the manifest's path (contracts/tenants/<tenant>.yaml)")
    onboard.add_argument("--dry-run", action="store_true", help="show the changes, apply nothing")
    onboard.add_argument("--yes", action="store_true", help="apply changes to an onboarded tenant without asking")
    onboard.add_argument(
        "--k8s-secrets",
        metavar="DIR",
        help="write new credentials as Kubernetes Secrets in DIR instead of printing them",
    )
    onboard.add_argument("--reset", action="store_true", help="delete the tenant's bus and store first (demo, tests)")
    tenant_secret_options = [onboard]
    onboard.set_defaults(func=cmd_tenant_onboard)
    tstatus = tenant.add_parser("status", help="queues and backlog, users and tokens, contract versions")
    tstatus.add_argument("tenant")
    tstatus.set_defaults(func=cmd_tenant_status)
    rotate = tenant.add_parser(
        "rotate", help="new credentials for a department (password and HTTP token), svc.<service> or redis"
    )
    rotate.add_argument("tenant")
    rotate.add_argument("who", help="a department, svc.<service>, or redis")
    rotate.add_argument("--k8s-secrets", metavar="DIR", help="write them as Kubernetes Secrets in DIR")
    rotate.add_argument(
        "--token-only", action="store_true", help="a department's HTTP token only, not its broker password"
    )
    tenant_secret_options.append(rotate)
    rotate.set_defaults(func=cmd_tenant_rotate)
    for p in tenant_secret_options:
        p.add_argument(
            "--services-amqp",
            metavar="BASE",
            help="the broker as the services reach it, for their AMQP uri (default: $ONEGRID_AMQP_BASE)",
        )
        p.add_argument(
            "--services-redis",
            metavar="URL",
            help="Redis as the services reach it, for their Redis url (default: $REDIS_URL)",
        )
    revoke = tenant.add_parser("revoke", help="cut a department off: password, permissions, connections, token")
    revoke.add_argument("tenant")
    revoke.add_argument("department")
    revoke.set_defaults(func=cmd_tenant_revoke)
    offboard = tenant.add_parser("offboard", help="remove the tenant's users, vhost and credentials")
    offboard.add_argument("tenant")
    keep = offboard.add_mutually_exclusive_group(required=True)
    keep.add_argument("--keep-data", action="store_true", help="keep its cases, work orders and quarantine in Redis")
    keep.add_argument("--delete-data", action="store_true", help="delete every og:{<tenant>}:* key too")
    offboard.add_argument("--force", action="store_true", help="even while queues still hold messages")
    offboard.set_defaults(func=cmd_tenant_offboard)

    render = tenant.add_parser(
        "render-k8s", help="write the tenants' Kubernetes overlays (and the generated base and platform files)"
    )
    render.add_argument("tenants", nargs="*")
    render.add_argument("--all", action="store_true", help="every tenant in the contracts directory")
    render.add_argument("--out", help="the overlay's folder (default: <deploy-dir>/overlays/<tenant>)")
    render.add_argument("--deploy-dir", default="deploy/k8s")
    render.set_defaults(func=cmd_tenant_render_k8s)
    drawg = tenant.add_parser(
        "draw-geography",
        help="draw plausible grid boundaries and offices for a tenant (contracts/tenants/<tenant>.geojson)",
    )
    drawg.add_argument("tenant")
    drawg.add_argument("--centre", required=True, help="LON,LAT (WGS84) of the county's middle")
    drawg.add_argument("--area-km2", type=float, required=True, help="the county's area")
    drawg.add_argument("--crs", default="WGS84", choices=["WGS84", "GCJ-02"], help="the file's coordinates")
    drawg.set_defaults(func=cmd_tenant_draw_geography)
    tsecrets = tenant.add_parser(
        "secrets", help="print the tenant's Secrets with fresh passwords (for kubectl create -f -)"
    )
    tsecrets.add_argument("tenant")
    tsecrets.add_argument("--bus-name", default="onegrid-bus")
    tsecrets.add_argument("--bus-namespace", default="onegrid-system")
    tsecrets.set_defaults(func=cmd_tenant_secrets)

    tcerts = tenant.add_parser(
        "certs",
        help="client certificates for department systems (TLS on 5671) from the county CA: "
        "Secrets on stdout, shown once, or PEM files with --out",
    )
    tcerts.add_argument("tenant")
    tcerts.add_argument("--department", action="append", help="one department (repeatable; default: all)")
    tcerts.add_argument("--ca-dir", required=True, help="the county CA's folder (ca.pem, ca.key)")
    tcerts.add_argument("--init-ca", action="store_true", help="make the county CA in --ca-dir if it has none")
    tcerts.add_argument("--out", metavar="DIR", help="write <DIR>/<tenant>/<department>.pem/.key and ca.pem")
    tcerts.add_argument("--days", type=int, default=397, help="validity of the certificates (default 397)")
    tcerts.set_defaults(func=cmd_tenant_certs)

    serve = sub.add_parser("serve", help="run one service (what the container image runs)")
    serve.add_argument("service", choices=_service_names())
    serve.add_argument(
        "--config",
        default=settings.nameko_config(),
        help="nameko config (default: $ONEGRID_CONFIG or %(default)s)",
    )
    serve.set_defaults(func=cmd_serve)

    report.add_parser(sub)

    stats = sub.add_parser("stats", help="a tenant's counters")
    stats.add_argument("tenant")
    stats.set_defaults(func=cmd_stats)

    quarantine = sub.add_parser("quarantine", help="events intake refused").add_subparsers(dest="sub", required=True)
    ql = quarantine.add_parser("list", help="list quarantined events with their reasons")
    ql.add_argument("tenant")
    ql.add_argument("--reason")
    ql.add_argument("--limit", type=int, default=100)
    qfmt = ql.add_mutually_exclusive_group()
    qfmt.add_argument("--full", action="store_true", help="the whole detail, not cut to 100 characters")
    qfmt.add_argument(
        "--json", action="store_true", help="every field as JSON, with the original bytes (text, or base64)"
    )
    ql.set_defaults(func=cmd_quarantine_list)
    qr = quarantine.add_parser("replay", help="send quarantined events through intake again")
    qr.add_argument("tenant")
    qr.add_argument("--reason")
    qr.add_argument("--id")
    qr.add_argument("--all", action="store_true")
    qr.set_defaults(func=cmd_quarantine_replay)

    dlq = sub.add_parser("dlq", help="messages whose handler failed every retry").add_subparsers(
        dest="action", required=True
    )
    for action, text in (("list", "show dead letters"), ("replay", "move dead letters back to their queue")):
        p = dlq.add_parser(action, help=text)
        p.add_argument("tenant")
        p.add_argument("--queue", help="one consumed queue, e.g. intake.events (default: all)")
        p.set_defaults(func=cmd_dlq)

    o311 = sub.add_parser("open311", help="the Open311 door's client applications and their api keys")
    o311.add_argument("action", choices=["add-client", "revoke-client", "clients"])
    o311.add_argument("tenant")
    o311.add_argument("client", nargs="?", help="the client application, e.g. hotline-12345 or citizen-app")
    o311.set_defaults(func=cmd_open311)

    sim = sub.add_parser("simulate", help="publish a realistic mix of department events")
    sim.add_argument("tenant")
    sim.add_argument("--events", type=int, default=1000)
    sim.add_argument("--rate", type=float, default=0, help="events per second (0: as fast as confirms allow)")
    sim.add_argument("--bad-every", type=int, default=50, help="one deliberately bad event in N (0: none)")
    sim.add_argument("--seed", type=int, default=7)
    sim.set_defaults(func=cmd_simulate)

    demo = sub.add_parser("demo", help="a demo county on the real bus, end to end")
    demo.add_argument("--tenant", default="zhongyuan-qinling")
    demo.add_argument("--events", type=int, default=1000)
    demo.set_defaults(func=cmd_demo)
    scenario = sub.add_parser("scenario", help="replay a seed county's story on the real bus (docs/onboarding.md)")
    scenario.add_argument("name", choices=["jifeng"], help="jifeng: the manhole whistle to six bodies")
    scenario.set_defaults(func=cmd_scenario)

    notify = sub.add_parser("notify", help="notifications that could not be delivered").add_subparsers(
        dest="action", required=True
    )
    np_ = notify.add_parser("parked", help="list parked notifications with their reasons")
    np_.add_argument("tenant")
    np_.add_argument("--limit", type=int, default=100)
    np_.set_defaults(func=cmd_notify)
    nr = notify.add_parser("replay", help="deliver parked notifications again (all, or --id ID ...)")
    nr.add_argument("tenant")
    nr.add_argument("--id", action="append", help="a notification id from `notify parked` (repeatable)")
    nr.set_defaults(func=cmd_notify)

    people.register(sub)
    history.register(sub)
    archive.register(sub)

    args = parser.parse_args(argv)
    from onegrid.contracts import ContractsInvalid

    try:
        return args.func(args)
    except ContractsInvalid as invalid:  # the same `file: path: reason` list as `contracts check`
        for problem in invalid.problems:
            print(problem, file=sys.stderr)
        print(f"{len(invalid.problems)} problem(s) in the contracts; nothing was changed", file=sys.stderr)
        return 2
