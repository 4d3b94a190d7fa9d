"""The CloudEvents envelope: binary headers, structured objects, and every way one is refused."""

import json
import re
from datetime import datetime

import pytest

from onegrid.kernel import envelope as ce
from onegrid.kernel.envelope import Envelope, EnvelopeError, parse_dataschema


def _env(**changes) -> Envelope:
    attrs = dict(
        id="evt-1",
        source="/t/departments/water/app",
        type="water.flood_risk_reported",
        tenant="zhongyuan-qinling",
        department="water",
        time="2024-05-01T08:00:00+08:00",
        subject="410102-001-001-001",
        dataschema="urn:onegrid:contract:water.flood_risk_reported:1",
    )
    attrs.update(changes)
    return Envelope(**attrs)


def _structured(**changes) -> dict:
    obj = _env().structured({"k": "v"})
    obj.update(changes)
    return {k: v for k, v in obj.items() if v is not None}


def _reason(call) -> str:
    with pytest.raises(EnvelopeError) as info:
        call()
    return info.value.reason


# -- binary mode ------------------------------------------------------------------------


def test_headers_are_ce_prefixed_and_round_trip():
    env = _env()
    headers = env.headers()
    assert headers["ce-id"] == "evt-1" and headers["ce-specversion"] == "1.0"
    assert headers["ce-tenant"] == "zhongyuan-qinling" and headers["ce-department"] == "water"
    assert all(k.startswith("ce-") for k in headers)
    assert "ce-datacontenttype" not in headers  # the content type travels as the message's own
    assert Envelope.from_headers(headers) == env


def test_headers_leave_out_unset_optional_attributes():
    env = _env(time=None, subject=None, dataschema=None)
    headers = env.headers()
    assert set(headers) == {"ce-id", "ce-source", "ce-type", "ce-tenant", "ce-department", "ce-specversion"}
    assert Envelope.from_headers(headers) == env


@pytest.mark.parametrize("case", [str.upper, str.title, lambda k: k.replace("ce-", "Ce-")])
def test_header_names_are_case_insensitive(case):
    env = _env()
    headers = {case(k): v for k, v in env.headers().items()}
    assert Envelope.from_headers(headers) == env


def test_from_headers_ignores_unrelated_headers():
    headers = {**_env().headers(), "content-type": "application/json", "x-trace": "abc"}
    assert Envelope.from_headers(headers) == _env()


@pytest.mark.parametrize("name", ce.REQUIRED)
def test_missing_required_header(name):
    headers = _env().headers()
    del headers[f"ce-{name}"]
    with pytest.raises(EnvelopeError) as info:
        Envelope.from_headers(headers)
    assert info.value.reason == "missing_attribute"
    assert name in str(info.value)


@pytest.mark.parametrize("name", ["id", "source", "tenant"])
def test_empty_required_header_is_missing(name):
    headers = {**_env().headers(), f"ce-{name}": ""}
    assert _reason(lambda: Envelope.from_headers(headers)) == "missing_attribute"


def test_no_headers_at_all_is_missing_attribute():
    assert _reason(lambda: Envelope.from_headers(None)) == "missing_attribute"
    assert _reason(lambda: Envelope.from_headers({})) == "missing_attribute"


@pytest.mark.parametrize("name,value", [("id", 5), ("source", b"/bytes"), ("subject", 1.5), ("time", ["x"])])
def test_non_string_attribute_is_invalid(name, value):
    headers = {**_env().headers(), f"ce-{name}": value}
    with pytest.raises(EnvelopeError) as info:
        Envelope.from_headers(headers)
    assert info.value.reason == "invalid_attribute"
    assert name in info.value.detail and "string" in info.value.detail


@pytest.mark.parametrize("version", ["0.3", "1", "2.0"])
def test_wrong_specversion_is_invalid(version):
    headers = {**_env().headers(), "ce-specversion": version}
    with pytest.raises(EnvelopeError) as info:
        Envelope.from_headers(headers)
    assert info.value.reason == "invalid_attribute" and "specversion" in info.value.detail


@pytest.mark.parametrize("time", ["2024-05-01T08:00:00", "2024-05-01", "yesterday", "2024-13-01T00:00:00Z"])
def test_time_without_offset_or_unparseable_is_invalid(time):
    headers = {**_env().headers(), "ce-time": time}
    with pytest.raises(EnvelopeError) as info:
        Envelope.from_headers(headers)
    assert info.value.reason == "invalid_attribute" and "time" in info.value.detail


@pytest.mark.parametrize("time", ["2024-05-01T08:00:00Z", "2024-05-01T08:00:00.123+08:00", "2024-05-01T00:00:00-05:00"])
def test_time_with_offset_is_accepted(time):
    assert Envelope.from_headers({**_env().headers(), "ce-time": time}).time == time


@pytest.mark.parametrize("name", ["id", "source", "subject"])
def test_attribute_longer_than_256_is_invalid(name):
    assert Envelope.from_headers({**_env().headers(), f"ce-{name}": "x" * 256}) is not None
    headers = {**_env().headers(), f"ce-{name}": "x" * 257}
    with pytest.raises(EnvelopeError) as info:
        Envelope.from_headers(headers)
    assert info.value.reason == "invalid_attribute" and "256" in info.value.detail


# -- structured mode --------------------------------------------------------------------


def test_structured_round_trip():
    env = _env()
    obj = env.structured({"k": "v"})
    assert obj["data"] == {"k": "v"} and obj["datacontenttype"] == ce.JSON and obj["specversion"] == "1.0"
    assert Envelope.from_structured(obj) == env


def test_structured_without_datacontenttype_defaults_to_json():
    obj = _structured()
    del obj["datacontenttype"]
    assert Envelope.from_structured(obj).datacontenttype == ce.JSON


@pytest.mark.parametrize("ctype", ["text/plain", "application/xml", "application/cloudevents+json"])
def test_structured_datacontenttype_must_be_json(ctype):
    with pytest.raises(EnvelopeError) as info:
        Envelope.from_structured(_structured(datacontenttype=ctype))
    assert info.value.reason == "invalid_attribute" and "datacontenttype" in info.value.detail


@pytest.mark.parametrize("name", ce.REQUIRED)
def test_structured_missing_attribute(name):
    obj = _structured()
    del obj[name]
    with pytest.raises(EnvelopeError) as info:
        Envelope.from_structured(obj)
    assert info.value.reason == "missing_attribute" and name in info.value.detail


def test_structured_non_string_attribute_is_invalid():
    assert _reason(lambda: Envelope.from_structured(_structured(id=42))) == "invalid_attribute"
    assert _reason(lambda: Envelope.from_structured(_structured(tenant={"id": "x"}))) == "invalid_attribute"


def test_structured_wrong_specversion_and_naive_time_are_invalid():
    assert _reason(lambda: Envelope.from_structured(_structured(specversion="0.3"))) == "invalid_attribute"
    assert _reason(lambda: Envelope.from_structured(_structured(time="2024-05-01T08:00:00"))) == "invalid_attribute"


# -- dataschema ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri,expected",
    [
        ("urn:onegrid:contract:water.flood_risk_reported:1", ("water.flood_risk_reported", 1)),
        (
            "urn:onegrid:contract:market_regulation.unlicensed_business_reported:12",
            ("market_regulation.unlicensed_business_reported", 12),
        ),
    ],
)
def test_parse_dataschema_good(uri, expected):
    assert parse_dataschema(uri) == expected


@pytest.mark.parametrize(
    "uri",
    [
        None,
        "",
        "urn:onegrid:contract:water.flood_risk_reported",  # no version
        "urn:onegrid:contract:water.flood_risk_reported:0",  # versions start at 1
        "urn:onegrid:contract:water.flood_risk_reported:01",
        "urn:onegrid:contract:water.flood_risk_reported:v1",
        "urn:onegrid:contract:water:1",  # no event type
        "urn:onegrid:contract:Water.Flood:1",
        "urn:other:contract:water.flood_risk_reported:1",
        "https://example.com/schemas/water.flood_risk_reported/1",
    ],
)
def test_parse_dataschema_bad(uri):
    with pytest.raises(EnvelopeError) as info:
        parse_dataschema(uri)
    assert info.value.reason == "invalid_attribute"


def test_dataschema_and_parse_are_inverse():
    assert parse_dataschema(ce.dataschema("health.fire_x", 3)) == ("health.fire_x", 3)
    assert _env().contract == ("water.flood_risk_reported", 1)


def test_contract_of_envelope_without_dataschema_is_invalid():
    with pytest.raises(EnvelopeError):
        _ = _env(dataschema=None).contract


# -- new() ------------------------------------------------------------------------


def test_new_fills_id_time_and_dataschema():
    a = ce.new(tenant="t-one", department="water", type="water.flood_risk_reported", source="/s", version=2)
    b = ce.new(tenant="t-one", department="water", type="water.flood_risk_reported", source="/s", version=2)
    assert a.id != b.id and re.fullmatch(r"[0-9a-f-]{36}", a.id)
    assert a.dataschema == "urn:onegrid:contract:water.flood_risk_reported:2"
    assert a.contract == ("water.flood_risk_reported", 2)
    assert datetime.fromisoformat(a.time.replace("Z", "+00:00")).tzinfo is not None
    assert a.specversion == "1.0" and a.subject is None
    assert Envelope.from_headers(a.headers()) == a  # what new() makes, intake can read


def test_new_keeps_given_id_time_and_subject():
    env = ce.new(
        tenant="t-one",
        department="water",
        type="water.x_y",
        source="/s",
        id="fixed",
        time="2024-01-01T00:00:00Z",
        subject="grid-1",
    )
    assert (env.id, env.time, env.subject) == ("fixed", "2024-01-01T00:00:00Z", "grid-1")


def test_now_is_utc_with_z():
    stamp = ce.now()
    assert stamp.endswith("Z")
    assert datetime.fromisoformat(stamp.replace("Z", "+00:00")).utcoffset().total_seconds() == 0


@pytest.mark.parametrize(
    "value, ok",
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ('Application/JSON;charset="UTF-8"', True),
        ("application/json; charset=latin-1", False),
        ("application/jsonx", False),
        ("text/plain", False),
        (None, False),
        (7, False),
    ],
)
def test_json_media_types_with_parameters(value, ok):
    assert ce.is_json(value) is ok


def test_http_header_values_are_percent_decoded_as_utf8():
    assert ce.from_http_header("a%20b%25%22%E9%A3%9F") == 'a b%"食'
    assert ce.from_http_header("50%off") == "50%off"  # not an escape: kept
    headers = {**_env().headers(), "ce-id": ce.from_http_header("x%FF")}  # not UTF-8 once decoded
    assert _reason(lambda: Envelope.from_headers(headers)) == "invalid_attribute"


def test_a_lifecycle_event_carries_its_chain_head_as_an_extension_attribute():
    head = "3:" + "a" * 64
    env = ce.new(tenant="t", department="d", type="case.closed", source="/t/supervision", chainhead=head)
    headers = env.headers()
    assert headers["ce-chainhead"] == head
    assert ce.Envelope.from_headers(headers).chainhead == head
    assert ce.Envelope.from_structured(env.structured({})).chainhead == head
    # information, never a reason to refuse: what is not text of a sane length is dropped
    assert ce.Envelope.from_headers({**headers, "ce-chainhead": 7}).chainhead is None
    assert ce.Envelope.from_headers({**headers, "ce-chainhead": "x" * 300}).chainhead is None
    assert "ce-chainhead" not in ce.new(tenant="t", department="d", type="x.y", source="/s").headers()


def test_json_bytes_is_utf8_and_escapes_only_a_lone_surrogate():
    assert ce.json_bytes({"a": "大"}) == '{"a":"大"}'.encode()
    kept = ce.json_bytes({"ce-source": ce.from_http_header("x%DB")})  # a header byte that was not UTF-8
    assert kept == b'{"ce-source":"x\\udcdb"}' and json.loads(kept) == {"ce-source": "x\udcdb"}
    assert ce.json_bytes([1, 2], separators=None) == b"[1, 2]"
