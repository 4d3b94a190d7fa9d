"""The command centre's duplicates desk (onegrid/app/duplicates.py) on fakes of its ports:
confirm, dismiss and un-merge, each idempotent, the first decision standing."""

from __future__ import annotations

import pytest

from onegrid.app.duplicates import DuplicateDesk
from onegrid.domain.duplicates import pair_key
from onegrid.domain.lifecycle import TransitionRefused
from tests.unit.helpers import QINLING, registry

from .fakes import County, grid_report

GRIDS = [g.code for g in registry().tenants[QINLING].grids()]
WORDS = {"summary": "建设路88号水果店无证经营"}


@pytest.fixture
def county() -> County:
    return County(registry().tenants[QINLING], registry())


def _desk(county: County) -> DuplicateDesk:
    return DuplicateDesk(county.tenant, county.work, county.store, county.book, county.outbox, county.clock)


def _suggested(county: County) -> tuple[str, str]:
    """Two reports without a location, same grid and words: routed, the second suggested."""
    ids = []
    for event_id, seed in (("r-1", 1), ("r-2", 4)):
        out = county.intake().ingest(grid_report(county, event_id, grid=GRIDS[0], seed=seed, **WORDS), "governance")
        county.routing().case_registered(out.case_id)
        ids.append(out.case_id)
    assert county.book.suggestion(ids[1]).primary_id == ids[0]
    return ids[0], ids[1]


def test_confirm_merges_once_and_the_first_decision_stands(county):
    primary, twin = _suggested(county)
    desk = _desk(county)
    listed = desk.suggestions()
    assert listed["total"] == 1 and listed["suggestions"][0]["primary"]["summary"] == WORDS["summary"]
    done = desk.confirm(twin, "op-1", "same shop")
    assert done["case"]["status"] == "merged" and done["suggestion"]["status"] == "confirmed"
    assert done["suggestion"]["decided_by"] == "op-1"
    assert desk.confirm(twin, "op-2") == {**done, "case": county.store.case(twin)}  # asked again: the same
    assert [c for c in county.work.calls if c[0] == "merge"] == [("merge", twin, primary, "op-1")]
    with pytest.raises(TransitionRefused, match="was confirmed by op-1; cannot dismiss"):
        desk.dismiss(twin, "op-2")
    assert county.book.counts() == {"suggested": 1, "confirmed": 1, "open": 0}


def test_a_confirmation_retried_after_the_merge_records_the_decision_only(county):
    primary, twin = _suggested(county)
    county.work.merge(twin, primary, "op-1")  # the merge landed, the decision did not
    _desk(county).confirm(twin, "op-1")
    assert len([c for c in county.work.calls if c[0] == "merge"]) == 1
    assert county.book.suggestion(twin).status == "confirmed"


def test_dismiss_marks_the_pair_distinct(county):
    primary, twin = _suggested(county)
    done = _desk(county).dismiss(twin, "op-1", "two shops")
    assert done["suggestion"]["status"] == "dismissed" and done["case"]["status"] == "dispatched"
    assert county.book.distinct([pair_key(primary, twin)]) == {pair_key(twin, primary)}
    with pytest.raises(LookupError, match="no duplicate suggestion"):
        _desk(county).confirm(primary, "op-1")


def test_unmerge_once_marks_the_pair_and_refuses_a_case_never_merged(county):
    primary, twin = _suggested(county)
    desk = _desk(county)
    with pytest.raises(TransitionRefused, match="only a merged case can be un-merged"):
        desk.unmerge(twin, "op-1")
    desk.confirm(twin, "op-1")
    first = desk.unmerge(twin, "op-2", "two shops after all")
    assert first["unmerged"] is True and first["case"]["unmerged_from"] == primary
    assert desk.unmerge(twin, "op-2")["unmerged"] is False
    assert [c for c in county.work.calls if c[0] == "unmerge"] == [("unmerge", twin, "op-2")]
    assert county.book.distinct([pair_key(primary, twin)])
    assert county.outbox.announced[-1]  # the un-merge's events are announced
    with pytest.raises(LookupError):
        desk.unmerge("c-0000000000000000", "op-1")
