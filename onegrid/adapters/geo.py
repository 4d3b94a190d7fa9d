"""The grid boundaries as a shapely 2 STRtree: which grids cover a point.

Built once per process from the tenant's geography (onegrid.kernel.geography); a query is a
bounding-box search in the tree, then an exact point-in-polygon test on the few candidates.
Behind onegrid.app.ports.GridLocator; the decision on the answer is onegrid.domain.geo's.
"""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.strtree import STRtree

from onegrid.kernel.geography import Area, Geography


def shape_of(area: Area) -> Polygon | MultiPolygon:
    polygons = [Polygon(poly[0], poly[1:]) for poly in area.polygons]
    return polygons[0] if len(polygons) == 1 else MultiPolygon(polygons)


class ShapelyLocator:
    """GridLocator over one county's grid boundaries."""

    def __init__(self, geography: Geography):
        grids = sorted(geography.grids(), key=lambda a: a.code)
        self.codes = np.array([a.code for a in grids], dtype=object)
        self.shapes = [shape_of(a) for a in grids]
        shapely.prepare(self.shapes)  # exact tests on a prepared polygon are several times faster
        self.tree = STRtree(self.shapes)

    def covering(self, lon: float, lat: float) -> list[str]:
        # `intersects` also counts a point on a boundary line (covers, not only contains)
        return list(self.codes[self.tree.query(shapely.Point(lon, lat), predicate="intersects")])

    def covering_many(self, lons, lats) -> list[list[str]]:
        """The same for many points in one call (the benchmark's bulk figure)."""
        points = shapely.points(np.asarray(lons, dtype=float), np.asarray(lats, dtype=float))
        found: list[list[str]] = [[] for _ in range(len(points))]
        point_i, grid_i = self.tree.query(points, predicate="intersects")
        for p, g in zip(point_i.tolist(), grid_i.tolist(), strict=True):
            found[p].append(self.codes[g])
        return found


def locator_for(geography: Geography | None) -> ShapelyLocator | None:
    return ShapelyLocator(geography) if geography is not None else None
