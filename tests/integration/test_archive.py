"""A closed case folded into its archived form (onegrid.adapters.redis.archive) on the real
services and Redis: every read answers as before archiving (the JSON the HTTP routes return,
the store's reads, the month's fields), the hash chain still verifies (HTTP and `onegrid audit
verify`), a tampered archived entry is caught, archiving again changes nothing, and a write to
an archived case puts it back whole first."""

import json

import pytest

from onegrid.adapters.redis.archive import Archived, pack, unpack
from onegrid.cli.main import main
from tests.conftest import County
from tests.support import bearer, closed_over_http

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def county(tmp_path_factory):
    c = County(
        tmp_path_factory.mktemp("archive"), services=("intake", "routing", "departments", "supervision", "console")
    )
    c.services.start()
    yield c
    c.close()


@pytest.fixture(scope="module")
def closed(county):
    """A case taken from report to closure over HTTP, its outbox announced."""
    return closed_over_http(county, seed=91)


def _reads(county, cid, wo) -> dict:
    """Every read of the case the services and the command centre make, as they answer it."""
    dep, sup = county.services.url("departments"), county.services.url("supervision")
    s = county.store
    case = s.case(cid)
    month = s.registered(case["at"] - 1, case["at"] + 1, ("id", "status", "category", "outcome", "on_time", "grid"))
    got = {
        "supervision case page": county.http.get(f"{sup}/cases/{cid}", timeout=5).json(),
        "departments case page": county.http.get(f"{dep}/cases/{cid}", timeout=5).json(),
        "verify": county.http.get(f"{sup}/cases/{cid}/timeline/verify", timeout=5).json(),
        "closed cases": county.http.get(f"{sup}/cases", params={"status": "closed"}, timeout=5).json(),
        "by department": county.http.get(f"{sup}/cases", params={"department": wo["department"]}, timeout=5).json(),
        "console case page": county.http.get(
            f"{county.services.url('console')}/console/cases/{cid}",
            headers=bearer(s.r, county.tenant, "supervisor"),
            timeout=5,
        ).text,
        "store case": case,
        "store timeline": s.timeline(cid),
        "store work order": s.work_order(wo["id"]),
        "store work orders": s.work_orders_of(cid),
        "month": [r for r in month if r["id"] == cid],
        "duplicate candidates": [c for c in s.recent(case["category"], case["occurred"] - 1, case["occurred"] + 1)],
    }
    assert all(got.values()), {k: v for k, v in got.items() if not v}
    assert cid in got["console case page"] and got["supervision case page"]["id"] == cid
    return got


def test_an_archived_case_answers_every_read_as_before(county, closed, capsys):
    cid, wo = closed
    s = county.store
    before = _reads(county, cid, wo)
    assert before["verify"]["intact"], before["verify"]
    keys_before = sorted(s.r.keys(s.key("*") + cid + "*"))

    assert s.archive(cid) == "archived"
    assert s.r.exists(s.key("arc", cid)) and not s.r.exists(s.key("case", cid), s.key("wo", wo["id"]))
    assert not s.r.exists(s.key("case", cid, "timeline"), s.key("case", cid, "work_orders"))
    assert s.r.zscore(s.key("archive", "due"), cid) is None
    assert _reads(county, cid, wo) == before  # field for field, in the same JSON
    assert s.archive(cid) == "already"  # idempotent
    assert main(["audit", "verify", county.id, cid]) == 0, capsys.readouterr().out
    assert "intact" in capsys.readouterr().out
    assert len(sorted(s.r.keys(s.key("*") + cid + "*"))) < len(keys_before)


def test_a_tampered_archived_entry_is_caught(county, closed):
    cid, wo = closed
    s = county.store
    s.archive(cid)
    blob = s.r.get(s.key("arc", cid))
    a = unpack(blob)
    lines = json.loads(json.dumps(a.timeline))
    lines[2]["note"] = "never accepted"
    try:
        s.r.set(s.key("arc", cid), pack(Archived(a.case, a.work_orders, lines)))
        verdict = county.http.get(f"{county.services.url('supervision')}/cases/{cid}/timeline/verify", timeout=5).json()
        assert not verdict["intact"] and verdict["finding"]["index"] == 2, verdict
        s.r.set(s.key("arc", cid), blob[:-12])  # bytes cut short: the case still reads, and is not intact
        verdict = county.http.get(f"{county.services.url('supervision')}/cases/{cid}/timeline/verify", timeout=5).json()
        assert not verdict["intact"], verdict
    finally:
        s.r.set(s.key("arc", cid), blob)


def test_a_write_to_an_archived_case_restores_it_whole_and_folds_it_again(county, closed):
    cid, wo = closed
    s = county.store
    s.archive(cid)
    before = (s.case(cid), s.timeline(cid), s.work_orders_of(cid))
    assert s.unarchive(cid) and not s.r.exists(s.key("arc", cid))
    assert (s.case(cid), s.timeline(cid), s.work_orders_of(cid)) == before  # the open form, as it was
    assert s.r.zscore(s.key("archive", "due"), cid) == 0  # due again at once: the sweep folds it
    assert s.archive_due(before=1.0) == {"archived": 1}
    # an action refused on a closed case still reads it (restored for the attempt, folded again)
    r = county.http.post(f"{county.services.url('supervision')}/cases/{cid}/verify", json={"actor": "gw"}, timeout=5)
    assert r.status_code == 409, r.text
    assert s.r.exists(s.key("arc", cid)) and not s.r.exists(s.key("case", cid))
    assert (s.case(cid), s.timeline(cid), s.work_orders_of(cid)) == before


def test_the_cli_folds_every_closed_case_in_its_open_form(county, closed, capsys):
    cid, _ = closed
    county.store.unarchive(cid)
    county.store.r.zrem(county.store.key("archive", "due"), cid)  # closed before the archive existed
    assert main(["archive", county.id]) == 0
    assert json.loads(capsys.readouterr().out) == {"tenant": county.id}  # not due: nothing
    assert main(["archive", county.id, "--all"]) == 0
    assert json.loads(capsys.readouterr().out)["archived"] == 1
    assert county.store.r.exists(county.store.key("arc", cid))
