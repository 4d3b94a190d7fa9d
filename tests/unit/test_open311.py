"""The Open311 door's rules (onegrid.domain.open311) and its use cases through fakes of the
ports (onegrid.app.open311): the form checked into the event the contract takes, a case shown
as a service request, the spec's errors and XML; and a door that speaks for governance in
one event type on the bus."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from onegrid.app.open311 import Door
from onegrid.domain import open311 as o
from onegrid.domain.intake import Accepted, RawEvent, admit, authenticated_department
from onegrid.kernel import topology
from onegrid.operator.desired import users

from .helpers import QINLING, registry
from .services.fakes import FakeBus, FakeClock, FakeStore


def _tenant():
    return registry().tenants[QINLING]


def _form(**changes) -> dict:
    return {"service_code": "public_facilities", "lat": "34.7575", "long": "113.5951", **changes}


def _sub(**changes) -> o.Submission:
    return o.submission(_form(**changes), registry().categories, _tenant())


def test_every_category_is_a_service_with_its_chinese_name():
    listed = o.services(registry().categories)
    assert len(listed) == len(registry().categories) == 20
    facilities = next(s for s in listed if s["service_code"] == "public_facilities")
    assert facilities["service_name"] == "公共设施" and facilities["metadata"] is True
    assert o.definition("other", registry().categories)["attributes"][0]["code"] == "severity"
    with pytest.raises(o.Open311Error) as caught:
        o.definition("potholes", registry().categories)
    assert caught.value.code == 404 and caught.value.body()[0]["code"] == 404


def test_a_form_becomes_the_data_the_contract_takes():
    sub = _sub(
        description="缺井盖",
        phone="13912345678",
        email="a@b.c",
        account_id="u 42",
        media_url="https://p.example/x.jpg",
        **{"attribute[severity]": "major", "attribute[callback_required]": "yes"},
    )
    data = sub.data("citizen-app", "2026-12-04T10:00:00+08:00")
    assert data["location"] == {"lat": 34.7575, "lon": 113.5951} and "grid" not in data
    assert data["reporter"] == {"kind": "citizen", "id": "open311:u42", "phone": "13912345678"}
    assert data["severity"] == "major" and data["callback_required"] is True and data["client"] == "citizen-app"
    assert data["evidence_urls"] == ["https://p.example/x.jpg"] and "a@b.c" not in json.dumps(data)
    assert data["summary"] == "公共设施：缺井盖"  # too short alone to be a summary: the service names it
    contract = registry().events[(o.EVENT, 1)]
    assert contract.schema.validate(data) == {}


def test_an_address_is_placed_by_the_units_it_names():
    tenant = _tenant()
    at_grid = _sub(lat="", long="", address_string="秦江社区第二网格 3号楼")
    assert at_grid.grid == "410102-001-004-002" and at_grid.lat is None
    at_community = _sub(lat="", long="", address_string="秦江社区门口")
    office = tenant.geography.offices["410102-001-004"]
    assert (at_community.grid, at_community.lat, at_community.lon) == (None, office.lat, office.lon)
    at_street = _sub(lat="", long="", address_string="秦岭路街道某处")
    assert at_street.lat == tenant.geography.offices["410102-001"].lat


@pytest.mark.parametrize(
    "changes,code,words",
    [
        ({"service_code": ""}, 400, "service_code was not provided"),
        ({"service_code": "potholes"}, 404, "not found"),
        ({"lat": "", "long": ""}, 400, "a location is required"),
        ({"long": ""}, 400, "go together"),
        ({"lat": "nan"}, 400, "within"),
        ({"lat": "91"}, 400, "within"),
        ({"lat": "", "long": "", "address_string": "上海市"}, 400, "names no street"),
        ({"address_string": "x" * 251}, 400, "250"),
        ({"description": "x" * 481}, 400, "480"),
        ({"media_url": "ftp://x"}, 400, "media_url"),
        ({"phone": "12345"}, 400, "mobile"),
        ({"attribute[severity]": "huge"}, 400, "severity"),
        ({"attribute[callback_required]": "maybe"}, 400, "callback_required"),
    ],
)
def test_a_bad_form_is_an_error_with_the_specs_code(changes, code, words):
    with pytest.raises(o.Open311Error) as caught:
        _sub(**changes)
    assert caught.value.code == code and words in caught.value.description


def test_a_case_shows_as_a_service_request_without_its_reporter():
    case = {
        "id": "c-0123456789abcdef",
        "status": "closed",
        "outcome": "not_fixed",
        "category": "public_facilities",
        "summary": "井盖缺失",
        "received_at": "2026-12-04T02:00:00.000Z",
        "closed_at": "2026-12-05T02:00:00.000Z",
        "location": {"lat": 34.75, "lon": 113.59},
        "reporter": {"kind": "citizen", "id": "open311:u42", "phone": "13912345678"},
        "data": {"address_string": "秦江社区", "media_url": "https://p.example/x.jpg"},
    }
    orders = [{"department": "urban_management", "resolve_due": 1.0e9}, {"department": "water"}]
    view = o.request_view(case, orders, {"urban_management": "城市管理局", "water": "水务局"}, registry().categories)
    assert view["status"] == "closed" and "not fixed" in view["status_notes"]
    assert view["agency_responsible"] == "城市管理局、水务局" and view["expected_datetime"] is None
    assert view["updated_datetime"] == "2026-12-05T02:00:00.000Z" and (view["lat"], view["long"]) == (34.75, 113.59)
    assert "13912345678" not in json.dumps(view) and "open311:u42" not in json.dumps(view)


def test_queries_are_checked():
    cats = registry().categories
    assert o.query({"status": "open,closed", "service_code": "other"}, cats) == o.Query(
        (), ("other",), ("open", "closed")
    )
    for args, words in [
        ({"status": "pending"}, "status"),
        ({"service_code": "potholes"}, "not found"),
        ({"start_date": "yesterday"}, "w3 datetime"),
        ({"start_date": "2026-01-01T00:00:00"}, "zone"),
        ({"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-06-01T00:00:00Z"}, "90 days"),
        ({"start_date": "2026-02-01T00:00:00Z", "end_date": "2026-01-01T00:00:00Z"}, "before"),
        ({"service_request_id": ",".join(["x"] * 101)}, "at most"),
    ]:
        with pytest.raises(o.Open311Error, match=words):
            o.query(args, cats)


def test_xml_is_the_specs_shape():
    root = ET.fromstring(o.to_xml("services", o.services(registry().categories)[:2]))
    assert root.tag == "services" and [e.tag for e in root] == ["service", "service"]
    assert root.find("service/metadata").text == "true"
    definition = ET.fromstring(o.to_xml("service_definition", o.definition("other", registry().categories)))
    assert definition.find("attributes/attribute/values/value/key").text == "minor"
    errors = ET.fromstring(o.to_xml("errors", o.Open311Error(403, "api_key is invalid").body()))
    assert errors.find("error/code").text == "403" and o.to_xml("errors", []).startswith(b"<?xml")


class _Keys:
    def verify(self, api_key):
        return "citizen-app" if api_key == "o311_good" else None


class _Index:
    def __init__(self):
        self.tokens = {}

    def add(self, token, epoch):
        self.tokens.setdefault(token, epoch)

    def known(self, token):
        return token in self.tokens

    def between(self, start, end, limit):
        return [t for t, at in sorted(self.tokens.items(), key=lambda kv: -kv[1]) if start <= at <= end][:limit]


def _door(monkeypatch) -> tuple[Door, FakeBus]:
    import onegrid.app.open311 as app

    monkeypatch.setattr(app, "WAIT_FOR_CASE", 0.0)  # no intake here: the answer is the token
    bus = FakeBus()
    return Door(_tenant(), registry(), FakeStore(QINLING), _Keys(), _Index(), bus, FakeClock()), bus


def test_a_request_is_published_into_intake_as_the_contracts_event_and_intake_accepts_it(monkeypatch):
    door, bus = _door(monkeypatch)
    with pytest.raises(o.Open311Error) as caught:
        door.client(None)
    assert caught.value.code == 401
    with pytest.raises(o.Open311Error) as caught:
        door.client("o311_bad")
    assert caught.value.code == 403
    answer = door.submit(_form(description="路灯不亮已经三天了"), door.client("o311_good"))
    token = answer[0]["token"]
    sent = bus.published[0]
    assert (sent.exchange, sent.routing_key) == (topology.INTAKE, o.EVENT)
    assert sent.env.id == token and sent.env.source == f"/{QINLING}/open311" and sent.env.department == "governance"
    assert door.token(token) == [{"service_request_id": None, "token": token}]
    raw = RawEvent(json.dumps(sent.data).encode(), sent.env.headers(), "application/json", o.EVENT)
    verdict = admit(raw, _tenant(), registry(), "governance", locate=lambda lon, lat: ["410102-001-004-002"])
    assert isinstance(verdict, Accepted) and verdict.grid == "410102-001-004-002"
    assert door.case_of(token) == __import__("onegrid.domain.cases", fromlist=["x"]).case_id(verdict.dedup_key)
    with pytest.raises(o.Open311Error):
        door.token("unknown")


def test_the_door_speaks_for_governance_in_its_one_event_type_only():
    assert authenticated_department(f"{QINLING}.svc.open311", QINLING) == "governance"
    assert authenticated_department(f"{QINLING}.svc.intake", QINLING) is None
    door_user = next(u for u in users(_tenant(), [_Needs("open311")]) if u.who == "open311")
    assert [(t.exchange, t.write) for t in door_user.topic] == [
        (topology.INTAKE, r"^governance\.open311_request_received$")
    ]
    assert "onegrid\\.intake" in door_user.permissions.write
    other = next(u for u in users(_tenant(), [_Needs("scoring")]) if u.who == "scoring")
    assert other.topic == () and "onegrid\\.intake" not in other.permissions.write


class _Needs:
    def __init__(self, name):
        self.name, self.queues, self.rpc, self.client = name, (), False, False
