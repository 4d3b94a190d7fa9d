"""admit(): from raw bytes and headers to Accepted, or Rejected with one bounded reason."""

import json

import pytest

from onegrid.app.registry import load_strict
from onegrid.domain.intake import REASONS, Accepted, RawEvent, Rejected, admit, expired, on_resend
from onegrid.kernel import envelope as ce

from .helpers import JINCHENG, QINLING, binary, copy_contracts, edit_yaml, envelope_for, registry, sample_data

FLOOD = "water.flood_risk_reported"
GRID_REPORT = "governance.grid_report_submitted"
GRID = "410102-001-003-002"


def _tenant(tid=QINLING):
    return registry().tenants[tid]


def _contract(key, version=1):
    return registry().events[(key, version)]


def _event(key=FLOOD, tid=QINLING, seed=0, **data_changes):
    contract, tenant = _contract(key), _tenant(tid)
    data = sample_data(contract, tenant, seed=seed, grid=GRID if tid == QINLING else None, severity="major")
    data.update(data_changes)
    return envelope_for(contract, tenant), data


def _admit(raw, tenant=None, reg=None):
    return admit(raw, tenant or _tenant(), reg or registry())


# -- accepted ---------------------------------------------------------------------------


def test_valid_event_with_fixed_category_is_accepted():
    env, data = _event()
    result = _admit(binary(env, data))
    assert isinstance(result, Accepted), result
    assert result.category == "water_hazard"
    assert (result.severity, result.grid, result.version) == ("major", GRID, 1)
    assert result.envelope == env and result.data == data


@pytest.mark.parametrize("category", ["dispute", "other", "illegal_business"])
def test_grid_report_takes_the_category_from_its_field(category):
    env, data = _event(GRID_REPORT, category=category)
    result = _admit(binary(env, data))
    assert isinstance(result, Accepted), result
    assert result.category == category


@pytest.mark.parametrize("key", sorted(k for k, _ in registry().events))
def test_every_contract_accepts_its_sample(key):
    contract = _contract(key)
    for tid in (QINLING, JINCHENG):
        tenant = _tenant(tid)
        data = sample_data(contract, tenant, seed=3, severity="critical", grid=tenant.grids()[-1].code)
        result = _admit(binary(envelope_for(contract, tenant), data), tenant)
        assert isinstance(result, Accepted), result
        assert result.category == (contract.category or data["category"])
        assert result.grid == tenant.grids()[-1].code and result.severity == "critical"


def test_http_binary_without_routing_key_is_accepted():
    env, data = _event()
    assert isinstance(_admit(binary(env, data, routing_key=None)), Accepted)


@pytest.mark.parametrize("ctype", [ce.STRUCTURED, ce.STRUCTURED + "; charset=utf-8"])
def test_structured_mode_is_accepted(ctype):
    env, data = _event()
    raw = RawEvent(json.dumps(env.structured(data)).encode(), {}, ctype, None, "http")
    result = _admit(raw)
    assert isinstance(result, Accepted), result
    assert result.envelope == env and result.data == data and result.category == "water_hazard"


def test_structured_mode_ignores_ce_headers():
    env, data = _event()
    raw = RawEvent(json.dumps(env.structured(data)).encode(), {"ce-tenant": "someone-else"}, ce.STRUCTURED)
    assert isinstance(_admit(raw), Accepted)


def test_data_survives_unicode():
    env, data = _event(summary="楼道堆放杂物，存在消防隐患")
    result = _admit(binary(env, data))
    assert isinstance(result, Accepted) and result.data["summary"] == "楼道堆放杂物，存在消防隐患"


# -- rejected: one test per reason ------------------------------------------------------


def _rejected(raw, reason, department="unknown", tenant=None, reg=None) -> Rejected:
    result = _admit(raw, tenant, reg)
    assert isinstance(result, Rejected), result
    assert result.reason == reason, result
    assert result.department == department, result
    assert result.detail
    return result


def test_payload_too_large():
    env, data = _event(summary="大" * 30000)  # 90,000 bytes of UTF-8
    raw = binary(env, data)
    assert len(raw.body) > _tenant().max_payload_bytes
    r = _rejected(raw, "payload_too_large")
    assert str(len(raw.body)) in r.detail


def test_payload_at_the_limit_is_not_too_large():
    env, data = _event()
    body = json.dumps(data).encode()
    padded = body[:-1] + b" " * (_tenant().max_payload_bytes - len(body)) + b"}"
    assert len(padded) == _tenant().max_payload_bytes
    assert isinstance(_admit(binary(env, data, body=padded)), Accepted)


@pytest.mark.parametrize("body", [b'{"summary": "\xff\xfe"}', "网格".encode("gbk")])
def test_invalid_encoding(body):
    env, data = _event()
    _rejected(binary(env, data, body=body), "invalid_encoding")


@pytest.mark.parametrize("body", [b'{"grid": ', b"", b"not json", b"[" * 60000])  # the last: too deep to parse
def test_malformed_json(body):
    env, data = _event()
    _rejected(binary(env, data, body=body), "malformed_json")


def test_structured_event_must_be_an_object():
    _rejected(RawEvent(b"[1, 2]", {}, ce.STRUCTURED), "malformed_json")


@pytest.mark.parametrize("header", ["ce-id", "ce-source", "ce-type", "ce-specversion", "ce-tenant", "ce-department"])
def test_missing_attribute(header):
    env, data = _event()
    raw = binary(env, data)
    del raw.headers[header]
    r = _rejected(raw, "missing_attribute")
    assert header[3:] in r.detail


def test_structured_missing_attribute():
    env, data = _event()
    obj = env.structured(data)
    del obj["source"]
    _rejected(RawEvent(json.dumps(obj).encode(), {}, ce.STRUCTURED), "missing_attribute")


@pytest.mark.parametrize(
    "headers",
    [
        {"ce-specversion": "0.3"},
        {"ce-time": "2024-05-01T08:00:00"},
        {"ce-dataschema": "https://schemas.example.com/flood"},
        {"ce-id": "x" * 300},
    ],
)
def test_invalid_attribute(headers):
    env, data = _event()
    _rejected(binary(env, data, headers=headers), "invalid_attribute")


def test_missing_dataschema_is_invalid_attribute():
    env, data = _event()
    raw = binary(env, data)
    del raw.headers["ce-dataschema"]
    _rejected(raw, "invalid_attribute")


def test_dataschema_of_another_type_of_the_same_department_is_invalid_attribute():
    env, data = _event()
    r = _rejected(
        binary(env, data, headers={"ce-dataschema": ce.dataschema("water.drainage_fault_reported", 1)}),
        "invalid_attribute",
        "water",
    )
    assert "water.drainage_fault_reported" in r.detail and FLOOD in r.detail


def test_structured_datacontenttype_not_json_is_invalid_attribute():
    env, data = _event()
    obj = {**env.structured(data), "datacontenttype": "text/plain"}
    _rejected(RawEvent(json.dumps(obj).encode(), {}, ce.STRUCTURED), "invalid_attribute")


def test_unknown_tenant_names_the_department():
    env, data = _event()
    r = _rejected(binary(env, data, headers={"ce-tenant": "some-other-county"}), "unknown_tenant", "water")
    assert "some-other-county" in r.detail


def test_event_for_the_other_demo_tenant_is_unknown_tenant():
    env, data = _event(tid=JINCHENG)
    _rejected(binary(env, data), "unknown_tenant", "water", tenant=_tenant(QINLING))


def test_unknown_department():
    env, data = _event()
    raw = binary(
        env,
        data,
        routing_key="tourism.scenic_spot_crowded",
        headers={
            "ce-department": "tourism",
            "ce-type": "tourism.scenic_spot_crowded",
            "ce-dataschema": ce.dataschema("tourism.scenic_spot_crowded", 1),
        },
    )
    r = _rejected(raw, "unknown_department", "unknown")
    assert "tourism" in r.detail


@pytest.fixture(scope="module")
def without_party_building(tmp_path_factory):
    """A registry whose Qinling tenant does not enable party_building (its routing rules dropped),
    and whose grid pattern admits any node code (so the grid-tree check is what refuses a non-grid)."""
    root = copy_contracts(tmp_path_factory.mktemp("contracts"))

    def drop(doc):
        doc["departments"].remove("party_building")
        doc["routing"] = [
            r for r in doc["routing"] if "party_building" not in r["departments"] + r.get("alternates", [])
        ]

    edit_yaml(root / "tenants" / f"{QINLING}.yaml", drop)
    edit_yaml(root / "common.yaml", lambda d: d["case_fields"]["grid"].update(pattern="^[0-9]{6}(-[0-9]{3}){0,3}$"))
    return load_strict(root)


def test_department_disabled(without_party_building):
    reg = without_party_building
    tenant = reg.tenants[QINLING]
    assert "party_building" not in tenant.departments and "party_building" in reg.departments
    contract = reg.events[("party_building.grid_party_group_inactive", 1)]
    data = sample_data(contract, tenant, seed=1)
    r = _rejected(
        binary(envelope_for(contract, tenant), data), "department_disabled", "party_building", tenant=tenant, reg=reg
    )
    assert QINLING in r.detail
    # the same event is welcome where the department is enabled
    assert isinstance(admit(binary(envelope_for(contract, _tenant()), data), _tenant(), registry()), Accepted)


def test_type_of_another_department_is_department_mismatch():
    env, data = _event()
    other = "health.infectious_disease_suspected"
    raw = binary(env, data, routing_key=other, headers={"ce-type": other, "ce-dataschema": ce.dataschema(other, 1)})
    r = _rejected(raw, "department_mismatch", "water")
    assert other in r.detail


def test_routing_key_of_another_department_is_department_mismatch():
    env, data = _event()
    r = _rejected(binary(env, data, routing_key="health.infectious_disease_suspected"), "department_mismatch", "water")
    assert "routing key" in r.detail


def test_routing_key_of_another_type_of_the_same_department_is_department_mismatch():
    env, data = _event()
    r = _rejected(binary(env, data, routing_key="water.drainage_fault_reported"), "department_mismatch", "water")
    assert "differs" in r.detail


def test_dataschema_of_another_department_is_department_mismatch():
    env, data = _event()
    r = _rejected(
        binary(env, data, headers={"ce-dataschema": ce.dataschema("health.infectious_disease_suspected", 1)}),
        "department_mismatch",
        "water",
    )
    assert "dataschema" in r.detail


def test_unknown_event_type():
    env, data = _event()
    key = "water.no_such_event"
    raw = binary(env, data, routing_key=key, headers={"ce-type": key, "ce-dataschema": ce.dataschema(key, 1)})
    r = _rejected(raw, "unknown_event_type", "water")
    assert key in r.detail


def test_unknown_version():
    env, data = _event()
    r = _rejected(binary(env, data, headers={"ce-dataschema": ce.dataschema(FLOOD, 9)}), "unknown_version", "water")
    assert "9" in r.detail and "[1]" in r.detail


@pytest.mark.parametrize(
    "change,path",
    [
        (lambda d: d.update(severity=5), "severity"),
        (lambda d: d.pop("reporter"), "reporter"),
        (lambda d: d["reporter"].update(kind="alien"), "reporter.kind"),
        (lambda d: d.update(location={"lat": 91, "lon": 0}), "location.lat"),
        (lambda d: d.update(water_depth_cm="5"), "water_depth_cm"),
        (lambda d: d.update(hazzard="other"), "hazzard"),
        (lambda d: d.update(occurred_at="2024-05-01T08:00:00"), "occurred_at"),
        (lambda d: d.update(grid="4" * 65), "grid"),  # longer than any grid code (a community's: unknown_grid)
    ],
)
def test_schema_violation_names_the_field(change, path):
    env, data = _event()
    change(data)
    r = _rejected(binary(env, data), "schema_violation", "water")
    assert r.detail.startswith(f"{FLOOD} v1: ")
    assert f"{path}:" in r.detail, r.detail


def test_schema_violation_in_a_list_names_the_list_and_index():
    env, data = _event(evidence_urls=["https://a.example.com/1.jpg", "ftp://b.example.com/2.jpg"])
    r = _rejected(binary(env, data), "schema_violation", "water")
    assert "evidence_urls" in r.detail and "[1]" in r.detail and "[0]" not in r.detail


def test_schema_violation_list_path_has_no_dot_before_the_index():
    env, data = _event(evidence_urls=["https://a.example.com/1.jpg", "ftp://b.example.com/2.jpg"])
    r = _rejected(binary(env, data), "schema_violation", "water")
    assert "evidence_urls[1]: Not a valid URL." in r.detail, r.detail


def test_schema_violation_lists_every_field_sorted():
    env, data = _event(severity="huge", summary="x")
    r = _rejected(binary(env, data), "schema_violation", "water")
    assert r.detail.index("severity:") < r.detail.index("summary:")


@pytest.mark.parametrize("body", [b"[]", b'"text"', b"42", b"null"])
def test_data_that_is_not_an_object_is_schema_violation(body):
    env, data = _event()
    _rejected(binary(env, data, body=body), "schema_violation", "water")


def test_bare_nan_in_the_body_is_refused():
    env, data = _event()
    body = json.dumps({**data, "location": {"lat": float("nan"), "lon": 113.6}}).encode()
    assert b"NaN" in body
    assert isinstance(_admit(binary(env, data, body=body)), Rejected)


def test_unknown_grid():
    env, data = _event(grid="410102-001-999-001")
    r = _rejected(binary(env, data), "unknown_grid", "water")
    assert "410102-001-999-001" in r.detail


def test_grid_of_the_other_tenant_is_unknown_grid():
    env, data = _event(grid=_tenant(JINCHENG).grids()[0].code)
    _rejected(binary(env, data), "unknown_grid", "water")


@pytest.mark.parametrize("level", ["community", "street", "county"])
def test_a_node_that_is_not_a_grid_is_unknown_grid(without_party_building, level):
    reg = without_party_building
    tenant = reg.tenants[QINLING]
    code = tenant.ancestor(GRID, level).code
    contract = reg.events[(FLOOD, 1)]
    data = sample_data(contract, tenant, grid=code)
    r = _rejected(binary(envelope_for(contract, tenant), data), "unknown_grid", "water", tenant=tenant, reg=reg)
    assert code in r.detail


def _one_bad_event_per_reason():
    """reason -> (raw, tenant): one compact example of every reason admit() can give."""
    import dataclasses

    env, data = _event()
    qinling = _tenant()
    other = "health.infectious_disease_suspected"

    def hdrs(**h):
        return binary(env, data, headers={f"ce-{k}": v for k, v in h.items()})

    no_id = binary(env, data)
    del no_id.headers["ce-id"]
    return {
        "payload_too_large": (binary(env, data, body=b" " * 70000), qinling),
        "invalid_encoding": (binary(env, data, body=b"\xff"), qinling),
        "malformed_json": (binary(env, data, body=b"{"), qinling),
        "missing_attribute": (no_id, qinling),
        "invalid_attribute": (hdrs(specversion="2.0"), qinling),
        "unknown_tenant": (hdrs(tenant="elsewhere"), qinling),
        "unknown_department": (hdrs(department="tourism"), qinling),
        "department_disabled": (
            binary(env, data),
            dataclasses.replace(qinling, departments=tuple(d for d in qinling.departments if d != "water")),
        ),
        "department_mismatch": (binary(env, data, routing_key=other + "x"), qinling),
        "unknown_event_type": (
            binary(
                env,
                data,
                routing_key="water.nope",
                headers={"ce-type": "water.nope", "ce-dataschema": ce.dataschema("water.nope", 1)},
            ),
            qinling,
        ),
        "unknown_version": (hdrs(dataschema=ce.dataschema(FLOOD, 2)), qinling),
        "schema_violation": (binary(env, {**data, "extra": 1}), qinling),
        "unknown_grid": (binary(env, {**data, "grid": "410102-009-009-009"}), qinling),
        "outside_county": (binary(env, _located(data, 0.0, 0.0)), qinling),
    }


def test_every_reason_but_id_reused_has_an_example():
    examples = _one_bad_event_per_reason()
    # id_reused is on_resend()'s to give; unauthenticated and spoofed need an identity (test_identity.py);
    # expired is the broker's (an event dead-lettered unread: test_an_event_whose_ttl_runs_out...)
    assert set(examples) == set(REASONS) - {"id_reused", "unauthenticated", "spoofed", "expired"}
    for reason, (raw, tenant) in examples.items():
        result = admit(raw, tenant, registry(), locate=lambda lon, lat: [])  # no grid covers any point
        assert isinstance(result, Rejected) and result.reason == reason, (reason, result)


# -- identity -------------------------------------------------------------------------


def test_dedup_key_is_department_source_and_id():
    env, data = _event()
    result = _admit(binary(env, data))
    assert result.dedup_key == f"water|{env.source}|{env.id}"


def test_dedup_key_and_digest_are_stable():
    env, data = _event()
    first, again = _admit(binary(env, data)), _admit(binary(env, data))
    assert (first.dedup_key, first.digest) == (again.dedup_key, again.digest)
    reordered = json.dumps(dict(reversed(list(data.items())))).encode()
    assert _admit(binary(env, data, body=reordered)).digest == first.digest
    structured = _admit(RawEvent(json.dumps(env.structured(data)).encode(), {}, ce.STRUCTURED))
    assert (structured.dedup_key, structured.digest) == (first.dedup_key, first.digest)
    assert len(first.digest) == 32 and int(first.digest, 16) >= 0


def test_digest_follows_content_and_dedup_key_follows_identity():
    env, data = _event()
    first = _admit(binary(env, data))
    other_id = envelope_for(_contract(FLOOD), _tenant(), id="evt-2")
    second = _admit(binary(other_id, data))
    assert second.dedup_key != first.dedup_key and second.digest == first.digest
    changed = _admit(binary(env, {**data, "summary": "something else entirely"}))
    assert changed.dedup_key == first.dedup_key and changed.digest != first.digest
    other_source = envelope_for(_contract(FLOOD), _tenant(), source="/elsewhere")
    assert _admit(binary(other_source, data)).dedup_key != first.dedup_key


@pytest.mark.parametrize(
    "digest,recorded,status,expected",
    [
        ("a", "a", "registered", "republish"),
        ("a", "a", "dispatched", "duplicate"),
        ("a", "a", "resolved", "duplicate"),
        ("a", "b", "registered", "id_reused"),
        ("a", "b", "dispatched", "id_reused"),
        ("a", "b", "resolved", "id_reused"),
    ],
)
def test_on_resend_truth_table(digest, recorded, status, expected):
    assert on_resend(digest, recorded, status) == expected


def test_an_expired_event_is_rejected_with_its_department_and_ttl():
    rejected = expired("water", "250")
    assert (rejected.reason, rejected.department) == ("expired", "water") and "of 250 ms" in rejected.detail
    assert expired(None, None).department == "unknown" and "quarantine replay" in expired(None, None).detail


def test_reasons_are_bounded_codes():
    assert len(REASONS) == 18
    assert all(code.replace("_", "").isalpha() and code.islower() for code in REASONS)


# -- placing an event by its location ---------------------------------------------------------


def _located(data: dict, lat: float, lon: float) -> dict:
    """The event without its grid, at (lat, lon)."""
    return {**{k: v for k, v in data.items() if k != "grid"}, "location": {"lat": lat, "lon": lon}}


def _boxes(*boxes):
    """A fake GridLocator.covering over (code, lon0, lat0, lon1, lat1) rectangles; the calls it saw."""
    seen = []

    def covering(lon, lat):
        seen.append((lon, lat))
        return [code for code, x0, y0, x1, y1 in boxes if x0 <= lon <= x1 and y0 <= lat <= y1]

    return covering, seen


def test_an_event_with_a_location_and_no_grid_is_placed_in_the_grid_covering_it():
    env, data = _event()
    locate, seen = _boxes(("410102-001-002-003", 113.59, 34.75, 113.60, 34.76))
    result = admit(binary(env, _located(data, 34.755, 113.595)), _tenant(), registry(), locate=locate)
    assert isinstance(result, Accepted), result
    assert result.grid == "410102-001-002-003" and "grid" not in result.data  # the data stays as sent
    assert seen == [(113.595, 34.755)]  # the boundaries are WGS84: the point is asked as it came


def test_a_point_on_a_shared_edge_goes_to_the_lowest_code_whatever_the_order():
    env, data = _event()
    locate, _ = _boxes(
        ("410102-001-002-004", 113.5, 34.7, 113.6, 34.8), ("410102-001-002-001", 113.5, 34.7, 113.6, 34.8)
    )
    result = admit(binary(env, _located(data, 34.75, 113.55)), _tenant(), registry(), locate=locate)
    assert isinstance(result, Accepted) and result.grid == "410102-001-002-001"


def test_a_point_outside_every_grid_is_quarantined_as_outside_the_county():
    env, data = _event()
    locate, _ = _boxes(("410102-001-002-003", 113.59, 34.75, 113.60, 34.76))
    result = admit(binary(env, _located(data, 39.9, 116.4)), _tenant(), registry(), locate=locate)
    assert isinstance(result, Rejected) and result.reason == "outside_county" and result.department == "water"
    assert "lat 39.900000, lon 116.400000" in result.detail and QINLING in result.detail


def test_an_event_with_neither_grid_nor_location_says_to_give_one():
    env, data = _event()
    bare = {k: v for k, v in data.items() if k not in ("grid", "location")}
    result = admit(binary(env, bare), _tenant(), registry(), locate=lambda lon, lat: [])
    assert isinstance(result, Rejected) and result.reason == "schema_violation"
    assert "give the grid's code, or a location" in result.detail


def test_a_county_without_boundaries_needs_the_grid():
    import dataclasses

    env, data = _event()
    bare = dataclasses.replace(_tenant(), geography=None)
    result = admit(binary(env, _located(data, 34.755, 113.595)), bare, registry(), locate=lambda lon, lat: [])
    assert isinstance(result, Rejected) and result.reason == "schema_violation"
    assert "has drawn no grid boundaries" in result.detail


def test_a_gcj02_county_is_asked_in_gcj02():
    import dataclasses

    from onegrid.domain.geo import wgs84_to_gcj02

    env, data = _event()
    tenant = _tenant()
    assert tenant.geography is not None
    gcj = dataclasses.replace(tenant, geography=dataclasses.replace(tenant.geography, crs="GCJ-02"))
    locate, seen = _boxes(("410102-001-002-003", 113.0, 34.0, 114.0, 35.0))
    assert isinstance(admit(binary(env, _located(data, 34.755, 113.595)), gcj, registry(), locate=locate), Accepted)
    assert seen == [wgs84_to_gcj02(113.595, 34.755)] and seen[0] != (113.595, 34.755)
