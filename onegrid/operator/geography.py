"""Drawing a plausible geography for a county that has none yet (the demo counties, the
benchmark's Taiyuan): `onegrid tenant draw-geography`.

Deterministic from the tenant id: an irregular county outline of the given area around the
given centre, cut into its streets, each street into its communities, each community into its
grids, every cut by area in proportion to the grids below (jittered, so no two look alike), and
an office at a point inside every street, community and the county. The result is a GeoJSON
FeatureCollection (onegrid.kernel.geography) the county then edits into its real boundaries.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from pathlib import Path

import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.polygon import orient

from onegrid.domain.geo import wgs84_to_gcj02
from onegrid.kernel.geography import CRS_NAMES, WGS84, crs_member
from onegrid.kernel.tenant import Tenant

KM_PER_DEG_LAT = 110.574
OFFICE = {"county": "{name}网格化服务管理中心", "street": "{name}办事处", "community": "{name}党群服务中心"}


def draw(tenant: Tenant, lon: float, lat: float, area_km2: float, crs: str = WGS84) -> dict:
    """The tenant's grid tree drawn around (lon, lat) WGS84 over about `area_km2`, as GeoJSON
    in `crs` (WGS84, or GCJ-02: every vertex offset as Chinese web maps draw them)."""
    if crs not in CRS_NAMES:
        raise ValueError(f"crs must be one of {', '.join(CRS_NAMES)}")
    if area_km2 <= 0:
        raise ValueError("area_km2 must be positive")
    rng = random.Random(tenant.id)
    regions: dict[str, Polygon | MultiPolygon] = {tenant.root: _outline(rng, area_km2)}
    children: dict[str, list[str]] = {}
    for node in tenant.nodes.values():
        if node.parent is not None:
            children.setdefault(node.parent, []).append(node.code)
    grids_below = _grids_below(tenant, children)
    stack = [tenant.root]
    while stack:
        code = stack.pop()
        kids = sorted(children.get(code, ()))
        weights = [grids_below[k] * (0.8 + 0.4 * _unit(k)) for k in kids]
        for kid, piece in zip(kids, _divide(regions[code], weights), strict=True):
            regions[kid] = piece
            stack.append(kid)

    def to_degrees(x: float, y: float) -> tuple[float, float]:
        p = (lon + x / (111.320 * math.cos(math.radians(lat))), lat + y / KM_PER_DEG_LAT)
        return wgs84_to_gcj02(*p) if crs != WGS84 else p

    features = []
    for code in sorted(regions):
        node = tenant.nodes[code]
        shape = shapely.transform(regions[code], lambda xy: _vectorised(to_degrees, xy))
        props = {"code": code, "level": node.level, "name": node.name, "parent": node.parent}
        features.append({"type": "Feature", "properties": props, "geometry": _geojson(shape)})
    for code in sorted(regions):
        node = tenant.nodes[code]
        if node.level == "grid":
            continue
        spot = regions[code].representative_point()
        x, y = to_degrees(spot.x, spot.y)
        # the drawn office's name; a level the default ladder lacks: its rung's office
        name = OFFICE.get(node.level, "{name}" + tenant.rung(node.level).office).format(name=node.name)
        point = {"type": "Point", "coordinates": [round(x, 6), round(y, 6)]}
        features.append({"type": "Feature", "properties": {"office": code, "name": name}, "geometry": point})
    return {"type": "FeatureCollection", "crs": crs_member(crs), "features": features}


def write(doc: dict, path: Path) -> None:
    """One feature a line: a county's diff of one boundary is one line."""
    lines = [json.dumps(f, ensure_ascii=False, separators=(",", ":")) for f in doc["features"]]
    head = json.dumps({k: v for k, v in doc.items() if k != "features"}, ensure_ascii=False)[:-1]
    path.write_text(head + ',\n"features":[\n' + ",\n".join(lines) + "\n]}\n", encoding="utf-8")


def _unit(code: str) -> float:
    """A number in [0, 1) fixed by the code: the jitter of its share."""
    return int.from_bytes(hashlib.sha256(code.encode()).digest()[:4], "big") / 2**32


def _grids_below(tenant: Tenant, children: dict[str, list[str]]) -> dict[str, int]:
    counts = {g.code: 1 for g in tenant.grids()}
    for level in tenant.levels[1:]:  # bottom up: each level sums the one below
        for node in tenant.nodes.values():
            if node.level == level:
                counts[node.code] = sum(counts.get(k, 0) for k in children.get(node.code, ())) or 1
    return counts


def _outline(rng: random.Random, area_km2: float) -> Polygon:
    """An irregular closed outline of `area_km2` around (0, 0), in km."""
    phases = [rng.uniform(0, 2 * math.pi) for _ in range(3)]
    points = []
    for i in range(36):
        t = 2 * math.pi * i / 36
        r = 1 + 0.16 * math.sin(2 * t + phases[0]) + 0.09 * math.sin(3 * t + phases[1])
        r += 0.05 * math.sin(5 * t + phases[2]) + rng.uniform(-0.03, 0.03)
        points.append((r * math.cos(t), r * math.sin(t)))
    shape = Polygon(points)
    k = math.sqrt(area_km2 / shape.area)
    return Polygon([(x * k, y * k) for x, y in points])


def _divide(region, weights: list[float]) -> list:
    """`region` cut into len(weights) pieces of areas in proportion, by halving recursively
    across the longer side (compact pieces rather than strips)."""
    if len(weights) <= 1:
        return [region] * len(weights)
    half = len(weights) // 2
    share = sum(weights[:half]) / sum(weights)
    minx, miny, maxx, maxy = region.bounds
    across_x = (maxx - minx) >= (maxy - miny)
    lo, hi = (minx, maxx) if across_x else (miny, maxy)
    target = region.area * share
    for _ in range(30):  # bisect the cut's position until the first part has its share
        mid = (lo + hi) / 2
        first = _clip(region, minx, miny, mid, maxy) if across_x else _clip(region, minx, miny, maxx, mid)
        lo, hi = (mid, hi) if first.area < target else (lo, mid)
    cut = (lo + hi) / 2
    if across_x:
        first, second = _clip(region, minx, miny, cut, maxy), _clip(region, cut, miny, maxx, maxy)
    else:
        first, second = _clip(region, minx, miny, maxx, cut), _clip(region, minx, cut, maxx, maxy)
    return _divide(first, weights[:half]) + _divide(second, weights[half:])


def _clip(region, xmin: float, ymin: float, xmax: float, ymax: float):
    """The polygonal part of `region` inside the rectangle (a Polygon or MultiPolygon)."""
    clipped = shapely.clip_by_rect(region, xmin, ymin, xmax, ymax)
    parts = [g for g in getattr(clipped, "geoms", [clipped]) if isinstance(g, Polygon) and not g.is_empty]
    return parts[0] if len(parts) == 1 else MultiPolygon(parts)


def _vectorised(fn, xy):
    import numpy as np

    return np.array([fn(x, y) for x, y in xy])


def _geojson(shape) -> dict:
    polygons = [orient(p, 1.0) for p in getattr(shape, "geoms", [shape])]  # exterior counter-clockwise

    def ring(coords) -> list:
        return [[round(x, 6), round(y, 6)] for x, y in coords]

    rings = [[ring(p.exterior.coords), *(ring(h.coords) for h in p.interiors)] for p in polygons]
    if len(rings) == 1:
        return {"type": "Polygon", "coordinates": rings[0]}
    return {"type": "MultiPolygon", "coordinates": rings}
