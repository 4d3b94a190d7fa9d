"""A case's timeline as a hash chain, so no one can quietly rewrite it.

Each entry carries its place (`n`, from 0) and the hash of the entry before it (`prev`; the
first entry carries the case's genesis, a hash of its county and id, so a timeline cannot be
moved to another case). An entry that records evidence also carries the hash of the evidence
as recorded (`evidence`: the URLs, or content hashes, in the order given). An entry's hash is
the SHA-256 of its canonical form: JSON with sorted keys, no spaces, UTF-8 (not ASCII
escapes), hex-encoded, so anyone can recompute it with `sha256sum`. The chain head, `n:hash`
(how many entries, and the hash of the last), is kept on the case record as `chainhead` and
published with each lifecycle event (`ce-chainhead`), so the bus's history holds it too.

`verify` recomputes the chain and names the first entry that was changed, removed, inserted
or moved; against heads published earlier it also finds a chain rewritten consistently from
some entry on (which the record alone cannot show: whoever rewrites every hash and the head
on the record is caught only by what the bus kept).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from onegrid.kernel.envelope import CHAINHEAD_PATTERN

CHANGED, REMOVED, INSERTED, REORDERED, REWRITTEN = "changed", "removed", "inserted", "reordered", "rewritten"
HEAD_PATTERN = CHAINHEAD_PATTERN  # <entries>:<sha256 hex of the last>, as events carry it
_HEAD = re.compile(HEAD_PATTERN)


def canonical(value: Any) -> bytes:
    """The bytes hashed: JSON, keys sorted, no whitespace, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def digest(value: Any) -> str:
    return hashlib.sha256(canonical(value)).hexdigest()


def genesis(tenant: str, case_id: str) -> str:
    """What the first entry of a case's timeline names as its previous one."""
    return digest({"case": case_id, "tenant": tenant})


def evidence_digest(evidence: Iterable[str]) -> str:
    """The hash of evidence as recorded (URLs or content hashes, in their order)."""
    return digest(list(evidence))


@dataclass(frozen=True)
class Head:
    """How many entries a timeline has and the hash of the last one (the genesis when none)."""

    length: int
    digest: str

    def __str__(self) -> str:
        return f"{self.length}:{self.digest}"

    @classmethod
    def start(cls, tenant: str, case_id: str) -> Head:
        return cls(0, genesis(tenant, case_id))

    @classmethod
    def parse(cls, text: str) -> Head:
        m = _HEAD.match(text.strip() if isinstance(text, str) else "")
        if not m:
            raise ValueError(f"chain head {text!r} is not <entries>:<64 hex digits of sha256>")
        return cls(int(m.group(1)), m.group(2))


def recorded(tenant: str, case_id: str, text: str | None) -> Head:
    """The head a case record keeps; a case recorded before timelines were chained has none
    and starts a chain (verify then shows where its unchained lines are)."""
    return Head.parse(text) if text else Head.start(tenant, case_id)


def link(head: Head, line: Mapping[str, Any]) -> tuple[dict, Head]:
    """The entry `line` becomes when appended after `head`, and the head after it."""
    entry = {**line, "n": head.length, "prev": head.digest}
    return entry, Head(head.length + 1, digest(entry))


@dataclass(frozen=True)
class Finding:
    """Where a timeline was altered: the first entry (by position as stored) that is not what
    the chain says, and how."""

    index: int
    kind: str  # changed | removed | inserted | reordered | rewritten
    detail: str


@dataclass(frozen=True)
class Verdict:
    tenant: str
    case_id: str
    entries: int
    head: Head  # recomputed from the entries as stored
    recorded: Head | None  # what the case record says
    checked: tuple[Head, ...]  # published heads compared with the entries
    finding: Finding | None

    @property
    def intact(self) -> bool:
        return self.finding is None

    def as_dict(self) -> dict:
        out: dict[str, Any] = {
            "tenant": self.tenant,
            "case_id": self.case_id,
            "intact": self.intact,
            "entries": self.entries,
            "head": str(self.head),
            "recorded_head": str(self.recorded) if self.recorded else None,
            "published_heads_checked": [str(h) for h in self.checked],
        }
        if self.finding:
            out["finding"] = {"index": self.finding.index, "kind": self.finding.kind, "detail": self.finding.detail}
        return out


def verify(
    tenant: str,
    case_id: str,
    entries: list[dict],
    recorded: str | None,
    published: Iterable[Head] = (),
) -> Verdict:
    """Recompute the chain of `entries` (as stored) and compare it with the head on the case
    record (its text, `chainhead`) and with heads published on the bus; the earliest
    alteration found is reported."""
    hashes = [digest(e) for e in entries]
    expected = [genesis(tenant, case_id), *hashes]  # expected[i]: what entry i must name as prev
    head = Head(len(entries), expected[-1])
    try:
        on_record = Head.parse(recorded) if recorded else None
        tail = _against_record(head, on_record)
    except ValueError:
        on_record = None
        tail = Finding(max(head.length - 1, 0), CHANGED, f"the case record's chain head {recorded!r} was edited")
    findings = [f for f in (_first_break(entries, expected, on_record), tail) if f]
    checked = tuple(sorted(set(published), key=lambda h: h.length))
    if (rewritten := _against_published(checked, expected)) is not None:
        found, last = rewritten
        # the bus's heads put an alteration somewhere in a range of entries; a break the chain
        # itself shows within (or before) that range says exactly where, and is kept instead
        if not any(f.index <= last for f in findings):
            findings.append(found)
    first = min(findings, key=lambda f: f.index) if findings else None
    return Verdict(tenant, case_id, len(entries), head, on_record, checked, first)


def _first_break(entries: list[dict], expected: list[str], recorded: Head | None) -> Finding | None:
    for i, e in enumerate(entries):
        if e.get("prev") != expected[i] or e.get("n") != i:
            return _classify(entries, expected, i, recorded)
    return None


def _classify(entries: list[dict], expected: list[str], i: int, recorded: Head | None) -> Finding:
    """Entry i does not follow entry i-1: say why, from what entry i and i+1 name."""
    e, hashes = entries[i], expected[1:]
    prev, n = e.get("prev"), e.get("n")
    if prev in hashes[i:]:
        j = hashes.index(prev, i)
        return Finding(i, REORDERED, f"entry {i} was written after the entry now at {j}, but stands before it")
    if i >= 1 and prev == expected[i - 1]:
        return Finding(i - 1, INSERTED, f"entry {i - 1} is not in the chain: entry {i} follows the one before it")
    after = entries[i + 1] if i + 1 < len(entries) else None
    if after is not None and after.get("prev") == expected[i]:
        if after.get("n") == i:
            return Finding(i, INSERTED, f"entry {i} is not in the chain: entry {i + 1} follows the one before it")
        return Finding(i, CHANGED, f"entry {i}'s place or link was edited")
    if isinstance(n, int) and not isinstance(n, bool) and n > i:
        return Finding(i, REMOVED, f"{n - i} entr{'y' if n - i == 1 else 'ies'} missing before the entry now at {i}")
    if n != i or i == 0:
        return Finding(i, CHANGED, f"entry {i} is not the one written there (its place or link differs)")
    successor = after.get("prev") if after is not None else (recorded.digest if recorded else None)
    if successor is not None and successor != hashes[i]:  # entry i is not what came next either
        return Finding(i, CHANGED, f"entry {i}'s link was edited")
    return Finding(i - 1, CHANGED, f"entry {i - 1} differs from what entry {i} recorded when it was written")


def _against_record(head: Head, recorded: Head | None) -> Finding | None:
    """The tail: the case record's head says how long the timeline was and how it ended."""
    if recorded is None:
        if head.length == 0:
            return None
        return Finding(head.length - 1, CHANGED, "the case record carries no chain head to check the last entry by")
    if recorded.length > head.length:
        missing = recorded.length - head.length
        return Finding(head.length, REMOVED, f"{missing} entr{'y' if missing == 1 else 'ies'} missing at the end")
    if recorded.length < head.length:
        return Finding(recorded.length, INSERTED, f"entries from {recorded.length} on were added after the head")
    if recorded.digest != head.digest:
        return Finding(head.length - 1, CHANGED, f"entry {head.length - 1} differs from the head on the case record")
    return None


def _against_published(heads: tuple[Head, ...], expected: list[str]) -> tuple[Finding, int] | None:
    """A head published on the bus is a prefix the timeline must still have: the first one it
    does not have puts the alteration after the last one it has (and with the finding, the
    last entry it can be in)."""
    since = 0
    for h in heads:
        if h.length >= len(expected):
            missing = h.length - (len(expected) - 1)
            last = len(expected) - 1
            return Finding(last, REMOVED, f"the bus saw {h.length} entries; {missing} are gone"), last
        if expected[h.length] != h.digest:
            return Finding(
                since,
                REWRITTEN,
                f"entries {since}..{h.length - 1} differ from the chain the bus saw (head {h}); "
                "the chain was recomputed over them",
            ), h.length - 1
        since = h.length
    return None
