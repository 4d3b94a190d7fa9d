"""`onegrid`: the operator's command line (python -m onegrid, or the `onegrid` script)."""
from __future__ import annotations

import argparse
import sys

from onegrid import settings
from onegrid.ui import console
from onegrid.ui import table as _table


def cmd_contracts_check(args) -> int:
    from onegrid.contracts import load
    registry, problems = load(args.dir)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) in {args.dir}", file=sys.stderr)
        return 1
    print(f"ok: {len(registry.departments)} departments, {len(registry.events)} event types, "
          f"{len(registry.categories)} categories, {len(registry.tenants)} tenants")
    return 0


def cmd_tenant_list(args) -> int:
    from onegrid.contracts import load_strict
    registry = load_strict(args.dir)
    rows = [(t.id, t.name_zh, len(t.departments), sum(1 for n in t.nodes.values() if n.level == "community"),
             len(t.grids()), len(t.routing)) for t in registry.tenants.values()]
    console.print(_table("Tenants", ["tenant", "name", "departments", "communities", "grids", "routing rules"], rows))
    return 0


def cmd_tenant_onboard(args) -> int:
    from onegrid import ops
    result = ops.onboard(ops.tenant(args.tenant, args.dir), reset=args.reset)
    state = "created" if result["vhost_created"] else "already there"
    print(f"vhost {result['vhost']}: {state}; {len(result['queues'])} queues declared")
    return 0


def cmd_stats(args) -> int:
    from onegrid import ops
    stats = ops.store(args.tenant).stats()
    console.print(_table(f"{args.tenant}: counts in the store", ["counter", "value"], sorted(stats.items())))
    return 0


def cmd_quarantine_list(args) -> int:
    from onegrid import ops
    entries = ops.store(args.tenant).quarantined(count=args.limit, reason=args.reason)
    rows = [(e["id"], e["reason"], e["department"], e["transport"], len(e["body"]), e["detail"][:100]) for e in entries]
    console.print(_table(f"{args.tenant}: quarantine ({len(rows)})", ["id", "reason", "department", "via", "bytes",
                                                                        "detail"], rows))
    return 0


def cmd_quarantine_replay(args) -> int:
    from onegrid import ops
    if not (args.reason or args.id or args.all):
        print("say which: --reason R, --id ID or --all", file=sys.stderr)
        return 2
    replayed = ops.replay_quarantine(args.tenant, reason=args.reason, entry_id=args.id)
    print(f"replayed {len(replayed)} quarantined event(s) onto {args.tenant}'s intake exchange")
    return 0


def cmd_dlq(args) -> int:
    from onegrid import ops
    found = ops.dead_letters(args.tenant, queue=args.queue, replay=args.action == "replay")
    verb = "replayed" if args.action == "replay" else "held"
    rows = [(f["queue"], f["attempts"], f["failed_at"], f["error"][:100]) for f in found]
    console.print(_table(f"{args.tenant}: dead letters {verb} ({len(rows)})", ["queue", "attempts", "failed at",
                                                                                 "error"], rows))
    return 0


def cmd_simulate(args) -> int:
    from onegrid import ops
    from onegrid.simulator import Simulator
    sim = Simulator(ops.tenant(args.tenant, args.dir), ops.uri(args.tenant), seed=args.seed)
    sent = sim.run(args.events, bad_every=args.bad_every, rate=args.rate, progress=True)
    print(f"published {sent.total} events ({sent.bad} deliberately bad) to {args.tenant}")
    return 0


def cmd_demo(args) -> int:
    from onegrid.demo import run
    return run(args.tenant, args.events, args.dir)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="onegrid", description=__doc__)
    parser.add_argument("--dir", default=settings.contracts_dir(), help="contracts directory (default: %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)

    contracts = sub.add_parser("contracts", help="the contracts registry").add_subparsers(dest="sub", required=True)
    contracts.add_parser("check", help="validate every contract and manifest").set_defaults(func=cmd_contracts_check)

    tenant = sub.add_parser("tenant", help="counties on the platform").add_subparsers(dest="sub", required=True)
    tenant.add_parser("list", help="the tenant manifests").set_defaults(func=cmd_tenant_list)
    onboard = tenant.add_parser("onboard", help="create the tenant's vhost and topology (idempotent)")
    onboard.add_argument("tenant")
    onboard.add_argument("--reset", action="store_true", help="delete the tenant's bus and store first")
    onboard.set_defaults(func=cmd_tenant_onboard)

    stats = sub.add_parser("stats", help="a tenant's counters")
    stats.add_argument("tenant")
    stats.set_defaults(func=cmd_stats)

    quarantine = sub.add_parser("quarantine", help="events intake refused").add_subparsers(dest="sub", required=True)
    ql = quarantine.add_parser("list", help="list quarantined events with their reasons")
    ql.add_argument("tenant")
    ql.add_argument("--reason")
    ql.add_argument("--limit", type=int, default=100)
    ql.set_defaults(func=cmd_quarantine_list)
    qr = quarantine.add_parser("replay", help="send quarantined events through intake again")
    qr.add_argument("tenant")
    qr.add_argument("--reason")
    qr.add_argument("--id")
    qr.add_argument("--all", action="store_true")
    qr.set_defaults(func=cmd_quarantine_replay)

    dlq = sub.add_parser("dlq", help="messages whose handler failed every retry").add_subparsers(dest="action",
                                                                                                  required=True)
    for action, text in (("list", "show dead letters"), ("replay", "move dead letters back to their queue")):
        p = dlq.add_parser(action, help=text)
        p.add_argument("tenant")
        p.add_argument("--queue", help="one consumed queue, e.g. intake.events (default: all)")
        p.set_defaults(func=cmd_dlq)

    sim = sub.add_parser("simulate", help="publish a realistic mix of department events")
    sim.add_argument("tenant")
    sim.add_argument("--events", type=int, default=1000)
    sim.add_argument("--rate", type=float, default=0, help="events per second (0: as fast as confirms allow)")
    sim.add_argument("--bad-every", type=int, default=50, help="one deliberately bad event in N (0: none)")
    sim.add_argument("--seed", type=int, default=7)
    sim.set_defaults(func=cmd_simulate)

    demo = sub.add_parser("demo", help="a demo county on the real bus, end to end")
    demo.add_argument("--tenant", default="zhongyuan-qinling")
    demo.add_argument("--events", type=int, default=2000)
    demo.set_defaults(func=cmd_demo)

    args = parser.parse_args(argv)
    return args.func(args)
