"""Released contract versions are immutable: the release lock beside the contracts.

`contracts/released.json` records, for every released version of an event type, its
canonical definition (summary, category, own fields: the parsed YAML, so whitespace,
comments and key order do not count, any change to a field does) and the sha256 of its
canonical JSON, and the common case fields every version carries. `check` compares the
working tree with the lock: a released version that changed or disappeared is a problem, and
a version not yet released is checked for compatibility against the LAST RELEASED version
(every released one in a _TRANSITIVE mode) under the mode its contract declares, not only
against its neighbour in the tree. `record` adds the unreleased versions (`onegrid contracts
release`). Pure: the CLI reads and writes the file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from onegrid.contracts import compat
from onegrid.contracts.registry import EventContract, Problem, Registry

LOCK_FILE = "released.json"
ABOUT = (
    "Released contract versions (onegrid contracts release); `onegrid contracts check` fails when one "
    "changes. Generated: do not edit by hand."
)


def canonical_json(value) -> str:
    """One text per value: keys sorted, no spaces, UTF-8 as it is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(value) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


def definition(contract: EventContract) -> dict:
    """What is released of a version: everything a department's system depends on."""
    out: dict = {"summary": contract.summary, "fields": contract.own_fields}
    if contract.category is not None:
        out["category"] = contract.category
    return out


def version_id(key: str, version: int) -> str:
    return f"{key}:{version}"


@dataclass(frozen=True)
class Released:
    key: str
    version: int
    definition: dict
    sha256: str


@dataclass
class Lock:
    common: dict = field(default_factory=dict)  # the common case fields when last released
    versions: dict[tuple[str, int], Released] = field(default_factory=dict)

    def last(self, key: str, below: int) -> list[Released]:
        """The released versions of `key` below `below`, oldest first."""
        return sorted((r for (k, v), r in self.versions.items() if k == key and v < below), key=lambda r: r.version)

    def as_json(self) -> dict:
        return {
            "about": ABOUT,
            "common": {"sha256": digest(self.common), "fields": self.common},
            "versions": {
                version_id(r.key, r.version): {"sha256": r.sha256, "definition": r.definition}
                for r in sorted(self.versions.values(), key=lambda r: (r.key, r.version))
            },
        }


def parse(doc: dict) -> Lock:
    lock = Lock(common=(doc.get("common") or {}).get("fields") or {})
    for vid, entry in (doc.get("versions") or {}).items():
        key, _, version = vid.rpartition(":")
        lock.versions[(key, int(version))] = Released(key, int(version), entry["definition"], entry["sha256"])
    return lock


def read(root: str | Path) -> Lock | None:
    """The lock beside the contracts under `root`; None when nothing was ever released."""
    path = Path(root) / LOCK_FILE
    if not path.exists():
        return None
    return parse(json.loads(path.read_text(encoding="utf-8")))


def write(root: str | Path, lock: Lock) -> Path:
    path = Path(root) / LOCK_FILE
    path.write_text(json.dumps(lock.as_json(), ensure_ascii=False, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path


def changes(old, new, path: str = "") -> list[str]:
    """Where two parsed definitions differ, as `path: old → new` (`added`, `removed`)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for name in sorted(set(old) | set(new), key=str):
            where = f"{path}.{name}" if path else str(name)
            if name not in new:
                out.append(f"{where}: removed")
            elif name not in old:
                out.append(f"{where}: added {canonical_json(new[name])}")
            else:
                out += changes(old[name], new[name], where)
        return out
    if old != new or type(old) is not type(new):
        return [f"{path or '$'}: {canonical_json(old)} → {canonical_json(new)}"]
    return []


def check(registry: Registry, common: dict, lock: Lock, file_of) -> list[Problem]:
    """Every way the tree breaks the lock. `common`: the common case fields as loaded;
    `file_of(department)`: the file a department's contract is in, for the message."""
    problems = []
    if lock.common and canonical_json(common) != canonical_json(lock.common):
        what = "; ".join(changes(lock.common, common))
        breaks = common_breaks(registry, lock.common, common)
        how = (
            "it breaks " + "; ".join(breaks)
            if breaks
            else "compatible with every released version's mode: release it deliberately with "
            "`onegrid contracts release --common`"
        )
        problems.append(
            Problem(
                "contracts/common.yaml",
                "case_fields",
                f"changed since release, and every released version carries them: {what} ({how})",
            )
        )
    for (key, version), released in sorted(lock.versions.items()):
        department = key.split(".", 1)[0]
        contract = registry.events.get((key, version))
        if contract is None:
            problems.append(
                Problem(
                    file_of(department),
                    f"{key} v{version}",
                    "was released and is gone: released versions are never deleted from the contracts "
                    "(departments may still send it); retire it per county through the registry instead",
                )
            )
            continue
        now = definition(contract)
        if digest(now) != released.sha256:
            what = "; ".join(changes(released.definition, now)) or "its canonical hash differs"
            problems.append(
                Problem(
                    file_of(department),
                    f"{key} v{version}",
                    f"released version changed ({what}); a released version is immutable: "
                    f"add version {max(registry.versions(key)) + 1} instead",
                )
            )
    for (key, version), contract in sorted(registry.events.items()):
        if (key, version) in lock.versions:
            continue
        for direction, text, released in against_released(lock, contract):
            problems.append(
                Problem(
                    file_of(contract.department),
                    f"{key} v{version}",
                    f"{direction}: {text} (against released version {released.version})",
                )
            )
        newest = max((v for k, v in lock.versions if k == key), default=0)
        if version < newest:
            problems.append(
                Problem(
                    file_of(contract.department),
                    f"{key} v{version}",
                    f"is not released and below the last released version {newest}: a new version comes after it",
                )
            )
    return problems


def common_breaks(registry: Registry, old: dict, new: dict) -> list[str]:
    """How a change of the common case fields breaks the released versions that carry them, in
    each one's own compatibility mode (none: the change may be released on purpose, as a
    required field made optional is in BACKWARD mode)."""
    modes = sorted({c.compatibility for c in registry.events.values() if c.compatibility != "NONE"})
    return [f"{mode}: {text}" for mode in modes for _, text, _ in compat.findings(old, new, mode)]


def against_released(lock: Lock, contract: EventContract) -> list[tuple[str, str, Released]]:
    """(direction, text, released version) for every break of an unreleased version against
    the last released one (every released one in a _TRANSITIVE mode), in its own mode."""
    earlier = lock.last(contract.key, contract.version)
    if not earlier or contract.compatibility == "NONE":
        return []
    if not compat.transitive(contract.compatibility):
        earlier = earlier[-1:]
    out = []
    for released in earlier:
        for direction, text, _ in compat.findings(
            released.definition.get("fields") or {}, contract.own_fields, contract.compatibility
        ):
            out.append((direction, text, released))
    return out


def record(registry: Registry, common: dict, lock: Lock | None) -> tuple[Lock, list[tuple[str, int]]]:
    """The lock with every version of the tree not yet in it, and which those were."""
    lock = lock or Lock()
    added = []
    out = Lock(common=common, versions=dict(lock.versions))
    for (key, version), contract in sorted(registry.events.items()):
        if (key, version) not in out.versions:
            defn = definition(contract)
            out.versions[(key, version)] = Released(key, version, defn, digest(defn))
            added.append((key, version))
    return out, added
