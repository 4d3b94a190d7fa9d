"""A department's receipt: its type, subject and id, and the id of a refused event as well as
it can be read (never one UTF-8 cannot carry)."""

import pytest

from onegrid.domain.receipts import Receipt, event_id_of, of_case
from onegrid.kernel import envelope as ce


def test_a_receipt_is_named_by_its_event_and_outcome():
    r = Receipt("accepted", "water", "evt-1", "2026-01-01T00:00:00.000Z", case_id="c-1")
    assert (r.type, r.subject, r.id) == ("event.accepted", "evt-1", "evt-1.accepted")
    assert r.as_dict() == {
        "outcome": "accepted",
        "department": "water",
        "event_id": "evt-1",
        "at": "2026-01-01T00:00:00.000Z",
        "case_id": "c-1",
    }
    nameless = Receipt("quarantined", "water", "", "t", reason="malformed_json", quarantine_id="1-0")
    assert (nameless.subject, nameless.id) == ("quarantine/1-0", "quarantine/1-0.quarantined")
    with pytest.raises(ValueError, match="outcome"):
        Receipt("lost", "water", "evt-1", "t")


def test_a_merged_case_tells_merged_else_accepted():
    case = {"id": "c-2", "event_id": "evt-2", "source": "/s"}
    assert of_case(case, "water", "t").type == "event.accepted"
    merged = of_case({**case, "merged_into": "c-1"}, "water", "t")
    assert (merged.type, merged.case_id, merged.merged_into, merged.source) == ("event.merged", "c-2", "c-1", "/s")


def test_the_id_of_a_refused_event():
    assert event_id_of({"ce-id": "a"}, b"", ce.JSON) == "a"
    assert event_id_of({"ce-id": b"b"}, b"", ce.JSON) == "b"
    assert event_id_of({}, b'{"id": "c"}', ce.STRUCTURED) == "c"
    assert event_id_of({}, b"{not json", ce.STRUCTURED) == ""
    assert event_id_of({}, b'{"id": "c"}', ce.JSON) == ""  # binary mode: the id is a header
    assert event_id_of({"ce-id": "\ud800x"}, b"", ce.JSON) == ""  # a lone surrogate: not sayable
    assert event_id_of({}, b'{"id": "\\ud800"}', ce.STRUCTURED) == ""
