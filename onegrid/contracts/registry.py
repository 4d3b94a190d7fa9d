"""Loading every contract file into one registry, collecting problems as file, path, reason.

A tenant manifest also has sections the layers above own (the domain's lifecycle, scoring and
notify settings): the loader checks them with the `sections` its caller passes, so contracts
depend on the kernel only. onegrid/app/registry.py passes the domain's; load through it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from marshmallow import Schema

from onegrid.contracts import compat
from onegrid.contracts.fields import check_field, check_fields, compile_schema
from onegrid.kernel.geography import parse_geography
from onegrid.kernel.tenant import Tenant, parse_tenant

# libyaml's safe loader when PyYAML has it (10x faster: services load again on every published change)
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
DEPARTMENT_ID = re.compile(r"^[a-z][a-z0-9_]{1,31}$")
GEOGRAPHY_FILE = re.compile(r"^[a-z][a-z0-9-]{2,40}\.geojson$")
EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]{2,47}$")
EVENT_KEYS = {"type", "version", "summary", "category", "fields", "compatibility"}
DEPARTMENT_KEYS = {"department", "name", "name_zh", "events", "compatibility"}

# Every (path, reason) problem in one section of a tenant manifest (a map), given the tenant
# parsed from it (None when the manifest's own part is broken).
SectionCheck = Callable[[dict, Tenant | None], list[tuple[str, str]]]


@dataclass(frozen=True)
class Problem:
    file: str
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.path}: {self.reason}"


class ContractsInvalid(Exception):
    def __init__(self, problems: list[Problem]):
        super().__init__("\n".join(map(str, problems)))
        self.problems = problems


@dataclass(frozen=True)
class EventContract:
    department: str
    type: str
    version: int
    summary: str
    category: str | None  # None: the reporter chooses, in the `category` field
    fields: dict
    schema: Schema = field(compare=False, repr=False)
    own_fields: dict = field(default_factory=dict, compare=False, repr=False)  # without the common ones
    compatibility: str = compat.DEFAULT  # how this version was checked against the earlier ones

    @property
    def key(self) -> str:
        """`<department>.<type>`: the routing key and the CloudEvents type."""
        return f"{self.department}.{self.type}"


@dataclass
class Registry:
    categories: dict[str, dict] = field(default_factory=dict)
    departments: dict[str, dict] = field(default_factory=dict)
    events: dict[tuple[str, int], EventContract] = field(default_factory=dict)
    tenants: dict[str, Tenant] = field(default_factory=dict)
    common: dict = field(default_factory=dict)  # contracts/common.yaml's case fields, as loaded
    retired: frozenset[tuple[str, int]] = frozenset()  # versions a county's registry retired

    def versions(self, key: str) -> list[int]:
        return sorted(v for k, v in self.events if k == key)

    def event_types(self, department: str) -> list[EventContract]:
        return [c for c in self.events.values() if c.department == department]


@dataclass(frozen=True)
class Overlay:
    """What a county's registry service published on top of the image's files (kept in Redis):
    event type versions per department (entries as in a department file), tenant manifests
    that replace the file's (or add a county), and retired versions, which the county no
    longer accepts."""

    events: dict[str, tuple[dict, ...]] = field(default_factory=dict)
    manifests: dict[str, dict] = field(default_factory=dict)
    retired: frozenset[tuple[str, int]] = frozenset()
    revision: int = 0  # bumped on every change; what a service compares to know it is current


NOTHING = Overlay()
PUBLISHED = "registry"  # the `file` of a problem in what the registry service published


def manifest_doc(root: str | Path, tenant_id: str, overlay: Overlay = NOTHING) -> dict:
    """A county's manifest as it applies: the published one, else the image's file."""
    if tenant_id in overlay.manifests:
        return overlay.manifests[tenant_id]
    return yaml.load((Path(root) / "tenants" / f"{tenant_id}.yaml").read_text(encoding="utf-8"), Loader=SAFE_LOADER)


def load_strict(root: str | Path, sections: Sequence[SectionCheck], overlay: Overlay = NOTHING) -> Registry:
    registry, problems = load(root, sections, overlay)
    if problems:
        raise ContractsInvalid(problems)
    return registry


def load(
    root: str | Path, sections: Sequence[SectionCheck], overlay: Overlay = NOTHING
) -> tuple[Registry, list[Problem]]:
    """The registry and every problem in the files under `root`, with `overlay` (what a
    registry service published) on top; `sections` check the parts of a tenant manifest other
    layers own (required: a caller cannot skip them by forgetting)."""
    root = Path(root)
    registry, problems = Registry(), []

    def read(path: Path):
        name = str(path.relative_to(root.parent)) if root.parent in path.parents else str(path)
        try:
            return name, _parsed(path)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            problems.append(Problem(name, "$", f"cannot be read as YAML: {exc}".replace("\n", " ")))
            return name, None

    name, doc = read(root / "categories.yaml")
    for i, cat in enumerate((doc or {}).get("categories") or []):
        if not isinstance(cat, dict) or not isinstance(cat.get("id"), str):
            problems.append(Problem(name, f"categories[{i}]", "needs an id"))
        elif set(cat) - {"id", "name", "name_zh"}:
            problems.append(
                Problem(
                    name,
                    f"categories[{i}]",
                    f"unknown keys {sorted(set(cat) - {'id', 'name', 'name_zh'})}"
                    "; a category has id, name and name_zh (quote text with commas)",
                )
            )
        else:
            registry.categories[cat["id"]] = cat
    if doc is not None and not registry.categories:
        problems.append(Problem(name, "categories", "lists no category"))

    name, doc = read(root / "common.yaml")
    common = (doc or {}).get("case_fields") or {}
    common_problems = [Problem(name, p, r) for p, r in check_fields(common, "case_fields")]
    problems += common_problems
    if common_problems:  # nothing compiles on a broken base; the department files are still checked
        common = {}
    registry.common = common

    for path in sorted((root / "departments").glob("*.yaml")):
        name, doc = read(path)
        published = overlay.events.get(path.stem)
        if published and isinstance(doc, dict) and isinstance(doc.get("events"), list):
            doc = {**doc, "events": doc["events"] + list(published)}
            name = f"{name} + {PUBLISHED}"
        if doc is not None:
            problems += _load_department(registry, doc, path.stem, name, common)

    files = {p.stem: p for p in (root / "tenants").glob("*.yaml")}
    for stem in sorted(set(files) | set(overlay.manifests)):
        if stem in overlay.manifests:
            name, doc = f"{PUBLISHED}: tenants/{stem}", overlay.manifests[stem]
        else:
            name, doc = read(files[stem])
        if doc is None:
            continue
        tenant, found = parse_tenant(doc, stem, registry.categories, registry.departments)
        if isinstance(doc, dict):
            for check in sections:
                found = found + check(doc, tenant)
        if tenant is not None and isinstance(doc, dict) and "geography" in doc:
            found = found + _geography(tenant, doc["geography"], root / "tenants")
        problems += [Problem(name, p, r) for p, r in found]
        if tenant is not None:
            registry.tenants[tenant.id] = tenant
    # retired after loading: the versions around one are still checked against it
    registry.retired = frozenset(v for v in overlay.retired if v in registry.events)
    for gone in registry.retired:
        del registry.events[gone]
    return registry, problems


# A big manifest (Taiyuan's 9,375 grids: 1.3 MB, a second of YAML) parsed once per process for
# as long as the file is unchanged: the CLI's documents, the tests and the registry service
# load the tree many times. The parsed document is shared, so it is read, never changed.
BIG_FILE = 256 * 1024
_PARSED: dict[str, tuple[tuple[int, int], object]] = {}  # path -> ((mtime, size), document)


def _parsed(path: Path):
    stat = path.stat()
    if stat.st_size < BIG_FILE:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=SAFE_LOADER)
    where, version = str(path.resolve()), (stat.st_mtime_ns, stat.st_size)
    cached = _PARSED.get(where)
    if cached is None or cached[0] != version:
        cached = _PARSED[where] = (version, yaml.load(path.read_text(encoding="utf-8"), Loader=SAFE_LOADER))
    return cached[1]


def _geography(tenant: Tenant, spec, folder: Path) -> list[tuple[str, str]]:
    """Read the boundaries file the manifest's `geography: {file: …}` names (beside it) into
    `tenant.geography`; its problems are reported under `geography.file`."""
    file = spec.get("file") if isinstance(spec, dict) else None
    if not isinstance(file, str) or not GEOGRAPHY_FILE.match(file) or set(spec) != {"file"}:
        return [("geography", "must be {file: <name>.geojson}, a file beside the manifest")]
    try:
        doc = json.loads((folder / file).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return [("geography.file", f"{file} cannot be read as JSON: {exc}")]
    geography, problems = parse_geography(doc, tenant)
    tenant.geography = geography
    return [("geography.file", f"{file}: {p}: {r}") for p, r in problems]


def _load_department(registry: Registry, doc, stem: str, name: str, common: dict) -> list[Problem]:
    problems: list[Problem] = []

    def bad(path, reason):
        problems.append(Problem(name, path, reason))

    if not isinstance(doc, dict):
        bad("$", "a department contract is a map")
        return problems
    dept = doc.get("department")
    if not isinstance(dept, str) or not DEPARTMENT_ID.match(dept):
        bad("department", "must match ^[a-z][a-z0-9_]{1,31}$")
        return problems
    if dept != stem:
        bad("department", f"{dept!r} must equal the file name {stem!r}")
    for key in ("name", "name_zh"):
        if not isinstance(doc.get(key), str):
            bad(key, "is required")
    for key in doc:
        if key not in DEPARTMENT_KEYS:
            bad(key, f"unknown key; one of {', '.join(sorted(DEPARTMENT_KEYS))}")
    dept_mode = doc.get("compatibility", compat.DEFAULT)
    if dept_mode not in compat.MODES:
        bad("compatibility", f"must be one of {', '.join(compat.MODES)}")
        dept_mode = compat.DEFAULT
    events = doc.get("events")
    if not isinstance(events, list) or len(events) < 2:
        bad("events", "a department declares at least two event types")
        events = events if isinstance(events, list) else []
    registry.departments[dept] = {k: doc.get(k) for k in ("department", "name", "name_zh")}
    loaded: dict[str, list[tuple[int, int]]] = {}  # type -> [(version, index in events)]
    for i, ev in enumerate(events):
        where = f"events[{i}]"
        if not isinstance(ev, dict):
            bad(where, "an event type is a map")
            continue
        before = len(problems)
        for key in ev:
            if key not in EVENT_KEYS:
                bad(f"{where}.{key}", f"unknown key; one of {', '.join(sorted(EVENT_KEYS))}")
        etype, version = ev.get("type"), ev.get("version")
        if not isinstance(etype, str) or not EVENT_TYPE.match(etype):
            bad(f"{where}.type", "must match ^[a-z][a-z0-9_]{2,47}$")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            bad(f"{where}.version", "must be an integer >= 1")
        if not isinstance(ev.get("summary"), str):
            bad(f"{where}.summary", "is required")
        mode = ev.get("compatibility", dept_mode)
        if mode not in compat.MODES:
            bad(f"{where}.compatibility", f"must be one of {', '.join(compat.MODES)}")
        own = ev.get("fields") or {}
        if not isinstance(own, dict):
            bad(f"{where}.fields", "must be a map of field name to field spec")
            continue
        for field_path, reason in check_fields(own, f"{where}.fields") if own else []:
            bad(field_path, reason)
        for clash in sorted(set(own) & set(common)):
            bad(f"{where}.fields.{clash}", "redeclares a common case field (contracts/common.yaml)")
        problems += _check_category(ev, own, registry.categories, name, where)
        if (f"{dept}.{etype}", version) in registry.events:
            bad(where, f"{etype} version {version} is declared twice")
        if len(problems) == before:
            # nothing was wrong with this event type, so it has a type, a version and a mode
            assert isinstance(etype, str) and isinstance(version, int) and isinstance(mode, str)
            specs = {**common, **own}
            registry.events[(f"{dept}.{etype}", version)] = EventContract(
                dept,
                etype,
                version,
                ev["summary"],
                ev.get("category"),
                specs,
                compile_schema(specs, name=f"{dept}.{etype}.v{version}"),
                own,
                mode,
            )
            loaded.setdefault(etype, []).append((version, i))
    for etype, versions in loaded.items():
        problems += _check_evolution(registry, dept, etype, sorted(versions), name)
    return problems


def _check_evolution(
    registry: Registry, dept: str, etype: str, versions: list[tuple[int, int]], name: str
) -> list[Problem]:
    """Each version against the one before it (or, in a _TRANSITIVE mode, every earlier one),
    under the newer version's compatibility mode."""
    problems = []
    for n, (version, index) in enumerate(versions):
        new = registry.events[(f"{dept}.{etype}", version)]
        if n == 0 or new.compatibility == "NONE":
            continue
        earlier = versions[:n] if compat.transitive(new.compatibility) else versions[n - 1 : n]
        for old_version, _ in earlier:
            old = registry.events[(f"{dept}.{etype}", old_version)]
            for direction, text, finding in compat.findings(old.own_fields, new.own_fields, new.compatibility):
                problems.append(
                    Problem(
                        name,
                        f"events[{index}].fields.{finding.path}",
                        f"{direction}: {text} (version {old_version} → {version})",
                    )
                )
    return problems


def _check_category(ev: dict, own: dict, categories: dict, name: str, where: str) -> list[Problem]:
    fixed, chosen = ev.get("category"), own.get("category")
    if (fixed is None) == (chosen is None):
        return [Problem(name, where, "needs exactly one of a fixed `category` or a `category` field")]
    if fixed is not None:
        if fixed not in categories:
            return [Problem(name, f"{where}.category", f"unknown category {fixed!r} (contracts/categories.yaml)")]
        return []
    field_problems = check_field(chosen, f"{where}.fields.category")
    if not isinstance(chosen, dict) or chosen.get("type") != "enum" or not chosen.get("required"):
        return [Problem(name, f"{where}.fields.category", "must be a required enum of category ids")]
    unknown = [v for v in chosen.get("values") or [] if v not in categories]
    if unknown:
        return [Problem(name, f"{where}.fields.category.values", f"unknown categories {unknown}")]
    return [Problem(name, p, r) for p, r in field_problems]
