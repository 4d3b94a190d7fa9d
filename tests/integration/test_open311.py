"""The Open311 GeoReport v2 door on a running county (real bus, Redis, intake and routing):
read with `georeport`, an Open311 client from PyPI, in JSON and XML; requests posted
form-encoded as the spec has them; each becomes a case through intake, placed in its grid by
its point; errors are the spec's arrays."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
import requests
from georeport import GeoReport

from onegrid.adapters.geo import shape_of
from onegrid.adapters.redis.open311 import Clients
from onegrid.domain.open311 import EVENT
from tests.conftest import County
from tests.support import wait_until

pytestmark = pytest.mark.integration
GRID = "410102-001-004-002"


@pytest.fixture(scope="module")
def county(tmp_path_factory):
    c = County(tmp_path_factory.mktemp("open311"), services=("intake", "routing", "open311"))
    c.services.start()
    yield c
    c.close()


@pytest.fixture(scope="module")
def key(county):
    return Clients(county.store.r, county.id).issue("citizen-app")


def _base(county) -> str:
    return county.services.url("open311") + "/open311/v2"


def _inside(county, grid=GRID) -> tuple[float, float]:
    spot = shape_of(county.tenant.geography.areas[grid]).representative_point()
    return spot.y, spot.x


def _post(county, fmt="json", **form):
    return requests.post(f"{_base(county)}/requests.{fmt}", data=form, timeout=10)


def test_the_client_library_reads_the_services_and_their_attributes_in_json_and_xml(county):
    client = GeoReport(_base(county))
    listed = client.get_service_list()
    codes = {s["service_code"] for s in listed}
    assert {"illegal_construction", "public_facilities", "other"} <= codes and len(listed) == 20
    facilities = next(s for s in listed if s["service_code"] == "public_facilities")
    assert facilities["service_name"] == "公共设施" and facilities["metadata"] is True
    definition = client.get_service_definition("public_facilities")
    assert [a["code"] for a in definition["attributes"]] == ["severity", "callback_required"]
    assert [v["key"] for v in definition["attributes"][0]["values"]] == ["minor", "general", "major", "critical"]
    as_xml = GeoReport(_base(county), output_format="xml")
    assert {s["service_code"] for s in as_xml.get_service_list()} == codes
    attrs = as_xml.get_service_definition("public_facilities")["attributes"]["attribute"]
    assert attrs[0]["code"] == "severity" and attrs[0]["values"]["value"][0]["key"] == "minor"


def test_a_request_becomes_a_case_through_intake_placed_by_its_point_and_reads_back(county, key):
    lat, lon = _inside(county)
    resp = _post(
        county,
        api_key=key,
        service_code="public_facilities",
        lat=str(lat),
        long=str(lon),
        description="井盖缺失，夜间行人有坠落危险",
        media_url="https://photos.example.org/manhole.jpg",
        phone="13912345678",
        email="someone@example.org",
        **{"attribute[severity]": "major", "attribute[callback_required]": "yes"},
    )
    assert resp.status_code == 201, resp.text
    answer = resp.json()[0]
    assert "Names and email are not kept" in answer["service_notice"]
    request_id = answer.get("service_request_id") or wait_until(
        lambda: requests.get(f"{_base(county)}/tokens/{answer['token']}.json", timeout=10).json()[0][
            "service_request_id"
        ],
        what="the token's request id",
    )
    case = county.store.case(request_id)
    assert case["event_type"] == EVENT and case["grid"] == GRID and case["severity"] == "major"
    assert case["category"] == "public_facilities" and case["reporter"]["phone"] == "13912345678"
    assert case["data"]["client"] == "citizen-app" and "someone@example.org" not in json.dumps(case)
    assert case["data"]["evidence_urls"] == ["https://photos.example.org/manhole.jpg"]
    wait_until(lambda: county.store.case(request_id)["status"] == "dispatched", what="dispatch")

    client = GeoReport(_base(county))
    one = client.get_service_request(request_id)
    assert one["service_request_id"] == request_id and one["status"] == "open"
    assert one["service_code"] == "public_facilities" and one["description"] == "井盖缺失，夜间行人有坠落危险"
    departments = [w["department"] for w in county.store.work_orders_of(request_id)]
    assert departments == ["urban_management", "water"]  # public facilities, major: the routing table
    assert one["agency_responsible"] == "城市管理局、水务局"
    assert one["lat"] == lat and one["long"] == lon and one["media_url"].endswith("manhole.jpg")
    assert one["requested_datetime"].endswith("Z") and one["expected_datetime"]
    assert "phone" not in json.dumps(one) and "13912345678" not in json.dumps(one)
    listed = client.get_service_requests(service_code="public_facilities", status="open")
    assert request_id in [r["service_request_id"] for r in listed]
    assert request_id not in [r["service_request_id"] for r in client.get_service_requests(status="closed")]
    in_xml = GeoReport(_base(county), output_format="xml").get_service_request(request_id)
    assert in_xml["service_request_id"] == request_id and in_xml["status"] == "open"


def test_an_address_naming_a_community_is_placed_at_its_office_and_in_one_of_its_grids(county, key):
    resp = _post(county, api_key=key, service_code="city_appearance", address_string="中原区秦江社区门口垃圾堆积")
    assert resp.status_code == 201, resp.text
    answer = resp.json()[0]
    request_id = answer.get("service_request_id") or answer["token"]
    case = wait_until(
        lambda: (
            [c for c in [county.store.case(request_id)] if c]
            or [
                county.store.case(r["service_request_id"])
                for r in requests.get(f"{_base(county)}/tokens/{request_id}.json", timeout=10).json()
                if r["service_request_id"]
            ]
        ),
        what="the case",
    )[0]
    assert case["grid"].startswith("410102-001-004-")  # 秦江社区's grids
    assert case["data"]["address_string"] == "中原区秦江社区门口垃圾堆积"


def test_errors_are_the_specs_arrays_with_codes(county, key):
    lat, lon = _inside(county)
    missing = _post(county, service_code="other", lat=str(lat), long=str(lon))
    assert missing.status_code == 401 and missing.json()[0]["code"] == 401
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    bad = _post(county, api_key="o311_nope", service_code="other", lat=str(lat), long=str(lon))
    assert bad.status_code == 403 and bad.json() == [{"code": 403, "description": "api_key is invalid or revoked"}]
    for form, code, words in [
        ({}, 400, "service_code was not provided"),
        ({"service_code": "potholes"}, 404, "not found"),
        ({"service_code": "other"}, 400, "a location is required"),
        ({"service_code": "other", "lat": "34.7"}, 400, "lat and long go together"),
        ({"service_code": "other", "lat": "north", "long": "113"}, 400, "decimal degrees"),
        ({"service_code": "other", "address_string": "北京市东城区"}, 400, "names no street, community or grid"),
        ({"service_code": "other", "lat": str(lat), "long": str(lon), "phone": "123"}, 400, "mobile number"),
        ({"service_code": "other", "lat": str(lat), "long": str(lon), "attribute[severity]": "x"}, 400, "severity"),
    ]:
        resp = _post(county, api_key=key, **form)
        assert resp.status_code == code and resp.json()[0]["code"] == code, (form, resp.text)
        assert words in resp.json()[0]["description"], (form, resp.text)
    as_xml = _post(county, "xml", api_key=key)
    root = ET.fromstring(as_xml.content)
    assert as_xml.status_code == 400 and as_xml.headers["Content-Type"].startswith("text/xml")
    assert root.tag == "errors" and root.find("error/code").text == "400"
    for url in ("/services/potholes.json", "/requests/c-0000000000000000.json", "/tokens/nope.json", "/services.csv"):
        resp = requests.get(_base(county) + url, timeout=10)
        assert resp.status_code == 404 and resp.json()[0]["code"] == 404, (url, resp.text)
    assert requests.get(_base(county) + "/requests.json?status=pending", timeout=10).status_code == 400
    other = requests.get(_base(county) + "/services.json?jurisdiction_id=elsewhere", timeout=10)
    assert other.status_code == 404 and "jurisdiction_id" in other.json()[0]["description"]


def test_a_point_outside_the_county_is_refused_at_once_and_nothing_is_published(county, key):
    before = county.store.stats().get("cases", 0)
    resp = _post(county, api_key=key, service_code="other", lat="39.9", long="116.4", description="北京的一件事情")
    assert resp.status_code == 400, resp.text
    assert "outside every grid boundary of 郑州市中原区秦岭路街道" in resp.json()[0]["description"]
    assert county.store.stats().get("cases", 0) == before


def test_onboarding_issues_a_key_for_each_client_the_manifest_names_once(county):
    from onegrid.operator import ops

    clients = Clients(county.store.r, county.id)
    assert {"hotline-12345", "citizen-app"} <= set(clients.states())  # the County fixture onboarded it
    assert not [c for c in ops.onboard(county.tenant)["credentials"] if c.kind == "open311"]  # none again
    clients.revoke("hotline-12345")
    issued = [c for c in ops.onboard(county.tenant)["credentials"] if c.kind == "open311"]
    assert [(c.name, ops.secret_name(c)) for c in issued] == [("hotline-12345", "open311-client-hotline-12345")]
    assert clients.verify(issued[0].values["api-key"]) == "hotline-12345"


def test_a_client_over_its_rate_is_told_to_wait(county, key):
    # the client's bucket as a burst far over the county's rate leaves it: 20 s of debt at 50/s
    seconds, _ = county.store.r.time()
    bucket = f"og:{{{county.id}}}:ratelimit:open311.citizen-app"
    county.store.r.hset(bucket, mapping={"tokens": -1000, "ts": seconds})
    lat, lon = _inside(county)
    resp = _post(county, api_key=key, service_code="other", lat=str(lat), long=str(lon))
    assert resp.status_code == 429 and resp.json()[0]["code"] == 429, resp.text
    assert int(resp.headers["Retry-After"]) >= 1
