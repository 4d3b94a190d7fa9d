"""The contracts registry as OneGrid loads it: onegrid.contracts' loader, with the tenant
manifest's sections the domain owns checked too (lifecycle, scoring, notify). Every service,
tool and test loads through here, so a manifest the domain would refuse never loads."""

from __future__ import annotations

from pathlib import Path

from onegrid.contracts import Overlay, Problem, Registry, SectionCheck, registry
from onegrid.domain import notify, open311, scoring
from onegrid.domain.calendar import check_calendar
from onegrid.domain.supervision import check_policy
from onegrid.kernel.tenant import Tenant


def _lifecycle(doc: dict, tenant: Tenant | None) -> list[tuple[str, str]]:
    return check_policy(doc.get("lifecycle"))


def _calendar(doc: dict, tenant: Tenant | None) -> list[tuple[str, str]]:
    return check_calendar(doc.get("calendar"))


def _scoring(doc: dict, tenant: Tenant | None) -> list[tuple[str, str]]:
    return scoring.check_manifest(doc, tenant)


def _notify(doc: dict, tenant: Tenant | None) -> list[tuple[str, str]]:
    return notify.check_manifest(doc)


def _open311(doc: dict, tenant: Tenant | None) -> list[tuple[str, str]]:
    return open311.check_manifest(doc)


# in the order problems are reported
SECTIONS: tuple[SectionCheck, ...] = (_lifecycle, _calendar, _scoring, _notify, _open311)


def load(root: str | Path, overlay: Overlay = registry.NOTHING) -> tuple[Registry, list[Problem]]:
    """The registry under `root` (with what a county's registry service published, `overlay`)
    and every problem found (onegrid.contracts.load)."""
    return registry.load(root, SECTIONS, overlay)


def load_strict(root: str | Path, overlay: Overlay = registry.NOTHING) -> Registry:
    """The registry under `root` (with `overlay`); ContractsInvalid when anything is wrong."""
    return registry.load_strict(root, SECTIONS, overlay)
