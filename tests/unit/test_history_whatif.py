"""The bus's history read through a fake of the HistoryReader port, and what-if: a proposed
manifest simulated beside the current one, a proposed contract judging past events again."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import yaml

from onegrid.app import history, whatif
from onegrid.app.ports import Kept
from onegrid.app.registry import load_strict
from onegrid.app.supervision import HISTORY_SKEW_S, verify_timeline
from onegrid.domain import scoring
from onegrid.domain import timeline as tl
from onegrid.domain import whatif as sim
from onegrid.domain.cases import case_id
from onegrid.domain.intake import Accepted, admit
from onegrid.kernel import envelope as ce
from onegrid.kernel import topology
from onegrid.operator.history import with_department
from tests.unit.helpers import QINLING, copy_contracts, registry
from tests.unit.services.fakes import County, grid_report

HOUR = 3600.0


class FakeHistory:
    """The streams as lists of what the broker appended; `since` is only a hint, as on the broker."""

    def __init__(self):
        self.streams: dict[str, list[Kept]] = {s: [] for s in history.STREAMS}

    def read(self, stream: str, since: float | None = None, offset: int | None = None):
        yield from self.streams[stream][offset or 0 :]

    def keep(self, stream: str, env: ce.Envelope, data: dict, routing_key: str | None = None) -> None:
        kept = self.streams[stream]
        body = json.dumps(data, ensure_ascii=False).encode()
        kept.append(Kept(len(kept), routing_key or env.type, env.headers(), body, ce.JSON))

    def from_bus(self, published) -> None:
        """What the broker appends of a fake bus's publishes, by the streams' bindings."""
        for p in published:
            if p.env.type in (history.ACCEPTED, topology.QUARANTINED):
                self.keep(topology.HISTORY_INTAKE, p.env, p.data, p.routing_key)
            if p.env.type.startswith(("case.", "work_order.")):
                self.keep(topology.HISTORY_LIFECYCLE, p.env, p.data, p.routing_key)


class FakeInbox:
    def __init__(self):
        self.sent = []

    def send(self, raw, department):
        self.sent.append((raw, department))


def _county() -> County:
    return County(registry().tenants[QINLING], registry())


def test_entries_are_read_once_per_event_within_the_window():
    county, kept = _county(), FakeHistory()
    county.intake().ingest(grid_report(county, "evt-1"), "governance")
    county.intake().ingest(grid_report(county, "evt-2", severity="catastrophic"), "governance")
    kept.from_bus(county.bus.published)
    kept.from_bus(county.bus.published)  # a publish retried after a lost confirm is kept twice
    found = list(history.entries(kept, topology.HISTORY_INTAKE))
    assert [e.type for e in found] == [history.ACCEPTED, topology.QUARANTINED]
    assert found[1].data["reason"] == "schema_violation" and found[1].department == "governance"
    at = found[0].at
    assert list(history.entries(kept, topology.HISTORY_INTAKE, history.Window(at + 3600))) == []
    assert history.count(kept)[(topology.HISTORY_INTAKE, topology.QUARANTINED, "governance")] == 1
    from_offset = history.Window(offset=3)  # the second copy of the quarantined one (offset 1 is the first)
    assert [(e.offset, e.type) for e in history.entries(kept, topology.HISTORY_INTAKE, from_offset)] == [
        (3, topology.QUARANTINED)
    ]


def test_the_quarantined_bytes_come_back_as_they_were():
    county, kept = _county(), FakeHistory()
    raw = grid_report(county, "evt-bad", severity="catastrophic")
    county.intake().ingest(raw, "governance")
    kept.from_bus(county.bus.published)
    [entry] = history.entries(kept, topology.HISTORY_INTAKE)
    back = history.quarantined_event(entry.data)
    assert (back.body, back.headers, back.routing_key, back.content_type) == (
        raw.body,
        raw.headers,
        raw.routing_key,
        raw.content_type,
    )


def test_a_replay_sends_the_accepted_events_so_the_scratch_county_makes_the_same_cases():
    county, kept = _county(), FakeHistory()
    outcomes = [county.intake().ingest(grid_report(county, f"evt-{i}", seed=i), "governance") for i in range(3)]
    county.intake().ingest(grid_report(county, "evt-bad", severity="catastrophic"), "governance")
    kept.from_bus(county.bus.published)
    scratch = dataclasses.replace(county.tenant, id="scratch-replay")
    inbox, seen = FakeInbox(), []
    done = history.replay(kept, history.Window(), inbox, scratch.id, scratch.departments, seen.append)
    assert (done.accepted, done.quarantined, done.skipped) == (3, 1, 0) and len(seen) == 4
    for (raw, department), outcome in zip(inbox.sent, outcomes, strict=True):
        verdict = admit(raw, scratch, registry(), department)  # intake's own judgement, in the scratch county
        assert isinstance(verdict, Accepted) and verdict.envelope.tenant == scratch.id
        assert case_id(verdict.dedup_key) == outcome.case_id
        assert (verdict.category, verdict.severity) == (county.store.case(outcome.case_id)["category"], "minor")


def _proposed(tmp_path, change) -> object:
    """The county's manifest with `change(doc)` applied, loaded as `contracts check` loads it."""
    root = copy_contracts(tmp_path)
    path = root / "tenants" / f"{QINLING}.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(doc)
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return load_strict(root).tenants[QINLING]


def _observed(**kw) -> sim.Observed:
    base = dict(case_id="c-1", category="illegal_business", severity="minor", grid="410102-001-001-001", registered=0.0)
    return sim.Observed(**{**base, **kw})


def test_firings_follow_the_ladder_rearming_every_span():
    assert [sim.firings(d, 10) for d in (5, 10, 11, 20, 21, 35)] == [0, 0, 1, 1, 2, 3]


def test_a_routing_change_moves_work_orders_between_departments_and_levels(tmp_path):
    current = registry().tenants[QINLING]

    def to_urban_management(doc):  # minor illegal business: urban management at the community
        doc["routing"].insert(
            0,
            {
                "category": "illegal_business",
                "severity": "minor",
                "level": "community",
                "departments": ["urban_management"],
            },
        )

    proposed = _proposed(tmp_path, to_urban_management)
    cases = [_observed(case_id=f"c-{i}", accepted=HOUR, resolved=2 * HOUR) for i in range(4)]
    cases.append(_observed(case_id="c-x", category="public_order"))  # untouched by the change
    cfg = scoring.parse_config(current.source, current)
    cur = sim.simulate(current, cfg, cases, horizon=10 * HOUR)
    new = sim.simulate(proposed, scoring.parse_config(proposed.source, proposed), cases, horizon=10 * HOUR)
    changes = {c.what: (c.current, c.proposed) for c in sim.compare_work_orders(cur, new)}
    assert changes["market_regulation @ grid"] == (4, 0) and changes["urban_management @ community"] == (0, 4)
    assert changes["public_security @ grid"] == (1, 1)


def test_shorter_deadlines_make_cases_overdue_and_escalate_them(tmp_path):
    current = registry().tenants[QINLING]

    def hurry(doc):  # minor cases: acknowledge within 30 minutes
        doc["deadlines"].insert(0, {"category": "*", "severity": "minor", "acknowledge": "30m", "resolve": "7d"})

    proposed = _proposed(tmp_path, hurry)
    # acknowledged after an hour and a minute: on time against 4h; against 30m it fires at 30m and 60m
    cases = [_observed(case_id=f"c-{i}", accepted=HOUR + 60, resolved=3 * HOUR) for i in range(5)]
    cfg = scoring.parse_config(current.source, current)
    cur = sim.simulate(current, cfg, cases, horizon=10 * HOUR)
    new = sim.simulate(proposed, scoring.parse_config(proposed.source, proposed), cases, horizon=10 * HOUR)
    assert (cur.overdue, cur.escalations, cur.overdue_rate) == (0, 0, 0.0)
    assert (new.overdue, new.escalations, new.overdue_rate) == (5, 10, 1.0)  # two rungs each: grid → street
    rows = {c.what: c for c in sim.summary(cur, new)}
    assert rows["overdue rate"].delta == 1.0 and rows["escalations"].delta == 10


def test_a_points_table_change_shows_per_grid_worker(tmp_path):
    current = registry().tenants[QINLING]

    def double(doc):
        doc["scoring"]["points"]["grid_resolved"] = {"points": 6, "monthly_cap": 90}

    proposed = _proposed(tmp_path, double)
    at = datetime(2026, 3, 10, tzinfo=UTC).timestamp()
    closed = dict(accepted=at + 60, resolved=at + HOUR, closed=at + 2 * HOUR, fixed=True, verified=True)
    cases = [_observed(case_id=f"a-{i}", registered=at, verified_by="gw-a", **closed) for i in range(3)]
    cases += [_observed(case_id="b-1", registered=at, verified_by="gw-b", **closed)]
    cur_cfg, new_cfg = scoring.parse_config(current.source, current), scoring.parse_config(proposed.source, proposed)
    cur = sim.simulate(current, cur_cfg, cases, horizon=at + 10 * HOUR)
    new = sim.simulate(proposed, new_cfg, cases, horizon=at + 10 * HOUR)
    # grid_resolved 3 -> 6 and on_time 1 per case
    assert cur.points == {"gw-a": 12, "gw-b": 4} and new.points == {"gw-a": 21, "gw-b": 7}
    top = sim.compare_points(cur, new, top=1)
    assert [(c.what, c.delta) for c in top] == [("gw-a", 9)]


def test_an_on_site_case_has_no_work_order_or_deadline_in_the_what_if():
    tenant = registry().tenants[QINLING]
    cfg = scoring.parse_config(tenant.source, tenant)
    at = datetime(2026, 3, 10, tzinfo=UTC).timestamp()
    worker = {"kind": "grid_worker", "id": "gw-s"}
    settled = _observed(case_id="s-1", registered=at, closed=at, fixed=True, on_site=True, reporter=worker)
    held = _observed(case_id="s-2", registered=at, resolved=at, on_site=True, reporter=worker)  # awaiting its check
    out = sim.simulate(tenant, cfg, [settled, held], horizon=at + 10 * HOUR)
    assert (out.cases, sum(out.work_orders.values()), out.overdue, out.escalations) == (2, 0, 0, 0)
    assert out.points == {"gw-s": 1}  # resolved_on_site, once: the held one is not closed


def test_whatif_manifest_reads_cases_and_what_happened_from_the_history(tmp_path):
    county, kept = _county(), FakeHistory()
    out = county.intake().ingest(grid_report(county, "evt-1"), "governance")
    kept.from_bus(county.bus.published)
    case = county.store.case(out.case_id)
    registered = case["at"]
    wo = {"id": "w-1", "department": "market_regulation", "case_id": out.case_id}
    env = ce.new(tenant=QINLING, department="market_regulation", type="work_order.accepted", source="/x", id="a1")
    kept.keep(topology.HISTORY_LIFECYCLE, env, {**wo, "accepted_at": ce.clock.now_iso(registered + 5 * HOUR)})
    env = ce.new(tenant=QINLING, department="governance", type="case.closed", source="/x", id="c1")
    closed = ce.clock.now_iso(registered + 6 * HOUR)
    kept.keep(
        topology.HISTORY_LIFECYCLE, env, {"id": out.case_id, "outcome": "fixed", "closed_at": closed, "satisfied": True}
    )
    [seen], horizon = whatif.observe(kept, history.Window(), now=registered + 7 * HOUR)
    assert (seen.accepted, seen.closed, seen.fixed, seen.satisfied) == (
        registered + 5 * HOUR,
        registered + 6 * HOUR,
        True,
        True,
    )
    assert horizon == registered + 7 * HOUR
    result = whatif.manifest(kept, county.tenant, county.tenant, history.Window(), now=registered + 7 * HOUR)
    assert result.current.overdue == 1  # acknowledged after 5h against 4h
    assert sim.summary(result.current, result.proposed) == [
        sim.Change(c.what, c.current, c.current) for c in sim.summary(result.current, result.proposed)
    ]


FOOD = "market_regulation.food_safety_hazard_found"


def test_whatif_contract_finds_what_a_proposed_version_refuses_and_newly_accepts(tmp_path):
    from tests.unit.services.fakes import binary, envelope_for, sample_data

    county, kept = _county(), FakeHistory()
    v1 = county.registry.events[(FOOD, 1)]
    data = sample_data(v1, county.tenant, seed=3)
    data.pop("people_affected", None)  # optional in v1
    good = binary(envelope_for(v1, county.tenant, id="evt-food"), data)
    assert county.intake().ingest(good, "market_regulation").outcome == "registered"
    # a version the county does not know yet: quarantined as unknown_version
    env = dataclasses.replace(envelope_for(v1, county.tenant, id="evt-v3"), dataschema=ce.dataschema(FOOD, 3))
    assert county.intake().ingest(binary(env, data), "market_regulation").reason == "unknown_version"
    kept.from_bus(county.bus.published)

    # proposed: v1 retired, v3 (v2 as it is, under a new number) published
    path = copy_contracts(tmp_path) / "departments" / "market_regulation.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    food = [e for e in doc["events"] if e["type"] == "food_safety_hazard_found"]
    doc["events"] = [e for e in doc["events"] if e not in food or e["version"] != 1]
    doc["events"].append({**max(food, key=lambda e: e["version"]), "version": 3})
    proposed_file = tmp_path / "market_regulation.yaml"
    proposed_file.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    proposed = with_department(str(copy_contracts(tmp_path / "base")), str(proposed_file))

    result = whatif.contract(kept, county.tenant, county.registry, proposed, history.Window())
    assert result.by_department() == [("market_regulation", 2, 1, 1)]
    refused = next(c for c in result.changed if c.before == "accepted")
    assert (refused.event_id, refused.after) == ("evt-food", "unknown_version") and "known: [2, 3]" in refused.detail
    accepted = next(c for c in result.changed if c.after == "accepted")
    assert accepted.before == "unknown_version" and accepted.event_type == FOOD
    assert whatif.contract(kept, county.tenant, county.registry, proposed, history.Window(), {"water"}).changed == []


def test_the_lifecycle_as_the_events_exchange_carried_it():
    kept = FakeHistory()
    env = ce.new(tenant=QINLING, department="water", type="work_order.dispatched", source="/x", id="d1")
    kept.keep(topology.HISTORY_LIFECYCLE, env, {"id": "w-1", "case_id": "c-1"}, routing_key="water")  # workorders
    for i, kind in enumerate(("case.dispatched", "work_order.accepted", "work_order.accepted")):  # one sent twice
        env = ce.new(tenant=QINLING, department="water", type=kind, source="/x", id=f"e{min(i, 1)}")
        kept.keep(topology.HISTORY_LIFECYCLE, env, {"id": "c-1"})
    assert [k.routing_key for k in history.on_events_exchange(kept)] == [
        "case.dispatched",
        "work_order.accepted",
        "work_order.accepted",
    ]


# -- the heads the bus carried, for a timeline's verify ---------------------------------------
def _lifecycle(kept: FakeHistory, case_id: str, subject: str, kind: str, head: tl.Head, routing_key=None) -> None:
    env = ce.new(
        tenant=QINLING,
        department="water",
        type=kind,
        source="/x",
        subject=subject,
        id=f"{kind}.{head}",
        chainhead=str(head),
    )
    kept.keep(topology.HISTORY_LIFECYCLE, env, {"id": case_id}, routing_key)


def _case_with_history() -> tuple[County, FakeHistory, str]:
    """A registered case, three more lines on its timeline, each head on a lifecycle event as the
    services publish them (a dispatched work order's under its own id, on onegrid.workorders),
    and another case's events between them."""
    county, kept = _county(), FakeHistory()
    case_id = county.intake().ingest(grid_report(county, "evt-1"), "governance").case_id
    kept.from_bus(county.bus.published)  # case.registered with the first head
    other = county.intake().ingest(grid_report(county, "evt-2", seed=1), "governance").case_id
    head = tl.recorded(QINLING, case_id, county.store.case(case_id)["chainhead"])
    for i, kind in enumerate(("case.dispatched", "work_order.accepted", "case.resolved")):
        entry, head = tl.link(head, {"at": f"t{i}", "actor": "x", "action": kind, "to_state": "s"})
        county.store.timelines[case_id].append(entry)
        county.store.records[case_id]["chainhead"] = str(head)
        subject = f"w-{case_id[2:]}-water" if kind.startswith("work_order.") else case_id
        _lifecycle(kept, case_id, subject, kind, head, routing_key="water" if i == 1 else None)
        _lifecycle(kept, other, other, kind, tl.Head(i + 2, "0" * 64))  # not this case's: never checked
    return county, kept, case_id


def _rewrite_all(county: County, case_id: str) -> None:
    """Whoever can write the store: one entry changed, every hash after it and the record's head
    recomputed, so the chain and the record agree."""
    head, entries = tl.Head.start(QINLING, case_id), []
    for i, line in enumerate(county.store.timelines[case_id]):
        line = {k: v for k, v in line.items() if k not in ("n", "prev")}
        if i == 2:
            line["actor"] = "someone else"
        entry, head = tl.link(head, line)
        entries.append(entry)
    county.store.timelines[case_id], county.store.records[case_id]["chainhead"] = entries, str(head)


def test_verify_reads_the_heads_the_bus_carried_for_the_case():
    county, kept, case_id = _case_with_history()
    heads = history.published_heads(kept, case_id)
    assert [int(h.split(":")[0]) for h in heads] == [1, 2, 3, 4]  # the work order's too, the other case's not
    verdict = verify_timeline(QINLING, county.store, case_id, [], kept)
    assert verdict["intact"] and len(verdict["published_heads_checked"]) == 4
    assert verdict["history"]["heads"] == 4 and verdict["history"]["stream"] == topology.HISTORY_LIFECYCLE
    _rewrite_all(county, case_id)
    assert verify_timeline(QINLING, county.store, case_id, [])["intact"]  # the record alone cannot tell
    finding = verify_timeline(QINLING, county.store, case_id, [], kept)["finding"]
    assert (finding["kind"], finding["index"]) == (tl.REWRITTEN, 2)


class _Since(FakeHistory):
    def read(self, stream: str, since: float | None = None, offset: int | None = None):
        self.since = since
        yield from super().read(stream, since, offset)


class _Missing:
    def read(self, stream: str, since: float | None = None, offset: int | None = None):
        raise LookupError(f"no {stream}")
        yield  # a generator, as the adapter's


def test_the_stream_is_read_from_the_case_registration_and_a_missing_one_is_said():
    county, kept, case_id = _case_with_history()
    bounded = _Since()
    bounded.streams = kept.streams
    verify_timeline(QINLING, county.store, case_id, [], bounded)
    assert bounded.since == county.store.case(case_id)["at"] - HISTORY_SKEW_S
    verdict = verify_timeline(QINLING, county.store, case_id, [], _Missing())
    assert verdict["intact"] and verdict["history"]["unavailable"] == f"no {topology.HISTORY_LIFECYCLE}"
    assert verify_timeline(QINLING, county.store, case_id, [])["history"] is None
