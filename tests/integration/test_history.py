"""The bus keeps its own history, on the real broker: a county's events go through its running
services, its history streams hold them (accepted, and quarantined with the reason), a replay
into a scratch county made by the onboarding code gives the same cases, and what-if reads the
real streams."""

from __future__ import annotations

import os
import time

import pytest
import yaml

from onegrid.adapters.amqp.history import StreamReader
from onegrid.app import history, whatif
from onegrid.app.registry import load_strict
from onegrid.cli.main import main as cli
from onegrid.domain.cases import case_id
from onegrid.kernel import topology
from onegrid.operator import ops
from onegrid.operator.history import with_department
from tests.conftest import free_port_base
from tests.support import publish, wait_until

pytestmark = pytest.mark.integration

GOOD, BAD = 12, ("schema_violation", "unknown_version", "malformed_json")


@pytest.fixture(scope="module")
def traffic(county):
    """Events through the running county: accepted ones dispatched, bad ones quarantined."""
    sim = county.simulator(seed=161)
    good = [sim.good() for _ in range(GOOD)]
    bad = [sim.bad(kind) for kind in BAD]
    publish(county.uri, good + bad)
    ids = {case_id(f"{p.department}|{p.headers['ce-source']}|{p.headers['ce-id']}") for p in good}

    def settled():
        cases = [county.store.case(i) for i in ids]
        return all(c and c["status"] != "registered" for c in cases) and len(county.store.quarantined(count=100)) >= 3

    wait_until(settled, timeout=60, what="every case dispatched and every bad event quarantined")
    return good, bad, ids


def test_the_streams_hold_accepted_quarantined_and_lifecycle_events(county, traffic):
    _, bad, ids = traffic
    reader = StreamReader(county.uri)
    kept = list(history.entries(reader, topology.HISTORY_INTAKE))
    accepted = {e.data["id"] for e in kept if e.type == history.ACCEPTED}
    assert accepted == ids
    quarantined = [e for e in kept if e.type == topology.QUARANTINED]
    assert sorted(e.data["reason"] for e in quarantined) == sorted(BAD)
    for e in quarantined:  # the original bytes, and the detail the operator sees
        mine = next(p for p in bad if p.expect == e.data["reason"])
        assert history.quarantined_event(e.data).body == mine.body and e.data["detail"]
    lifecycle = list(history.entries(reader, topology.HISTORY_LIFECYCLE))
    types = {e.type for e in lifecycle}
    assert {"case.registered", "work_order.dispatched"} <= types
    dispatched = {e.data.get("case_id") for e in lifecycle if e.type == "work_order.dispatched"}
    assert dispatched <= ids and dispatched
    # offsets run on, and a read from a timestamp after the last event finds nothing
    assert [e.offset for e in kept] == sorted(e.offset for e in kept)
    later = list(history.entries(reader, topology.HISTORY_INTAKE, history.Window(offset=kept[-3].offset)))
    assert [e.id for e in later] == [e.id for e in kept[-3:]]  # from an offset on
    assert list(history.entries(reader, topology.HISTORY_INTAKE, history.Window(since=time.time() + 60))) == []
    counts = history.count(reader)
    assert sum(n for (s, t, _), n in counts.items() if t == topology.QUARANTINED) == len(BAD)


def test_a_replay_into_a_scratch_county_makes_the_same_cases(county, traffic, tmp_path):
    from sim.runner import ServiceSet

    _, _, ids = traffic
    scratch_id = f"{county.id}-x"
    scratch_dir = tmp_path / "scratch" / "contracts"
    rc = cli(
        ["--dir", str(county.contracts), "history", "replay", county.id, "--into", scratch_id]
        + ["--scratch-dir", str(scratch_dir)]
    )
    assert rc == 0
    services = ServiceSet(
        scratch_id,
        ops.uri(scratch_id),
        port_base=free_port_base(),
        log_dir=tmp_path / "logs",
        env={"CONTRACTS_DIR": str(scratch_dir)},
        services=("intake", "routing"),
    )
    scratch = ops.store(scratch_id)
    try:
        services.start()
        wait_until(
            lambda: all((c := scratch.case(i)) is not None and c["status"] != "registered" for i in ids),
            timeout=60,
            what="the replayed cases dispatched in the scratch county",
        )
        for cid in ids:
            mine, theirs = county.store.case(cid), scratch.case(cid)
            same = ("category", "severity", "grid", "department", "event_type", "event_id", "source", "version")
            assert {k: theirs[k] for k in same} == {k: mine[k] for k in same}, cid
            assert theirs["tenant"] == scratch_id and theirs["transport"].startswith("replay (from ")
            if mine["status"] == theirs["status"] == "dispatched":
                assert theirs["level"] == mine["level"]
                ours = sorted(w["department"] for w in county.store.work_orders_of(cid))
                assert sorted(w["department"] for w in scratch.work_orders_of(cid)) == ours
    finally:
        services.stop()
        ops.offboard(scratch_id, delete_data=True, force=True)


def test_whatif_contract_reads_the_real_stream(county, traffic, tmp_path):
    good, _, _ = traffic
    department, kind = good[0].routing_key.split(".", 1)
    # proposed: that event type withdrawn from its department's contract
    path = county.contracts / "departments" / f"{department}.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["events"] = [e for e in doc["events"] if e["type"] != kind]
    proposed_file = tmp_path / f"{department}.yaml"
    proposed_file.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    current = load_strict(county.contracts)
    proposed = with_department(str(county.contracts), str(proposed_file))
    result = whatif.contract(StreamReader(county.uri), county.tenant, current, proposed, history.Window())
    assert sum(result.judged.values()) == GOOD + len(BAD)
    refused = {c.event_id for c in result.changed if c.before == "accepted"}
    assert refused == {p.headers["ce-id"] for p in good if p.routing_key == good[0].routing_key}
    assert all(c.after == "unknown_event_type" for c in result.changed)
    os.environ["CONTRACTS_DIR"] = str(county.contracts)
    argv = ["--dir", str(county.contracts), "whatif", "contract", county.id, str(proposed_file), "--fail-on-refused"]
    assert cli(argv) == 1


def test_whatif_manifest_reads_the_real_stream(county, traffic, tmp_path):
    doc = yaml.safe_load((county.contracts / "tenants" / f"{county.id}.yaml").read_text(encoding="utf-8"))
    doc["routing"] = [{"category": "*", "severity": "*", "level": "county", "departments": ["governance"]}]
    proposed = tmp_path / "proposed" / f"{county.id}.yaml"
    proposed.parent.mkdir()
    proposed.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    assert cli(["--dir", str(county.contracts), "whatif", "manifest", str(proposed), "--days", "1"]) == 0
    t, _ = ops.manifest(str(proposed), str(county.contracts))
    result = whatif.manifest(StreamReader(county.uri), county.tenant, t, history.Window(), time.time())
    assert result.current.cases == result.proposed.cases == GOOD
    assert set(result.proposed.work_orders) == {("governance", "county")}
    assert sum(result.proposed.work_orders.values()) == GOOD


def test_a_read_ends_while_the_county_keeps_publishing(county, traffic):
    """A stream never ends: a read stops at the newest message when it began, even on a county
    that never falls quiet."""
    import threading

    _, _, ids = traffic
    stop, sim = threading.Event(), county.simulator(seed=162)

    def busy():
        while not stop.is_set():
            publish(county.uri, [sim.good()])
            time.sleep(0.05)

    thread = threading.Thread(target=busy, daemon=True)
    thread.start()
    try:
        time.sleep(1)
        started = time.monotonic()
        seen = {e.data.get("id") for e in history.entries(StreamReader(county.uri), topology.HISTORY_INTAKE)}
        assert time.monotonic() - started < 30 and ids <= seen
    finally:
        stop.set()
        thread.join()
