"""Shared helpers for the unit tests: the real contracts, tmp copies to break, sample events."""

from __future__ import annotations

import json
import random
import shutil
from functools import cache
from pathlib import Path

import yaml

from onegrid.app.registry import load, load_strict
from onegrid.contracts import Registry
from onegrid.domain.intake import RawEvent
from onegrid.kernel import envelope as ce
from sim.fake import sample_object

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"
QINLING = "zhongyuan-qinling"
JINCHENG = "suining-jincheng"


@cache
def registry() -> Registry:
    """The real repository contracts, loaded once (tests must not mutate it)."""
    return load_strict(CONTRACTS)


# the tenants a copy to break holds: the two demo counties. The seed counties' generated trees
# (Penglai's 1,115 grids, Taiyuan's 9,375) would cost every load of every copy seconds
COPIED_TENANTS = (QINLING, JINCHENG)


def copy_contracts(tmp_path: Path) -> Path:
    root = tmp_path / "contracts"
    keep = {f"{t}.{ext}" for t in COPIED_TENANTS for ext in ("yaml", "geojson")}

    def others(folder: str, names: list[str]) -> set[str]:
        return {n for n in names if n not in keep} if Path(folder) == CONTRACTS / "tenants" else set()

    shutil.copytree(CONTRACTS, root, ignore=others)
    return root


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def read_yaml(path: Path):
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)


def write_yaml(path: Path, doc) -> None:
    path.write_text(yaml.dump(doc, Dumper=_Dumper, allow_unicode=True, sort_keys=False), encoding="utf-8")


def edit_yaml(path: Path, change) -> None:
    """Load `path`, let `change(doc)` edit it in place, write it back."""
    doc = read_yaml(path)
    change(doc)
    write_yaml(path, doc)


def problems_of(root: Path, file: str | None = None):
    """Every problem load() finds under `root`, optionally only those of one file
    (`file` relative to the contracts dir, e.g. 'departments/water.yaml')."""
    _, problems = load(root)
    if file is None:
        return problems
    return [p for p in problems if p.file == f"contracts/{file}"]


def sample_data(
    contract,
    tenant,
    *,
    seed: int = 0,
    grid: str | None = None,
    severity: str = "general",
    category: str | None = None,
    **overrides,
) -> dict:
    """Valid data for `contract` in `tenant`: sampled from the contract's own field specs."""
    fixed = {"grid": grid or tenant.grids()[0].code, "severity": severity}
    if category is not None:
        fixed["category"] = category
    data = sample_object(contract.fields, random.Random(seed), fixed)
    data.update(overrides)
    return data


def envelope_for(contract, tenant, *, id: str = "evt-1", source: str | None = None, **changes) -> ce.Envelope:
    attrs = dict(
        tenant=tenant.id,
        department=contract.department,
        type=contract.key,
        source=source or f"/{tenant.id}/departments/{contract.department}/unit",
        version=contract.version,
        id=id,
        time="2024-05-01T08:00:00+08:00",
    )
    attrs.update(changes)
    return ce.new(**attrs)


def binary(
    env: ce.Envelope,
    data,
    *,
    routing_key: str | None = "same",
    headers: dict | None = None,
    body: bytes | None = None,
    content_type: str | None = ce.JSON,
) -> RawEvent:
    """A binary-mode RawEvent; routing_key 'same' means the envelope's type (as over AMQP)."""
    hdrs = env.headers()
    if headers:
        hdrs.update(headers)
    raw_body = body if body is not None else json.dumps(data, ensure_ascii=False).encode()
    return RawEvent(raw_body, hdrs, content_type, env.type if routing_key == "same" else routing_key)


def all_field_specs(specs: dict):
    """Every field spec in a map of specs, recursively (object fields and list items)."""
    for spec in specs.values():
        yield from _walk_spec(spec)


def _walk_spec(spec: dict):
    yield spec
    if spec["type"] == "object":
        yield from all_field_specs(spec["fields"])
    elif spec["type"] == "list":
        yield from _walk_spec(spec["items"])
