"""The command-centre page's use cases: a person's inbox, the map's layers, a case as its page
shows it, and the actions it offers — reads through the CaseReader port (the store supervision
queries), actions through supervision's use cases over RPC (the Centre port), each attributed
to the signed-in person and allowed by the one access policy."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from onegrid.app.ports import CaseReader, DuplicateBook, EvidenceStore
from onegrid.domain import console as dc
from onegrid.domain.access import Principal
from onegrid.domain.lifecycle import OPEN_CASE
from onegrid.kernel.tenant import Tenant

SCAN = 500  # cases a tray looks through (newest first): a wall screen's worth, bounded
SHOWN = 12  # cases a tray lists; its count is of all it found


class Centre(Protocol):
    """supervision's use cases, over RPC (services/supervision)."""

    def whistle(self, case_id: str, actor: str, note: str, level=None, departments=None) -> dict: ...

    def act(self, case_id: str, action: str, actor: str, note: str = "", evidence_urls=None) -> dict: ...

    def decide_extension(self, work_order_id: str, grant: bool, actor: str, note: str = "") -> dict: ...

    def attach_evidence(self, case_id: str, actor: str, evidence: dict, note: str = "") -> dict: ...

    def list_duplicates(self, offset: int = 0, limit: int = 50) -> dict: ...

    def confirm_duplicate(self, case_id: str, actor: str, note: str = "") -> dict: ...

    def dismiss_duplicate(self, case_id: str, actor: str, note: str = "") -> dict: ...

    def unmerge(self, case_id: str, actor: str, note: str = "") -> dict: ...

    def office_decide(self, item_id: str, decision: str, actor: str, **body) -> dict: ...


@dataclass
class Console:
    tenant: Tenant
    cases: CaseReader
    centre: Centre  # supervision's use cases (the duplicate suggestions are its desk's)
    book: DuplicateBook  # read only: a case's duplicate suggestion, for its page

    # -- the inbox ---------------------------------------------------------------------------
    def inbox(self, who: Principal) -> list[dc.Tray]:
        trays = []
        for name in dc.trays_of(who):
            if name == dc.SUGGESTED:
                trays.append(self._suggestions(who))
                continue
            found = [c for c in self._candidates(name, who) if dc.sees(self.tenant, who, c)]
            if name == dc.WHISTLED:
                found = [c for c in found if dc.whistled(self.cases.timeline(c["id"]))]
            trays.append(dc.Tray(name, len(found), tuple(found[:SHOWN])))
        return trays

    def _candidates(self, tray: str, who: Principal) -> list[dict]:
        dept = who.scope if who.role == "department_staff" else None
        grid = who.scope if who.role == "grid_worker" else None  # the grid index narrows at once
        if tray == dc.OVERDUE:
            return self._query(overdue=True, department=dept, grid=grid)
        if tray == dc.AT_MY_LEVEL:  # each with the escalation item the person's office owes on it
            level = dc.my_level(self.tenant, who)
            unit = who.scope if who.scope in self.tenant.nodes else self.tenant.root
            found = [c for c in self._query(level=level) if c.get("status") in OPEN_CASE] if level else []
            return [{**c, "item": dc.owed_item(c, unit)} for c in found]
        if tray == dc.WHISTLED:  # each candidate's timeline is read: the newest SCAN of them only
            found = [c for s in dc.WORKED for c in self._query(status=s, department=dept)]
            return sorted(found, key=lambda c: -float(c.get("at") or 0))[:SCAN]
        if tray == dc.TO_VERIFY:
            return self._query(status="resolved", grid=grid)
        if tray == dc.DUPLICATES:
            return self._query(status="merged", grid=grid)
        raise LookupError(f"no tray {tray!r}")

    def _suggestions(self, who: Principal) -> dc.Tray:
        """The open duplicate suggestions (supervision's desk, oldest first) in the person's part
        of the county: each case with the one it may duplicate, the distance and the score."""
        rows = self.centre.list_duplicates(0, SCAN).get("suggestions") or []
        found = [suggestion_row(r) for r in rows if dc.sees_suggestion(self.tenant, who, r)]
        return dc.Tray(dc.SUGGESTED, len(found), tuple(found[:SHOWN]))

    def _query(self, **filters) -> list[dict]:
        _, cases = self.cases.query(**{k: v for k, v in filters.items() if v}, limit=SCAN)
        return cases

    # -- the map -------------------------------------------------------------------------------
    def open_cases(self, who: Principal) -> list[dict]:
        """Open cases with a place, for the map's markers (the person's part of the county)."""
        out = []
        for status in ("dispatched", "in_progress", "resolved", "verified", "reopened", "registered"):
            for c in self._query(status=status):
                loc = c.get("location") or {}
                if dc.sees(self.tenant, who, c):
                    out.append(
                        {
                            "id": c["id"],
                            "status": c["status"],
                            "category": c.get("category", ""),
                            "grid": c.get("grid", ""),
                            "summary": c.get("summary") or "",
                            "overdue": bool(c.get("overdue")),
                            "lat": loc.get("lat"),
                            "lon": loc.get("lon"),
                        }
                    )
        return out

    # -- a case --------------------------------------------------------------------------------
    def case(self, case_id: str) -> dict:
        case = self.cases.case(case_id)
        if case is None:
            raise LookupError(f"no case {case_id} in {self.tenant.id}")
        found = self.book.suggestion(case_id)
        duplicate = None
        if found is not None:
            other = self.cases.case(found.primary_id) or {}
            duplicate = {**found.as_dict(), "primary_summary": other.get("summary") or ""}
        return {
            **case,
            "work_orders": self.cases.work_orders_of(case_id),
            "timeline": self.cases.timeline(case_id),
            "duplicate": duplicate,
        }

    def decide_duplicate(self, who: Principal, case_id: str, decision: str, note: str) -> dict:
        """Confirm or dismiss the case's duplicate suggestion, or un-merge it: supervision's
        desk over RPC, attributed to the person."""
        if decision not in dc.DUPLICATE_ACTIONS:
            raise LookupError(f"unknown decision {decision[:40]!r}; one of {', '.join(dc.DUPLICATE_ACTIONS)}")
        act = {
            "confirm": self.centre.confirm_duplicate,
            "dismiss": self.centre.dismiss_duplicate,
            "unmerge": self.centre.unmerge,
        }[decision]
        return act(case_id, who.subject, note)

    def attach_photo(
        self, store: EvidenceStore, who: Principal, case_id: str, data: bytes, claimed: str, note: str
    ) -> dict:
        """Check the bytes (size, magic), keep them, and put where and their sha256 on the
        case's timeline; dc.NotAPhoto when they are not a photo."""
        photo = dc.check_photo(data, claimed)
        key = f"{self.tenant.id}/{case_id}/{photo.sha256}.{photo.extension}"
        url = store.put(key, data, photo.content_type)
        evidence = {"url": url, "sha256": photo.sha256, "bytes": photo.size, "content_type": photo.content_type}
        self.centre.attach_evidence(case_id, who.subject, evidence, note)
        return evidence


def suggestion_row(row: dict) -> dict:
    """A suggestion as its tray lists it: the case (as the other trays list cases), the case it
    may duplicate, the distance (None: one has no location) and the score's parts."""
    case, primary, match = row.get("case") or {}, row.get("primary") or {}, row.get("match") or {}
    return {
        "id": row["case_id"],
        "summary": case.get("summary") or "",
        "category": case.get("category", ""),
        "grid": case.get("grid", ""),
        "status": case.get("status", ""),
        "primary_id": row["primary_id"],
        "primary_summary": primary.get("summary") or "",
        "distance_m": match.get("distance_m"),
        "confidence": match.get("confidence"),
        "text": match.get("text"),
        "place": match.get("place"),
        "time": match.get("time"),
        "suggested_at": row.get("at") or "",
    }


def grid_features(tenant: Tenant) -> dict:
    """The county's grids as a GeoJSON FeatureCollection (WGS84 lon/lat). From the county's
    geography (its manifest's boundaries, onegrid.kernel.geography) where it has one; else a
    plain lattice laid out from the grid tree, so the page draws every county."""
    geography = getattr(tenant, "geography", None)
    features = []
    if geography is not None:
        for area in geography.grids():
            coords = [[[list(p) for p in ring] for ring in poly] for poly in area.polygons]
            features.append(_feature(area.code, area.name, {"type": "MultiPolygon", "coordinates": coords}))
        return {"type": "FeatureCollection", "crs_stated": geography.crs, "features": features}
    grids = sorted(tenant.grids(), key=lambda g: g.code)
    side = max(1, math.ceil(math.sqrt(len(grids))))
    size = 0.004  # degrees: a few hundred metres, a city grid's size
    lon0, lat0 = 113.60, 34.75  # near Zhengzhou's Zhongyuan district: only where the lattice sits
    for i, g in enumerate(grids):
        x, y = i % side, i // side
        w, s = lon0 + x * size, lat0 - y * size
        ring = [[w, s], [w + size, s], [w + size, s + size], [w, s + size], [w, s]]
        features.append(_feature(g.code, g.name, {"type": "Polygon", "coordinates": [ring]}))
    return {"type": "FeatureCollection", "crs_stated": "lattice", "features": features}


def _feature(code: str, name: str, geometry: dict) -> dict:
    return {"type": "Feature", "id": code, "properties": {"code": code, "name": name}, "geometry": geometry}
