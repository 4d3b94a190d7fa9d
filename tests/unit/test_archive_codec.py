"""The archived form of a closed case (onegrid.adapters.redis.archive): pure round trips."""

import json
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onegrid.adapters.redis.archive import V1, Archived, Unreadable, pack, unpack
from onegrid.domain import timeline as tl

CASE = {
    "id": "c-68a5020f769821fe",
    "status": "closed",
    "category": "illegal_construction",
    "summary": "[illegal_construction] 楼道占道",
    "data": {"reporter": {"kind": "grid_worker", "id": "巡查"}, "area_m2": 663.897543, "under_construction": True},
    "location": None,
    "at": 1796430677.093,
    "version": 1,
    "evidence_urls": ["https://evidence.onegrid.invalid/site-photo.jpg"],
}
WOS = [{"id": "w-68a5020f769821fe-urban_management", "case_id": "c-68a5020f769821fe", "on_time": True}]


def _timeline() -> list[dict]:
    head, out = tl.Head.start("zhongyuan-qinling", CASE["id"]), []
    for action in ("register", "dispatch", "accept", "resolve", "verify", "satisfied"):
        entry, head = tl.link(head, {"at": "2026-12-05T00:31:17.093Z", "actor": "citizen", "action": action})
        out.append(entry)
    return out


def test_a_closed_case_round_trips_field_for_field_and_in_order():
    a = Archived(CASE, WOS, _timeline())
    back = unpack(pack(a))
    assert back == a
    assert list(back.case) == list(CASE) and list(back.timeline[0]) == list(a.timeline[0])  # stored order kept
    assert tl.verify("zhongyuan-qinling", CASE["id"], back.timeline, None).head.length == 6


def test_the_archive_is_much_smaller_than_its_json():
    a = Archived(CASE, WOS, _timeline())
    plain = len(json.dumps({"case": CASE, "work_orders": WOS, "timeline": a.timeline}, ensure_ascii=False).encode())
    assert len(pack(a)) < plain / 2


def test_bytes_not_of_this_format_are_refused_by_name():
    blob = pack(Archived(CASE, WOS, _timeline()))
    with pytest.raises(Unreadable, match="unknown format"):
        unpack(b"\x02" + blob[1:])
    with pytest.raises(Unreadable, match="does not decode"):
        unpack(V1 + b"\xff" * 40)
    with pytest.raises(Unreadable):
        unpack(blob[:-8])  # cut short


def test_it_is_raw_deflate_with_the_dictionary_and_no_other_bytes():
    """Anyone with the dictionary file reads an archived case with zlib alone."""
    from onegrid.adapters.redis import archive

    blob = pack(Archived(CASE, WOS, []))
    z = zlib.decompressobj(-15, archive._zdict())
    assert b'"status":"closed"' in z.decompress(blob[1:]) + z.flush()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(
    st.dictionaries(st.text(max_size=12), json_values, max_size=8),
    st.lists(st.dictionaries(st.text(max_size=8), json_values, max_size=4), max_size=3),
    st.lists(st.dictionaries(st.text(max_size=8), json_values, max_size=5), max_size=6),
)
def test_any_json_records_round_trip(case, wos, lines):
    assert unpack(pack(Archived(case, wos, lines))) == Archived(case, wos, lines)
