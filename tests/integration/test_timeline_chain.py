"""A case's hash-chained timeline on the real bus and Redis: a case goes through its life on
running services, every lifecycle event carries the chain head and the county's
history.lifecycle stream keeps them, verify (HTTP and CLI) says the timeline is intact; then the
Redis record is tampered with directly (an entry edited, deleted, moved, inserted, the whole
chain recomputed with the head on the record) and verify names the entry and how: the last from
the heads the stream kept, with no head given by hand."""

import json

import pytest

from onegrid.adapters.amqp.history import StreamReader
from onegrid.app.history import on_events_exchange
from onegrid.cli.main import main
from onegrid.domain import timeline as tl
from onegrid.kernel import topology
from tests.conftest import County
from tests.support import bearer, closed_over_http

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def county(tmp_path_factory):
    c = County(tmp_path_factory.mktemp("chain"), services=("intake", "routing", "departments", "supervision"))
    c.services.start()
    yield c
    c.close()


@pytest.fixture(scope="module")
def closed(county):
    """A case taken from report to closure over HTTP, and the events the bus carried about it."""
    cid, _ = closed_over_http(county, seed=83)
    events = [  # as onegrid.events carried them, kept by the broker on the county's stream
        (k.headers["ce-type"], k.headers.get("ce-chainhead"))
        for k in on_events_exchange(StreamReader(county.uri))
        if k.headers.get("ce-subject") == cid or json.loads(k.body).get("case_id") == cid
    ]
    return cid, events


def _verify(county, cid, heads=()) -> dict:
    r = county.http.get(
        f"{county.services.url('supervision')}/cases/{cid}/timeline/verify", params={"head": list(heads)}, timeout=5
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_lifecycle_events_carry_the_head_and_the_timeline_verifies_intact(county, closed, capsys):
    cid, events = closed
    kinds = [k for k, _ in events]
    assert {"case.registered", "case.dispatched", "work_order.accepted", "work_order.resolved", "case.closed"} <= set(
        kinds
    ), kinds
    assert all(h for _, h in events), events  # every lifecycle event about the case carried a head
    heads = sorted({tl.Head.parse(h) for _, h in events}, key=lambda h: h.length)
    record = county.store.case(cid)
    timeline = county.store.timeline(cid)
    assert str(heads[-1]) == record["chainhead"] and heads[-1].length == len(timeline)
    assert dict(events)["case.registered"].startswith("1:")
    resolve = next(e for e in timeline if e["action"] == "resolve")
    assert resolve["evidence"] == tl.evidence_digest(["https://evidence.onegrid.invalid/after.jpg"])
    # the case page still reads the timeline (with each entry's place and link)
    page = county.http.get(f"{county.services.url('supervision')}/cases/{cid}", timeout=5).json()
    assert [s["action"] for s in page["timeline"]] == [s["action"] for s in timeline]

    verdict = _verify(county, cid)  # the heads are read from the stream: every one the bus carried
    assert verdict["intact"] and verdict["entries"] == len(timeline), verdict
    assert set(verdict["published_heads_checked"]) == {str(h) for h in heads}
    assert verdict["history"]["stream"] == topology.HISTORY_LIFECYCLE and verdict["history"]["heads"] >= len(heads)
    assert _verify(county, cid, [str(h) for h in heads])["intact"]  # given by hand too
    assert main(["audit", "verify", county.id, cid]) == 0
    out = capsys.readouterr().out
    assert "intact" in out and f"history.lifecycle read from {verdict['history']['since']}" in out
    # who may ask: the supervisor too; the command centre's operator and the county's admin may not
    url = f"{county.services.url('supervision')}/cases/{cid}/timeline/verify"
    for role, status in (("supervisor", 200), ("operator", 403), ("tenant_admin", 403)):
        assert (
            county.http.get(url, headers=bearer(county.store.r, county.tenant, role), timeout=5).status_code == status
        )
    assert county.http.get(url, params={"head": "7:nothex"}, timeout=5).status_code == 400


def _tampered(county, cid, change) -> dict:
    """Apply `change` to the timeline as stored (a Redis list of JSON), verify, restore."""
    key = county.store.key("case", cid, "timeline")
    original = county.store.r.lrange(key, 0, -1)
    entries = [json.loads(x) for x in original]
    try:
        altered = change(entries)
        pipe = county.store.r.pipeline()
        pipe.delete(key)
        pipe.rpush(key, *[e if isinstance(e, str) else json.dumps(e, ensure_ascii=False) for e in altered])
        pipe.execute()
        return _verify(county, cid)
    finally:
        pipe = county.store.r.pipeline()
        pipe.delete(key)
        pipe.rpush(key, *original)
        pipe.execute()


def _edit(i, **fields):
    def change(entries):
        entries[i].update(fields)
        return entries

    return change


def test_tampering_with_the_redis_record_is_found_where_it_was_done(county, closed, capsys):
    cid, events = closed
    n = len(county.store.timeline(cid))
    at = n - 2  # the citizen's word, say, changed after the fact
    found = _tampered(county, cid, _edit(at, note="the citizen was not asked"))["finding"]
    assert (found["index"], found["kind"]) == (at, "changed"), found
    assert _tampered(county, cid, lambda e: e[:2] + e[3:])["finding"]["index"] == 2
    assert _tampered(county, cid, lambda e: e[:2] + e[3:])["finding"]["kind"] == "removed"
    assert _tampered(county, cid, lambda e: e[:-1])["finding"] == {
        "index": n - 1,
        "kind": "removed",
        "detail": "1 entry missing at the end",
    }
    swapped = _tampered(county, cid, lambda e: e[:1] + [e[2], e[1]] + e[3:])["finding"]
    assert (swapped["index"], swapped["kind"]) == (1, "reordered")
    forged = {"at": "t", "actor": "routing", "action": "dispatch", "to_state": "dispatched", "n": 2}
    inserted = _tampered(county, cid, lambda e: e[:2] + [{**forged, "prev": e[2]["prev"]}] + e[2:])["finding"]
    assert (inserted["index"], inserted["kind"]) == (2, "inserted")
    garbled = _tampered(county, cid, lambda e: e[:3] + ["not json{"] + e[4:])["finding"]  # hand-edited bytes
    assert (garbled["index"], garbled["kind"]) == (3, "changed")
    assert _verify(county, cid)["intact"]  # restored

    # a forger who recomputes every hash after the edit and the head on the record leaves a
    # consistent chain: the heads the bus carried, kept on the county's stream, show it
    heads = sorted({tl.Head.parse(h) for _, h in events}, key=lambda h: h.length)
    key, case_key = county.store.key("case", cid, "timeline"), county.store.key("case", cid)
    original, head_before = county.store.r.lrange(key, 0, -1), county.store.case(cid)["chainhead"]
    try:
        lines = [{k: v for k, v in json.loads(x).items() if k not in ("n", "prev")} for x in original]
        lines[at]["note"] = "the citizen was not asked"
        head, rewritten = tl.Head.start(county.id, cid), []
        for line in lines:
            entry, head = tl.link(head, line)
            rewritten.append(json.dumps(entry, ensure_ascii=False))
        pipe = county.store.r.pipeline()
        pipe.delete(key)
        pipe.rpush(key, *rewritten)
        pipe.hset(case_key, "chainhead", str(head))
        pipe.execute()
        assert main(["audit", "verify", county.id, cid, "--no-history"]) == 0  # the record alone cannot tell
        capsys.readouterr()
        verdict = _verify(county, cid)  # no head given: the stream's
        assert verdict["finding"]["kind"] == "rewritten" and verdict["finding"]["index"] <= at, verdict
        assert _verify(county, cid, [str(h) for h in heads])["finding"] == verdict["finding"]
        assert main(["audit", "verify", county.id, cid]) == 1
        assert "ALTERED at entry" in capsys.readouterr().out
    finally:
        pipe = county.store.r.pipeline()
        pipe.delete(key)
        pipe.rpush(key, *original)
        pipe.hset(case_key, "chainhead", head_before)
        pipe.execute()
    assert _verify(county, cid)["intact"]
