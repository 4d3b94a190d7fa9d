"""The counties' geography: the boundaries files parse and cover every grid, the drawn ones are
deterministic and tile the county, the STRtree finds the grid a point is in, and GCJ-02 is
the published offset."""

from __future__ import annotations

import json

import pytest
import shapely

from onegrid.adapters.geo import ShapelyLocator, shape_of
from onegrid.domain.geo import Outside, Placed, gcj02_to_wgs84, place, wgs84_to_gcj02
from onegrid.kernel.geography import GCJ02, WGS84, feature_collection, offices_collection, parse_geography
from onegrid.operator.geography import draw

from .helpers import JINCHENG, QINLING, copy_contracts, edit_yaml, problems_of, registry


def _tenant(tid=QINLING):
    return registry().tenants[tid]


@pytest.mark.parametrize("tid", [QINLING, JINCHENG])
def test_the_demo_counties_have_a_boundary_for_every_node_and_an_office_for_every_unit(tid):
    tenant = _tenant(tid)
    geo = tenant.geography
    assert geo is not None and geo.crs == WGS84
    assert set(geo.areas) == set(tenant.nodes)
    assert set(geo.offices) == {c for c, n in tenant.nodes.items() if n.level != "grid"}
    county = shape_of(geo.areas[tenant.root])
    grids = [shape_of(a) for a in geo.grids()]
    # the grids tile the county: no overlap beyond rounding, no gap
    assert sum(g.area for g in grids) == pytest.approx(county.area, rel=1e-4)
    assert shapely.union_all(grids).symmetric_difference(county).area < county.area * 1e-4
    for office in geo.offices.values():  # each office stands inside its own unit
        assert shape_of(geo.areas[office.code]).contains(shapely.Point(office.lon, office.lat))


def test_qinling_is_where_zhongyuan_district_is_and_jincheng_where_suining_is():
    centre = shape_of(_tenant(QINLING).geography.areas["410102"]).centroid
    assert (113.55 < centre.x < 113.65) and (34.70 < centre.y < 34.80)
    km2 = shape_of(_tenant(JINCHENG).geography.areas["320324"]).area * 110.574 * 111.320 * 0.83
    assert 55 < km2 < 72  # Jincheng street: 63.98 km²
    assert 117.85 < shape_of(_tenant(JINCHENG).geography.areas["320324"]).centroid.x < 118.0


def test_drawing_is_deterministic_and_the_file_is_what_was_drawn():
    tenant = _tenant()
    first = draw(tenant, 113.595, 34.758, 6.5)
    assert draw(tenant, 113.595, 34.758, 6.5) == first
    on_disk = json.loads((registry_path() / "tenants" / f"{QINLING}.geojson").read_text(encoding="utf-8"))
    assert on_disk == first  # the committed file is the generator's output until the county edits it


def registry_path():
    from tests.unit.helpers import CONTRACTS

    return CONTRACTS


def test_a_gcj02_drawing_says_so_and_is_offset():
    tenant = _tenant()
    doc = draw(tenant, 113.595, 34.758, 6.5, GCJ02)
    geo, problems = parse_geography(doc, tenant)
    assert problems == [] and geo is not None and geo.crs == GCJ02
    wgs = _tenant().geography
    assert wgs is not None
    shift = shape_of(geo.areas[tenant.root]).centroid.distance(shape_of(wgs.areas[tenant.root]).centroid)
    assert 0.002 < shift < 0.01  # a few hundred metres, as GCJ-02 is in Zhengzhou


def test_the_feature_collection_for_a_map_names_each_grid_and_its_parents():
    tenant = _tenant()
    fc = feature_collection(tenant, tenant.geography)
    assert fc["crs"]["properties"]["name"] == "urn:ogc:def:crs:OGC:1.3:CRS84"
    assert len(fc["features"]) == 44
    first = fc["features"][0]
    assert first["id"] == "410102-001-001-001" and first["geometry"]["type"] == "Polygon"
    assert first["properties"] == {
        "code": "410102-001-001-001",
        "name": "建西社区第一网格",
        "level": "grid",
        "parent": "410102-001-001",
        "community": "建西社区",
        "street": "秦岭路街道",
    }
    communities = feature_collection(tenant, tenant.geography, ("community",))
    assert len(communities["features"]) == 11 and "community" not in communities["features"][0]["properties"]
    assert len(offices_collection(tenant.geography)["features"]) == 13
    with pytest.raises(ValueError, match="unknown level"):
        feature_collection(tenant, tenant.geography, ("province",))


def _doc():
    tenant = _tenant()
    return draw(tenant, 113.595, 34.758, 6.5)


@pytest.mark.parametrize(
    "change,path,reason",
    [
        (lambda d: d.pop("crs"), "crs", "must state the coordinate system"),
        (lambda d: d["crs"]["properties"].update(name="EPSG:3857"), "crs", "must state the coordinate system"),
        (lambda d: d["features"].pop(3), "features", "no boundary for grid 410102-001-001-001"),
        (
            lambda d: d["features"][0]["properties"].update(code="410199"),
            "features[0].properties.code",
            "is not a node",
        ),
        (lambda d: d["features"][1]["geometry"].update(type="LineString"), "features[1].geometry.type", "Polygon"),
        (
            lambda d: d["features"][2]["geometry"]["coordinates"][0].pop(),
            "features[2].geometry.coordinates[0][0]",
            "closed",
        ),
        (
            lambda d: d["features"][3]["geometry"]["coordinates"][0][1].__setitem__(0, 200),
            "coordinates[0][0]",
            "in range",
        ),
        (lambda d: d["features"][-1]["properties"].update(office="nope"), "properties.office", "is not a node"),
        (lambda d: d["features"].append(d["features"][5]), "properties.code", "has a second boundary"),
    ],
)
def test_a_broken_geography_says_where(change, path, reason):
    doc = _doc()
    change(doc)
    geo, problems = parse_geography(doc, _tenant())
    assert geo is None
    assert any(path in p and reason in r for p, r in problems), problems


def test_the_manifest_names_its_file_and_contracts_check_reports_its_problems(tmp_path):
    root = copy_contracts(tmp_path)
    (root / "tenants" / f"{QINLING}.geojson").write_text('{"type": "FeatureCollection", "features": []}')
    found = [(p.path, p.reason) for p in problems_of(root, f"tenants/{QINLING}.yaml")]
    assert any(p == "geography.file" and "must state the coordinate system" in r for p, r in found), found
    assert any(p == "geography.file" and "no boundary for grid" in r for p, r in found), found
    edit_yaml(root / "tenants" / f"{QINLING}.yaml", lambda d: d.update(geography={"file": "../x.geojson"}))
    found = [(p.path, p.reason) for p in problems_of(root, f"tenants/{QINLING}.yaml")]
    assert ("geography", "must be {file: <name>.geojson}, a file beside the manifest") in found


@pytest.mark.parametrize("tid", [QINLING, JINCHENG])
def test_the_strtree_finds_each_grid_by_a_point_inside_it_and_nothing_outside(tid):
    tenant = _tenant(tid)
    locator = ShapelyLocator(tenant.geography)
    for area in tenant.geography.grids():
        inside = shape_of(area).representative_point()
        assert locator.covering(inside.x, inside.y) == [area.code]
        assert place(inside.y, inside.x, WGS84, locator.covering, tid) == Placed(area.code)
    assert locator.covering(0.0, 0.0) == []
    assert isinstance(place(39.9, 116.4, WGS84, locator.covering, tid), Outside)  # Beijing
    points = [shape_of(a).representative_point() for a in tenant.geography.grids()]
    many = locator.covering_many([p.x for p in points], [p.y for p in points])
    assert many == [[a.code] for a in tenant.geography.grids()]


def test_a_vertex_shared_by_grids_is_placed_in_the_lowest_code():
    tenant = _tenant()
    locator = ShapelyLocator(tenant.geography)
    area = tenant.geography.areas["410102-001-001-001"]
    for lon, lat in area.polygons[0][0]:
        hits = locator.covering(lon, lat)
        assert area.code in hits
        assert place(lat, lon, WGS84, locator.covering, QINLING) == Placed(min(hits))


def test_gcj02_is_the_published_offset_and_inverts():
    # Tiananmen: the widely published pair (WGS84 -> GCJ-02) to about a metre
    lon, lat = wgs84_to_gcj02(116.391275, 39.907499)
    assert lon == pytest.approx(116.397519, abs=2e-5) and lat == pytest.approx(39.908903, abs=2e-5)
    back = gcj02_to_wgs84(lon, lat)
    assert back[0] == pytest.approx(116.391275, abs=1e-7) and back[1] == pytest.approx(39.907499, abs=1e-7)
    assert wgs84_to_gcj02(-0.1276, 51.5072) == (-0.1276, 51.5072)  # outside China there is no offset
