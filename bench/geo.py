"""Point -> grid lookup at Taiyuan's size: 9,375 grids (bench.year's tree) drawn over Taiyuan's
urban area around its real centre, then the STRtree (onegrid.adapters.geo) asked for random
points one at a time (what intake does per event, with the decision of onegrid.domain.geo)
and in bulk. Writes its figures into docs/benchmarks.md (`BENCH_PARTS=geo make bench`).

No broker and no Redis: it measures the lookup alone, what an event without a grid adds to
intake's work.
"""

from __future__ import annotations

import json
import random
import statistics
import tempfile
import time
from pathlib import Path

import shapely

from bench.run import host, md_table, stamp, write_figures
from bench.year import county as taiyuan
from onegrid.adapters.geo import ShapelyLocator, shape_of
from onegrid.cli.ui import console, table
from onegrid.domain.geo import Placed, place
from onegrid.kernel.geography import WGS84, parse_geography
from onegrid.operator import geography

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- geo: written by make bench (bench/geo.py) -->", "<!-- end of geo -->"
TAIYUAN_CENTRE = (112.549, 37.870)  # WGS84, the city centre
AREA_KM2 = 1460.0  # the six urban districts
SINGLE = 20_000  # points asked one at a time
BULK = 200_000  # points asked in one call


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="onegrid-geo-") as tmp:
        _, _, tenant = taiyuan(Path(tmp) / "contracts", "taiyuan-geo")
    grids = len(tenant.grids())
    started = time.perf_counter()
    doc = geography.draw(tenant, *TAIYUAN_CENTRE, AREA_KM2)
    drawn_s = time.perf_counter() - started
    size = len(json.dumps(doc, ensure_ascii=False).encode())
    started = time.perf_counter()
    geo, problems = parse_geography(doc, tenant)
    parsed_s = time.perf_counter() - started
    assert geo is not None, problems
    started = time.perf_counter()
    locator = ShapelyLocator(geo)
    built_s = time.perf_counter() - started

    rng = random.Random(15)
    minx, miny, maxx, maxy = shape_of(geo.areas[tenant.root]).bounds
    points = [(rng.uniform(minx, maxx), rng.uniform(miny, maxy)) for _ in range(SINGLE)]
    latencies, placed = [], 0
    for lon, lat in points:
        t0 = time.perf_counter()
        where = place(lat, lon, WGS84, locator.covering, tenant.id)
        latencies.append((time.perf_counter() - t0) * 1e6)
        placed += isinstance(where, Placed)
    latencies.sort()
    single_s = sum(latencies) / 1e6
    # every answer right: a grid's inside point is found in that grid and no other
    for area in rng.sample(geo.grids(), 500):
        inside = shape_of(area).representative_point()
        assert locator.covering(inside.x, inside.y) == [area.code], area.code
    bulk = [(rng.uniform(minx, maxx), rng.uniform(miny, maxy)) for _ in range(BULK)]
    started = time.perf_counter()
    found = locator.covering_many([p[0] for p in bulk], [p[1] for p in bulk])
    bulk_s = time.perf_counter() - started
    county = shape_of(geo.areas[tenant.root])
    inside_share = sum(1 for f in found if f) / BULK
    expected = county.area / ((maxx - minx) * (maxy - miny))
    assert abs(inside_share - expected) < 0.01, (inside_share, expected)  # the bulk answers agree with the geometry
    vertices = int(shapely.get_num_coordinates([shape_of(a) for a in geo.grids()]).sum())

    when, commit = stamp()
    cpu = host()
    rows = [
        ("grids (Taiyuan)", f"{grids:,}"),
        ("vertices of their boundaries", f"{vertices:,}"),
        ("GeoJSON of the whole tree", f"{size / 1e6:.1f} MB"),
        ("draw (onegrid tenant draw-geography)", f"{drawn_s:.1f} s"),
        ("parse and check the file", f"{parsed_s * 1000:.0f} ms"),
        ("build the STRtree (prepared polygons)", f"{built_s * 1000:.0f} ms"),
        (
            "one point at a time: p50 / p99 / max",
            f"{_pct(latencies, 50):.0f} / {_pct(latencies, 99):.0f} / {latencies[-1]:.0f} µs",
        ),
        ("one point at a time: throughput", f"{SINGLE / single_s:,.0f} lookups/s (one core)"),
        ("one point at a time: inside a grid", f"{placed / SINGLE:.1%} (the rest fell outside the county)"),
        (f"{BULK:,} points in one call", f"{bulk_s:.2f} s, {BULK / bulk_s:,.0f} points/s"),
    ]
    console.print(table("Point -> grid lookup at Taiyuan's 9,375 grids", ["what", "figure"], rows))
    figures = [
        f"Run {when} at `{commit}` on {cpu.get('cpu', 'this machine')} ({cpu.get('cores', '?')} cores), "
        f"shapely {shapely.__version__} (GEOS {shapely.geos_version_string}); random points in the county's "
        f"bounding box, so some fall outside it as a stray GPS fix would. Mean one-at-a-time lookup "
        f"{statistics.fmean(latencies):.0f} µs.",
        "",
        md_table(["what", "figure"], rows),
    ]
    write_figures(ROOT / "docs" / "benchmarks.md", "\n".join(figures), BEGIN, END)
    console.print(f"wrote the figures into {ROOT / 'docs' / 'benchmarks.md'}")
    return 0


def _pct(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q / 100))]


if __name__ == "__main__":
    raise SystemExit(main())
