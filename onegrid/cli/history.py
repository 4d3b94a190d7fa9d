"""`onegrid history ...` (a county's history streams) and `onegrid whatif ...` (a change tried
on them first)."""

from __future__ import annotations

import functools
import sys
import time

from onegrid.cli.ui import console
from onegrid.cli.ui import table as _table

DAY = 86400.0


def _told(command):
    """A county without history streams is told so (exit 2), not a traceback."""

    @functools.wraps(command)
    def run(args) -> int:
        from onegrid.adapters.amqp.history import NoHistory

        try:
            return command(args)
        except NoHistory as missing:
            print(missing, file=sys.stderr)
            return 2

    return run


def _window(args):
    from onegrid.app.history import Window, parse_time

    try:
        since = parse_time(args.since) if args.since else None
        until = parse_time(args.until) if args.until else None
    except ValueError as exc:
        raise SystemExit(f"--since/--until: {exc} (an ISO time like 2026-03-01 or 2026-03-01T08:00:00+08:00)") from None
    if getattr(args, "days", None):
        since = (until or time.time()) - args.days * DAY
    return Window(since, until, getattr(args, "from_offset", None))


def _when(args) -> str:
    parts = [f"since {args.since}" if args.since else "", f"until {args.until}" if args.until else ""]
    if getattr(args, "from_offset", None) is not None:
        parts.append(f"from offset {args.from_offset}")
    if getattr(args, "days", None):
        parts[0] = f"the last {args.days:g} days"
    return " ".join(p for p in parts if p) or "all it keeps"


@_told
def cmd_history_count(args) -> int:
    from onegrid.app import history
    from onegrid.operator.history import reader

    counts = history.count(reader(args.tenant), _window(args))
    rows = [(stream, kind, dept, f"{n:,}") for (stream, kind, dept), n in sorted(counts.items())]
    rows.append(("total", "", "", f"{sum(counts.values()):,}"))
    console.print(_table(f"{args.tenant}: history, {_when(args)}", ["stream", "event", "department", "events"], rows))
    return 0


@_told
def cmd_history_show(args) -> int:
    from onegrid.app import history
    from onegrid.operator.history import reader

    stream = f"history.{args.stream}"
    rows = []
    for entry in history.entries(reader(args.tenant), stream, _window(args)):
        if args.type and entry.type != args.type:
            continue
        what = entry.data.get("reason") or entry.data.get("status") or ""
        if entry.data.get("detail"):
            what = f"{what}: {entry.data['detail']}"
        subject = entry.headers.get("ce-subject") or entry.data.get("id") or ""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(entry.at))
        rows.append((entry.offset, stamp, entry.type, entry.department, subject, what[:100]))
        if len(rows) >= args.limit:
            break
    console.print(
        _table(
            f"{args.tenant}: {stream}, {_when(args)} ({len(rows)} shown)",
            ["offset", "time (UTC)", "event", "department", "subject", "status / reason"],
            rows,
        )
    )
    return 0


@_told
def cmd_history_replay(args) -> int:
    from onegrid.app import history
    from onegrid.operator import ops
    from onegrid.operator.history import IntakeSender, reader, scratch_county

    if args.into == args.tenant:
        print("--into must name a scratch county, not the county whose history is replayed", file=sys.stderr)
        return 2
    base, _ = ops.manifest(args.tenant, args.dir)
    scratch, root = scratch_county(base, args.into, args.dir, args.scratch_dir)
    inbox = IntakeSender(scratch.id)
    try:
        with console.status("reading the history") as status:

            def progress(done: history.Replayed) -> None:
                status.update(f"replayed {done.accepted:,} accepted events into {scratch.id}")

            done = history.replay(reader(args.tenant), _window(args), inbox, scratch.id, scratch.departments, progress)
    finally:
        inbox.close()
    print(
        f"replayed {done.accepted:,} accepted events of {args.tenant} ({_when(args)}) into {scratch.id}'s intake; "
        f"{done.quarantined:,} quarantined ones were not sent"
        + (f", {done.skipped:,} of departments {scratch.id} has not enabled were skipped" if done.skipped else "")
    )
    print(f"the scratch county's contracts: {root}; run its services with CONTRACTS_DIR={root} TENANT={scratch.id}")
    print(f"remove it afterwards with: onegrid tenant offboard {scratch.id} --delete-data --force")
    return 0


def _changes(title: str, first: str, changes) -> object:
    rows = []
    for c in changes:
        if "rate" in c.what:  # a share: as a percentage, the change in points
            rows.append((c.what, f"{c.current:.1%}", f"{c.proposed:.1%}", f"{c.delta * 100:+.1f} pt"))
        else:
            rows.append((c.what, f"{c.current:,.0f}", f"{c.proposed:,.0f}", f"{c.delta:+,.0f}"))
    return _table(title, [first, "current", "proposed", "change"], rows)


@_told
def cmd_whatif_manifest(args) -> int:
    from onegrid.adapters.calendar import CHINA
    from onegrid.app import whatif
    from onegrid.domain import whatif as sim
    from onegrid.operator import ops
    from onegrid.operator.history import reader

    proposed, _ = ops.manifest(args.manifest, args.dir)
    current = ops.tenant(proposed.id, args.dir)
    window = _window(args)
    with console.status(f"reading {proposed.id}'s history ({_when(args)})"):
        result = whatif.manifest(reader(proposed.id), current, proposed, window, time.time(), CHINA)
    cur, new = result.current, result.proposed
    head = f"{proposed.id}: {args.manifest} beside the current manifest, {_when(args)}"
    console.print(_changes(head, "figure", sim.summary(cur, new)))
    orders = [c for c in sim.compare_work_orders(cur, new) if c.delta or args.all]
    console.print(_changes("work orders per department and level", "department @ level", orders))
    points = sim.compare_points(cur, new, args.top)
    if points:
        console.print(_changes(f"points per grid worker (top {args.top} changes)", "grid worker", points))
    else:
        console.print(f"no grid worker's points change ({len(cur.points)} earned points in the window)")
    return 0


@_told
def cmd_whatif_contract(args) -> int:
    from onegrid.app import whatif
    from onegrid.operator import ops
    from onegrid.operator.history import reader, with_department

    tenant, current = ops.manifest(args.tenant, args.dir)
    proposed = with_department(args.dir, args.contract)
    only = set(args.department) if args.department else None
    with console.status(f"judging {tenant.id}'s events again ({_when(args)})"):
        result = whatif.contract(reader(tenant.id), tenant, current, proposed, _window(args), only)
    console.print(
        _table(
            f"{tenant.id}: {args.contract} against {_when(args)} of events",
            ["department", "events judged", "would be refused", "newly accepted"],
            result.by_department(),
        )
    )
    rows = [(c.department, c.event_type, c.event_id, c.before, c.after, c.detail[:100]) for c in result.changed]
    console.print(
        _table(
            f"events whose verdict changes ({len(rows)})",
            ["department", "event", "event id", "now", "proposed", "why"],
            rows[: args.limit],
        )
    )
    return 1 if args.fail_on_refused and any(c.before == "accepted" for c in result.changed) else 0


def _window_args(p, days: float | None = None, offsets: bool = False) -> None:
    p.add_argument("--since", help="ISO time (UTC unless it says otherwise): from this event time on")
    p.add_argument("--until", help="ISO time: before this event time")
    p.add_argument("--days", type=float, default=days, help="the last N days (before --until, or now)")
    if offsets:
        p.add_argument(
            "--from-offset", type=int, help="from this offset of the stream on (as `history show` lists them)"
        )


def register(sub) -> None:
    hist = sub.add_parser("history", help="the bus's own history: a county's history streams").add_subparsers(
        dest="sub", required=True
    )
    hc = hist.add_parser("count", help="events kept per stream, type and department")
    hc.add_argument("tenant")
    _window_args(hc)
    hc.set_defaults(func=cmd_history_count)
    hs = hist.add_parser("show", help="the events of one stream, oldest first")
    hs.add_argument("tenant")
    hs.add_argument("--stream", choices=("intake", "lifecycle"), default="intake")
    hs.add_argument("--type", help="only this event type (e.g. intake.quarantined, case.closed)")
    hs.add_argument("--limit", type=int, default=50)
    _window_args(hs, offsets=True)
    hs.set_defaults(func=cmd_history_show)
    hr = hist.add_parser("replay", help="send a window's accepted events into a scratch county's intake")
    hr.add_argument("tenant")
    hr.add_argument("--into", required=True, help="the scratch county's id (made and onboarded if new)")
    hr.add_argument("--scratch-dir", default="run/scratch/contracts", help="where its contracts go")
    _window_args(hr, offsets=True)
    hr.set_defaults(func=cmd_history_replay)

    whatif = sub.add_parser("whatif", help="a change tried on the county's history first").add_subparsers(
        dest="sub", required=True
    )
    wm = whatif.add_parser("manifest", help="a proposed tenant manifest's tables beside the current ones")
    wm.add_argument("manifest", help="the proposed manifest (a tenant manifest file)")
    wm.add_argument("--top", type=int, default=10, help="grid workers shown (biggest changes)")
    wm.add_argument("--all", action="store_true", help="every department and level, changed or not")
    _window_args(wm, days=30)
    wm.set_defaults(func=cmd_whatif_manifest)
    wc = whatif.add_parser("contract", help="which events a proposed department contract refuses or accepts")
    wc.add_argument("tenant")
    wc.add_argument("contract", help="the proposed department contract (as contracts/departments/<d>.yaml)")
    wc.add_argument("--department", action="append", help="only this department's events (repeatable)")
    wc.add_argument("--limit", type=int, default=100, help="changed events listed")
    wc.add_argument("--fail-on-refused", action="store_true", help="exit 1 when an accepted event would be refused")
    _window_args(wc, days=30)
    wc.set_defaults(func=cmd_whatif_contract)
