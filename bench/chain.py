"""What the hash-chained timeline (onegrid.domain.timeline) costs per entry: the CPU to chain
one line where it is appended and to verify it later, and the bytes each entry and each case
record carry for it. Lines are the ones a closed case's timeline really holds (registration,
dispatch, accept, resolve with evidence, start and resolve of the case, verify, the citizen's
word), so the figures are per realistic entry. Pure CPU: no Redis, no bus (the Redis side of
the cost, one more field read and written in the same transaction, is in bench.memory's
figures). Prints a table; writes nothing.

    .venv/bin/python -m bench.chain            # CHAIN_ROUNDS=20000 by default
"""

from __future__ import annotations

import json
import os
import time

from onegrid.cli.ui import console, table
from onegrid.domain import timeline as tl

CASE = "c-3f9a0c2b7e1d4a55"
TENANT = "zhongyuan-qinling"
AT = "2026-12-04T21:14:29.123Z"
LINES = [
    {"at": AT, "actor": "market_regulation/citizen", "action": "register", "to_state": "registered",
     "note": "market_regulation.food_safety_hazard_found"},
    {"at": AT, "actor": "routing", "action": "dispatch", "from_state": "registered", "to_state": "dispatched",
     "note": "market_regulation at community 410102-001-001 (food_safety)",
     "work_order": "w-3f9a0c2b7e1d4a55-market_regulation"},
    {"at": AT, "actor": "market_regulation/duty-17", "action": "accept", "from_state": "dispatched",
     "to_state": "accepted", "note": "on my way", "work_order": "w-3f9a0c2b7e1d4a55-market_regulation"},
    {"at": AT, "actor": "market_regulation", "action": "start", "from_state": "dispatched",
     "to_state": "in_progress"},
    {"at": AT, "actor": "market_regulation/duty-17", "action": "resolve", "from_state": "accepted",
     "to_state": "resolved", "note": "stall closed, goods seized",
     "work_order": "w-3f9a0c2b7e1d4a55-market_regulation",
     "evidence": tl.evidence_digest(["https://evidence.example.gov.cn/2026/12/04/3f9a0c2b-1.jpg"])},
    {"at": AT, "actor": "departments", "action": "resolve", "from_state": "in_progress", "to_state": "resolved"},
    {"at": AT, "actor": "grid-worker-12", "action": "verify", "from_state": "resolved", "to_state": "verified"},
    {"at": AT, "actor": "citizen", "action": "satisfied", "from_state": "verified", "to_state": "closed"},
]  # fmt: skip


def _size(value: dict) -> int:
    return len(json.dumps(value, ensure_ascii=False).encode())  # as the store writes it


def main() -> int:
    rounds = int(os.environ.get("CHAIN_ROUNDS", "20000"))
    started = time.perf_counter()
    for _ in range(rounds):
        head = tl.Head.start(TENANT, CASE)
        for line in LINES:
            _, head = tl.link(head, line)
    link_us = (time.perf_counter() - started) / (rounds * len(LINES)) * 1e6

    head, entries = tl.Head.start(TENANT, CASE), []
    for line in LINES:
        entry, head = tl.link(head, line)
        entries.append(entry)
    started = time.perf_counter()
    for _ in range(rounds):
        assert tl.verify(TENANT, CASE, entries, str(head)).intact
    verify_us = (time.perf_counter() - started) / (rounds * len(LINES)) * 1e6

    plain = sum(_size({k: v for k, v in e.items() if k not in ("n", "prev", "evidence")}) for e in entries)
    chained = sum(_size(e) for e in entries)
    evidence = sum(len('"evidence": ""') + 64 for e in entries if "evidence" in e)
    head_field = len("chainhead") + len(str(head))
    rows = [
        ("chain one line (canonical JSON + sha256)", f"{link_us:.1f} µs"),
        ("verify, per entry", f"{verify_us:.1f} µs"),
        ("entries in a closed case's timeline", str(len(entries))),
        ("timeline JSON, unchained / chained", f"{plain} / {chained} bytes"),
        ("added per entry (n, prev; evidence hash where evidence)", f"{(chained - plain) / len(entries):.0f} bytes"),
        ("of which evidence hashes, per case", f"{evidence} bytes"),
        ("chainhead field on the case record", f"{head_field} bytes (field name and value)"),
        ("added per closed case (entries + head)", f"{chained - plain + head_field} bytes"),
    ]
    console.print(table(f"timeline hash chain ({rounds:,} rounds of {len(LINES)} lines)", ["", "cost"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
