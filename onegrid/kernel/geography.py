"""A county's geography: the boundary of every node of its grid tree and its offices' places.

Pure data and parsing (no geometry library): a GeoJSON FeatureCollection beside the tenant's
manifest (`contracts/tenants/<tenant>.geojson`, named by the manifest's `geography.file`) is
what a county edits. Its coordinate system is stated, never assumed: the collection's `crs`
member names WGS84 (`urn:ogc:def:crs:OGC:1.3:CRS84`, GeoJSON's own, what GPS gives) or GCJ-02
(`GCJ-02`, the offset system Chinese web maps publish in). Events' `location` is always WGS84
(contracts/common.yaml); onegrid.domain.geo converts a point when the boundaries are GCJ-02.

Each feature is one of:
  a boundary: a Polygon or MultiPolygon, properties {code, level, name, parent} of a tree node
  an office:  a Point, properties {office: <the node's code>, name} (街道办, 社区党群服务中心 …)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from onegrid.kernel.tenant import Tenant

WGS84 = "WGS84"
GCJ02 = "GCJ-02"
CRS_NAMES = {WGS84: "urn:ogc:def:crs:OGC:1.3:CRS84", GCJ02: "GCJ-02"}  # the `crs` member's name
_CRS_OF_NAME = {**{v: k for k, v in CRS_NAMES.items()}, "EPSG:4326": WGS84, WGS84: WGS84}

Ring = tuple[tuple[float, float], ...]  # (lon, lat) pairs, closed
Polygon = tuple[Ring, ...]  # exterior ring, then holes


@dataclass(frozen=True)
class Area:
    """One node's boundary: one or more polygons (a MultiPolygon for an enclave)."""

    code: str
    level: str
    name: str
    parent: str | None
    polygons: tuple[Polygon, ...] = field(repr=False)

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        points = [p for poly in self.polygons for p in poly[0]]
        lons, lats = [p[0] for p in points], [p[1] for p in points]
        return min(lons), min(lats), max(lons), max(lats)


@dataclass(frozen=True)
class Office:
    code: str  # the node whose office it is
    name: str
    lon: float
    lat: float


@dataclass(frozen=True)
class Geography:
    crs: str  # WGS84 or GCJ-02
    areas: dict[str, Area] = field(repr=False)
    offices: dict[str, Office] = field(repr=False)

    def grids(self) -> list[Area]:
        return [a for a in self.areas.values() if a.level == "grid"]


def crs_member(crs: str) -> dict:
    """The FeatureCollection's `crs` member stating `crs` (GeoJSON 2008 named-CRS form)."""
    return {"type": "name", "properties": {"name": CRS_NAMES[crs]}}


def parse_geography(doc, tenant: Tenant) -> tuple[Geography | None, list[tuple[str, str]]]:
    """The geography in `doc` for `tenant`'s grid tree, and every (path, reason) problem: every
    grid needs exactly one boundary; every boundary and office names a node of the tree."""
    problems: list[tuple[str, str]] = []
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        return None, [("$", "a geography is a GeoJSON FeatureCollection")]
    name = ((doc.get("crs") or {}).get("properties") or {}).get("name") if isinstance(doc.get("crs"), dict) else None
    crs = _CRS_OF_NAME.get(name) if isinstance(name, str) else None
    if crs is None:
        problems.append(
            ("crs", f"must state the coordinate system: crs.properties.name one of {sorted(CRS_NAMES.values())}")
        )
    features = doc.get("features")
    if not isinstance(features, list):
        return None, [*problems, ("features", "must be a list of features")]
    areas: dict[str, Area] = {}
    offices: dict[str, Office] = {}
    for i, feature in enumerate(features):
        where = f"features[{i}]"
        if not isinstance(feature, dict) or not isinstance(feature.get("geometry"), dict):
            problems.append((where, "a feature is a map with a geometry"))
            continue
        raw_props = feature.get("properties")
        props: dict = raw_props if isinstance(raw_props, dict) else {}
        geometry = feature["geometry"]
        if geometry.get("type") == "Point":
            _office(props, geometry, where, tenant, offices, problems)
        else:
            _area(props, geometry, where, tenant, areas, problems)
    missing = [g.code for g in tenant.grids() if g.code not in areas]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        problems.append(("features", f"no boundary for grid {shown}"))
    if problems:
        return None, problems
    assert crs is not None
    return Geography(crs, areas, offices), []


def _area(props: dict, geometry: dict, where: str, tenant: Tenant, areas: dict, problems: list) -> None:
    code = props.get("code")
    node = tenant.nodes.get(code) if isinstance(code, str) else None
    if node is None or not isinstance(code, str):
        problems.append((f"{where}.properties.code", f"{code!r} is not a node of {tenant.id}'s grid tree"))
        return
    if code in areas:
        problems.append((f"{where}.properties.code", f"{code} has a second boundary; use one MultiPolygon"))
        return
    polygons = _polygons(geometry, f"{where}.geometry", problems)
    if polygons:
        areas[code] = Area(code, node.level, node.name, node.parent, polygons)


def _office(props: dict, geometry: dict, where: str, tenant: Tenant, offices: dict, problems: list) -> None:
    code = props.get("office")
    if not isinstance(code, str) or code not in tenant.nodes:
        problems.append((f"{where}.properties.office", f"{code!r} is not a node of {tenant.id}'s grid tree"))
        return
    point = _position(geometry.get("coordinates"))
    if point is None:
        problems.append((f"{where}.geometry.coordinates", "a Point is [lon, lat] in range"))
        return
    offices[code] = Office(code, str(props.get("name") or tenant.nodes[code].name), point[0], point[1])


def _polygons(geometry: dict, where: str, problems: list) -> tuple[Polygon, ...]:
    kind, coords = geometry.get("type"), geometry.get("coordinates")
    if kind == "Polygon":
        raw = [coords]
    elif kind == "MultiPolygon" and isinstance(coords, list):
        raw = coords
    else:
        problems.append((f"{where}.type", f"a boundary is a Polygon or MultiPolygon, not {kind!r}"))
        return ()
    polygons = []
    for p, rings in enumerate(raw):
        if not isinstance(rings, list) or not rings:
            problems.append((f"{where}.coordinates[{p}]", "a polygon is a list of rings"))
            return ()
        parsed = []
        for r, ring in enumerate(rings):
            points = [_position(x) for x in ring] if isinstance(ring, list) else [None]
            if any(x is None for x in points) or len(points) < 4 or points[0] != points[-1]:
                problems.append(
                    (f"{where}.coordinates[{p}][{r}]", "a ring is 4 or more [lon, lat] in range, closed (last = first)")
                )
                return ()
            parsed.append(tuple(x for x in points if x is not None))
        polygons.append(tuple(parsed))
    return tuple(polygons)


def _position(value) -> tuple[float, float] | None:
    if not isinstance(value, list) or len(value) < 2:
        return None
    lon, lat = value[0], value[1]
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in (lon, lat)):
        return None
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        return None
    return float(lon), float(lat)


def feature_collection(tenant: Tenant, geography: Geography, levels: tuple[str, ...] = ("grid",)) -> dict:
    """The tenant's boundaries at `levels` as one GeoJSON FeatureCollection (what a map draws):
    each feature's properties are the node's code, name, level and parent, and the names of
    its community and street; the collection states its CRS. Offices are left out."""
    unknown = set(levels) - set(tenant.levels)
    if unknown:
        raise ValueError(f"unknown level {sorted(unknown)}; one of {', '.join(tenant.levels)}")
    features = []
    for area in sorted(geography.areas.values(), key=lambda a: a.code):
        if area.level not in levels:
            continue
        props = {"code": area.code, "name": area.name, "level": area.level, "parent": area.parent}
        for above in ("community", "street"):
            node = tenant.ancestor_or_none(area.code, above) if tenant.is_level(above) else None
            if node is not None and node.level != area.level:
                props[above] = node.name
        features.append({"type": "Feature", "id": area.code, "properties": props, "geometry": geometry_of(area)})
    return {"type": "FeatureCollection", "crs": crs_member(geography.crs), "features": features}


def offices_collection(geography: Geography) -> dict:
    """The offices as GeoJSON Points: properties code (the node), name, level."""
    features = [
        {
            "type": "Feature",
            "id": f"office:{o.code}",
            "properties": {"office": o.code, "name": o.name},
            "geometry": {"type": "Point", "coordinates": [o.lon, o.lat]},
        }
        for o in sorted(geography.offices.values(), key=lambda o: o.code)
    ]
    return {"type": "FeatureCollection", "crs": crs_member(geography.crs), "features": features}


def geometry_of(area: Area) -> dict:
    rings = [[[list(p) for p in ring] for ring in poly] for poly in area.polygons]
    if len(rings) == 1:
        return {"type": "Polygon", "coordinates": rings[0]}
    return {"type": "MultiPolygon", "coordinates": rings}
