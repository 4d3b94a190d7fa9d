"""Duplicates on the real bus and Redis: a near twin merged by routing, a likely one suggested
and confirmed by the command centre over HTTP, a dismissal, an un-merge that gives the case
back its own work, and the merged reporter told the outcome when the primary closes."""

import pytest
import yaml

from tests.conftest import County
from tests.integration.test_notify import SECRET, Receiver
from tests.support import report, wait_until

pytestmark = pytest.mark.integration
HERE = {"lat": 34.7466, "lon": 113.6253}
NEAR = {"lat": 34.74668, "lon": 113.6253}  # ~9 m


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dups")
    webhook = Receiver()
    county = County(
        tmp,
        services=("intake", "routing", "departments", "supervision", "notify"),
        env={"ONEGRID_WEBHOOK_SECRET": SECRET},
    )
    manifest = county.contracts / "tenants" / f"{county.id}.yaml"
    doc = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    doc["notify"]["channels"] = {
        "webhook": {"url": f"http://127.0.0.1:{webhook.port}/hook", "secret_env": "ONEGRID_WEBHOOK_SECRET"}
    }
    manifest.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    county.services.start()
    yield county, webhook
    county.close()
    webhook.close()


def _settled(county, cid):
    return wait_until(lambda: (c := county.store.case(cid)) and c["status"] in ("dispatched", "merged") and c)


def _actions(county, cid):
    return [(s["action"], s["actor"]) for s in county.store.timeline(cid)]


def test_a_near_twin_is_merged_and_its_reporter_told_the_outcome(env):
    county, webhook = env
    words = "秦岭路12号烧烤店门前占道经营"
    primary = _settled(county, report(county, 1, words, HERE, {"kind": "grid_worker", "id": "gw-1"}))
    twin_id = report(county, 2, words + "！", NEAR, {"kind": "citizen", "id": "citizen-7"}, minutes=5)
    twin = _settled(county, twin_id)
    assert (twin["status"], twin["merged_into"]) == ("merged", primary["id"])
    url = county.services.url("supervision")
    county.http.post(
        f"{url}/cases/{primary['id']}/close_not_fixed", json={"actor": "op-1", "note": "已取缔"}, timeout=5
    ).raise_for_status()
    told = wait_until(
        lambda: [g for g in webhook.json() if g["kind"] == "merged_outcome"], timeout=20, what="the outcome"
    )
    assert [(g["recipient"]["id"], g["case_id"]) for g in told] == [("citizen-7", primary["id"])]
    assert "合并办理" in told[0]["text"] and words in told[0]["text"]


def test_a_likely_duplicate_is_suggested_confirmed_then_unmerged(env):
    county, webhook = env
    grid = county.tenant.grids()[1].code
    words = "建设路88号水果店无证经营"
    primary = _settled(county, report(county, 3, words, None, {"kind": "grid_worker", "id": "gw-2"}, grid=grid))
    twin = _settled(county, report(county, 4, "居民反映" + words, None, {"kind": "citizen", "id": "c-9"}, 3, grid))
    assert twin["status"] == "dispatched"  # no location to go by: a person decides
    url = county.services.url("supervision")
    inbox = county.http.get(f"{url}/duplicates", timeout=5).json()
    [s] = [x for x in inbox["suggestions"] if x["case_id"] == twin["id"]]
    assert (s["primary_id"], s["status"], s["primary"]["summary"]) == (primary["id"], "open", words)
    assert inbox["counts"]["open"] >= 1 and inbox["counts"]["suggested"] >= 1

    done = county.http.post(f"{url}/cases/{twin['id']}/duplicate/confirm", json={"actor": "x"}, timeout=5)
    assert done.status_code == 200, done.text
    assert done.json()["case"]["status"] == "merged" and done.json()["suggestion"]["status"] == "confirmed"
    again = county.http.post(f"{url}/cases/{twin['id']}/duplicate/confirm", json={"actor": "x"}, timeout=5)
    assert (
        again.status_code == 200 and again.json()["suggestion"]["decided_at"] == done.json()["suggestion"]["decided_at"]
    )
    refused = county.http.post(f"{url}/cases/{twin['id']}/duplicate/dismiss", json={"actor": "x"}, timeout=5)
    assert refused.status_code == 409
    assert all(w["status"] == "cancelled" for w in county.store.work_orders_of(twin["id"]))
    assert twin["id"] in [x["case_id"] for x in county.store.case(primary["id"])["linked"]]

    undone = county.http.post(f"{url}/cases/{twin['id']}/duplicate/unmerge", json={"actor": "x"}, timeout=5)
    assert undone.status_code == 200 and undone.json()["unmerged"] is True, undone.text
    back = county.store.case(twin["id"])
    assert (back["status"], back["unmerged_from"]) == ("dispatched", primary["id"])
    assert all(w["status"] == "dispatched" for w in county.store.work_orders_of(twin["id"]))
    assert not county.store.case(primary["id"]).get("linked")
    acts = _actions(county, twin["id"])
    assert [a for a, _ in acts][-3:] == ["unmerge", "restore", "dispatch"] and ("merge", acts[-4][1]) in acts
    assert ("unlink_duplicate", acts[-3][1]) in _actions(county, primary["id"])
    again = county.http.post(f"{url}/cases/{twin['id']}/duplicate/unmerge", json={"actor": "x"}, timeout=5)
    assert again.status_code == 200 and again.json()["unmerged"] is False  # idempotent

    # the primary closes: the un-merged reporter is not told its outcome
    county.http.post(
        f"{url}/cases/{primary['id']}/close_not_fixed", json={"actor": "x", "note": "无人"}, timeout=5
    ).raise_for_status()
    wait_until(lambda: [g for g in webhook.json() if g["kind"] == "closed" and g["case_id"] == primary["id"]])
    assert not [g for g in webhook.json() if g["kind"] == "merged_outcome" and g["recipient"]["id"] == "c-9"]


def test_an_auto_merged_case_unmerged_is_routed_and_a_dismissal_sticks(env):
    county, _ = env
    grid = county.tenant.grids()[2].code
    words = "华山路3号洗车店占道洗车"
    primary = _settled(county, report(county, 5, words, HERE, {"kind": "grid_worker", "id": "gw-3"}, 10, grid))
    twin = _settled(county, report(county, 6, words, NEAR, {"kind": "citizen", "id": "c-10"}, 12, grid))
    assert twin["status"] == "merged" and not county.store.work_orders_of(twin["id"])
    url = county.services.url("supervision")
    undone = county.http.post(f"{url}/cases/{twin['id']}/duplicate/unmerge", json={"actor": "x"}, timeout=5)
    assert undone.status_code == 200, undone.text
    routed = wait_until(lambda: (c := county.store.case(twin["id"])) and c["status"] == "dispatched" and c)
    assert routed["level"] and county.store.work_orders_of(twin["id"])  # its own severity's level
    # a third report of a likely duplicate, dismissed: never suggested again for that pair
    third = _settled(county, report(county, 7, words, None, {"kind": "citizen", "id": "c-11"}, 14, grid))
    assert third["status"] == "dispatched"
    gone = county.http.post(f"{url}/cases/{third['id']}/duplicate/dismiss", json={"actor": "x"}, timeout=5)
    assert gone.status_code == 200 and gone.json()["suggestion"]["status"] == "dismissed", gone.text
    missing = county.http.post(f"{url}/cases/{primary['id']}/duplicate/confirm", json={"actor": "x"}, timeout=5)
    assert missing.status_code == 404
    bad = county.http.post(f"{url}/cases/{third['id']}/duplicate/maybe", json={"actor": "x"}, timeout=5)
    assert bad.status_code == 404
