"""On-site resolution (琐事不出网格): a grid worker's report that says the worker already settled
the matter in the grid (`resolved_on_site: true` on governance's grid_report_submitted).

Such a case is not dispatched: routing closes it as fixed with the report's own evidence (its
summary and `evidence_urls`), `resolution: on_site` on the record and the timeline, no work
order, no deadline. A sample, a per-tenant share (`lifecycle.on_site_sample`) chosen by the
case id so every replay picks the same cases, is held at `resolved` instead and goes the
ordinary verification way (verify / verify_failed, then the reporter's word); "not fixed"
reopens it, and routing then routes it as any registered case.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from onegrid.domain.cases import CaseLike

ON_SITE = "on_site"  # the case's `resolution` when it was settled in the grid
DEFAULT_SAMPLE = 0.1  # share of on-site cases checked unless the manifest says (a choice, not a published figure)


def reported_on_site(case: CaseLike) -> bool:
    """The report says the worker already settled it (a field only grid reports carry)."""
    data = case.get("data") or {}
    return isinstance(data, Mapping) and data.get("resolved_on_site") is True


def settled_on_site(case: CaseLike) -> bool:
    """The case stands as settled on site (a reopened one no longer does)."""
    return case.get("resolution") == ON_SITE


def sampled(case_id: str, share: float) -> bool:
    """Whether this case is one of the checked share: by a hash of its id, so the same case is
    always sampled or always not, whichever process decides and however often."""
    if share <= 0:
        return False
    bucket = int(hashlib.sha256(f"on-site-sample|{case_id}".encode()).hexdigest()[:8], 16)
    return bucket < share * 0x1_0000_0000


def evidence_of(case: CaseLike) -> list[str]:
    """The report's photos (the contract's common `evidence_urls`)."""
    data = case.get("data") or {}
    urls = data.get("evidence_urls") if isinstance(data, Mapping) else None
    return [str(u) for u in urls or []]
