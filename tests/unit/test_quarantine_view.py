"""How the operator sees a quarantined event: a cut detail says so, --json carries the whole
detail and the original bytes, and a replayed event says it was replayed and how it first came."""

from __future__ import annotations

import base64
import json

from onegrid.cli.main import DETAIL_WIDTH, clip
from onegrid.domain.intake import first_transport, replayed
from onegrid.operator.ops import quarantine_record


def _entry(body: bytes, detail: str) -> dict:
    return {
        "id": "1-0",
        "reason": "schema_violation",
        "detail": detail,
        "department": "market_regulation",
        "transport": "http",
        "routing_key": "",
        "content_type": "application/cloudevents+json",
        "received_at": "2026-12-04T10:00:00+00:00",
        "headers": json.dumps({"x-og-user-id": "c.market_regulation"}),
        "body": body,
    }


def test_a_long_detail_is_cut_with_a_marker_and_a_short_one_is_not():
    two_fields = "data.grid: " + "g" * 80 + "; data.summary: must not be empty"
    cut = clip(two_fields, DETAIL_WIDTH)
    assert len(cut) == DETAIL_WIDTH and cut.endswith("…") and two_fields.startswith(cut[:-1])
    assert clip("short", DETAIL_WIDTH) == "short"
    assert clip(two_fields, None) == two_fields


def test_json_has_the_whole_detail_and_the_original_bytes():
    detail = "data.grid: unknown; " * 20
    text = quarantine_record(_entry("楼道堆放杂物".encode(), detail))
    assert text["detail"] == detail and text["body"] == "楼道堆放杂物" and text["bytes"] == 18
    assert text["headers"] == {"x-og-user-id": "c.market_regulation"}
    raw = b"\xff\xfe not utf-8"
    binary = quarantine_record(_entry(raw, detail))
    assert "body" not in binary and base64.b64decode(binary["body_base64"]) == raw
    json.dumps([text, binary])  # what --json prints


def test_a_replay_says_so_and_keeps_the_first_transport():
    assert replayed("http") == "replay (from http)"
    assert replayed(replayed("http")) == "replay (from http)"  # replayed twice: still from http
    assert first_transport("amqp") == "amqp"
