"""`onegrid archive <tenant>`: fold closed cases into their compact archived form now
(onegrid.adapters.redis.archive), rather than when supervision's sweep reaches them; with
`--all`, every closed case still in its open form, whenever it closed (the migration of
cases closed before the archive existed)."""

from __future__ import annotations

import json
import time


def cmd_archive(args) -> int:
    from onegrid.operator import ops

    store = ops.store(args.tenant)
    if args.all:
        counts = store.archive_all_closed()
    else:
        counts = {}
        while True:  # the due queue in pages, until none is left that closed before the cut-off
            page = store.archive_due(time.time() - args.closed_for, limit=500)
            for k, v in page.items():
                counts[k] = counts.get(k, 0) + v
            if sum(page.values()) < 500:
                break
    print(json.dumps({"tenant": args.tenant, **counts}, sort_keys=True))
    return 1 if counts.get("altered") else 0


def register(sub) -> None:
    p = sub.add_parser(
        "archive",
        help="fold closed cases into the compact archived form (every read still answered)",
        description=__doc__,
    )
    p.add_argument("tenant")
    p.add_argument(
        "--closed-for",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="only cases closed at least this long ago (default: every closed case due)",
    )
    p.add_argument("--all", action="store_true", help="every closed case in its open form (migration)")
    p.set_defaults(func=cmd_archive)
