"""The monthly report tells the truth: cases run through a county on the real bus and Redis
(intake, routing, departments, supervision, scoring as processes) to every end a case can have
(solved with the citizen satisfied, solved with no answer, closed not fixed, rejected, merged as
a duplicate, still open), then the month's XLSX, CSV, JSON and bulletin are downloaded from
scoring and their figures checked against the case records, supervision's closure metrics and
scoring's own API. Scope and access: an officer sees their part of the tree only.

Compressed time (ONEGRID_TIME_SCALE=3600): the 2 h feedback window passes in 2 s."""

from __future__ import annotations

import base64
import csv
import io
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from urllib.parse import unquote

import pytest
import requests
from nameko.standalone.rpc import ClusterRpcProxy
from openpyxl import load_workbook
from prometheus_client.parser import text_string_to_metric_families

from onegrid.adapters.reports import XLSX
from onegrid.domain import access
from onegrid.domain.cases import case_id
from tests.conftest import County
from tests.support import bearer, publish, queue_depth, wait_until

pytestmark = pytest.mark.integration
BEIJING = timezone(timedelta(hours=8))  # the demo county's scoring timezone


@pytest.fixture(scope="module")
def county(tmp_path_factory):
    c = County(
        tmp_path_factory.mktemp("reports"),
        services=("intake", "routing", "departments", "supervision", "scoring"),
        env={"ONEGRID_TIME_SCALE": "3600"},
        manifest={"lifecycle": {"feedback_window": "2h", "max_reopens": 1}},
    )
    c.services.start()
    yield c
    c.close()


def _publish(county, p) -> dict:
    publish(county.uri, [p])
    cid = case_id(f"{p.department}|{p.headers['ce-source']}|{p.event_id}")
    return wait_until(lambda: (c := county.store.case(cid)) and c["status"] != "registered" and c, what="routing")


def _resolve_all(county, cid: str) -> None:
    for wo in county.store.work_orders_of(cid):
        for action in ("accept", "resolve"):
            url = f"{county.services.url('departments')}/departments/{wo['department']}/work-orders/{wo['id']}/{action}"
            county.http.post(url, json={"actor": "duty", "note": "done"}, timeout=5).raise_for_status()


def _act(county, cid: str, action: str, **body) -> None:
    r = county.http.post(f"{county.services.url('supervision')}/cases/{cid}/{action}", json=body, timeout=5)
    assert r.status_code == 200, r.text


def _quiet(county) -> None:
    """scoring has applied everything announced: its queues empty twice in a row."""
    queues = ("scoring.case-events", "scoring.work-order-events")

    def empty():
        return all(queue_depth(county.uri, q) == 0 for q in queues)

    for _ in range(2):
        wait_until(empty, timeout=30, what="scoring idle")
        time.sleep(1)


@pytest.fixture(scope="module")
def lived(county):
    """Cases to every end; returns their ids by how they ended."""
    sim = county.simulator(seed=1501)
    ends: dict[str, list[str]] = {}
    for end in ("satisfied", "no_answer", "not_fixed", "rejected", "open", "satisfied", "open"):
        case = _publish(county, sim.good())
        cid = case["id"]
        if end in ("satisfied", "no_answer"):
            _resolve_all(county, cid)
            wait_until(lambda cid=cid: county.store.case(cid)["status"] == "resolved", what="resolved")
            _act(county, cid, "verify", actor="grid-worker")
            if end == "satisfied":
                _act(county, cid, "satisfied", actor="citizen")
        elif end == "not_fixed":
            _act(county, cid, "close_not_fixed", actor="centre", note="beyond the county's means")
        elif end == "rejected":
            _act(county, cid, "reject", actor="centre", note="not a matter for the platform")
        ends.setdefault(end, []).append(cid)
    original = sim.good()  # reported twice: the second report is merged into the first
    dup = sim.duplicate(original)  # (first: it gives the original a location, as a merge needs both)
    _publish(county, original)
    publish(county.uri, [dup])
    dup_id = case_id(f"{dup.department}|{dup.headers['ce-source']}|{dup.event_id}")
    wait_until(lambda: (county.store.case(dup_id) or {}).get("status") == "merged", what="the duplicate merged")
    ends.setdefault("open", []).append(
        case_id(f"{original.department}|{original.headers['ce-source']}|{original.event_id}")
    )
    ends["merged"] = [dup_id]
    for cid in ends["no_answer"]:
        wait_until(lambda cid=cid: county.store.case(cid)["status"] == "closed", timeout=20, what="no-answer close")
    _quiet(county)
    return ends


def _month() -> str:
    return datetime.now(BEIJING).strftime("%Y-%m")


def _expected(county, ends) -> dict[str, Counter]:
    """The closure table from the case records themselves."""
    out: dict[str, Counter] = {}
    for ids in ends.values():
        for cid in ids:
            c = county.store.case(cid)
            n = out.setdefault(c["category"], Counter())
            n["reported"] += 1
            if c["status"] in ("merged", "rejected"):
                n[c["status"]] += 1
                continue
            n["problems"] += 1
            if c["status"] == "closed":
                n["solved" if c["outcome"] == "fixed" else "not_fixed"] += 1
            else:
                n["open"] += 1
    return out


def _sheet(wb, title: str) -> list[dict]:
    ws = wb[title]
    rows = list(ws.iter_rows(values_only=True))
    return [dict(zip(rows[0], r, strict=True)) for r in rows[1:]]


def test_the_xlsx_and_csv_equal_the_record(county, lived):
    month, base = _month(), county.services.url("scoring")
    names = {cid: c["name_zh"] for cid, c in _categories(county).items()}
    want = _expected(county, lived)
    # problems: 2 satisfied + 1 no answer (solved) + 1 not fixed + 3 open; merged and rejected are none
    assert sum(n["problems"] for n in want.values()) == 7 and sum(n["solved"] for n in want.values()) == 3

    r = county.http.get(f"{base}/reports/{month}/report.xlsx", timeout=30)
    assert r.status_code == 200 and r.headers["Content-Type"] == XLSX
    assert r.headers["Cache-Control"] == "private, no-store" and r.headers["X-Content-Type-Options"] == "nosniff"
    disposition = r.headers["Content-Disposition"]
    assert disposition.startswith(f"attachment; filename=\"{county.id}-{month}-report.xlsx\"; filename*=UTF-8''")
    assert unquote(disposition.split("''", 1)[1]) == f"{county.tenant.name_zh}-{month}-月度报表.xlsx"
    wb = load_workbook(io.BytesIO(r.content))
    closure = {row["类别"]: row for row in _sheet(wb, "分类办结情况")}
    for category, n in want.items():
        row = closure.pop(names[category])
        got = {k: row[t] for k, t in (("reported", "上报"), ("merged", "重复合并"), ("rejected", "不予受理"))}
        got |= {
            k: row[t]
            for k, t in (("problems", "问题数"), ("solved", "已解决"), ("not_fixed", "办结未解决"), ("open", "办理中"))
        }
        assert got == {k: n[k] for k in got}, category
        assert row["解决率"] == (round(n["solved"] / n["problems"], 4) if n["problems"] else None)
    total = closure.pop("合计")
    assert not closure, f"categories with no case of ours: {closure}"
    assert (total["问题数"], total["已解决"], total["办结未解决"], total["办理中"]) == (7, 3, 1, 3)
    assert (total["上报"], total["重复合并"], total["不予受理"], total["解决率"]) == (9, 1, 1, 0.4286)
    assert wb["分类办结情况"].cell(row=2, column=9).number_format == "0.00%"

    # solved is what supervision's closure metrics count as closed fixed
    fixed = _closed_fixed(county)
    assert {c: n["solved"] for c, n in want.items() if n["solved"]} == fixed

    # the same table as CSV
    r = county.http.get(f"{base}/reports/{month}/closure.csv", timeout=30)
    assert r.status_code == 200 and r.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert r.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [(x["类别"], int(x["问题数"]), int(x["已解决"])) for x in rows] == [
        (x["类别"], x["问题数"], x["已解决"]) for x in _sheet(wb, "分类办结情况")
    ]
    assert rows[-1]["解决率"] == "42.86%"


def test_the_scoring_tables_equal_scorings_api(county, lived):
    month, base = _month(), county.services.url("scoring")
    wb = load_workbook(io.BytesIO(county.http.get(f"{base}/reports/{month}/report.xlsx", timeout=30).content))
    assessed = county.http.get(
        f"{base}/scoring/assessment", params={"period": "month", "key": month}, timeout=10
    ).json()
    busy = {d: a for d, a in assessed["departments"].items() if a["received"]}
    depts = {row["部门"]: row for row in _sheet(wb, "部门考核")}
    assert len(depts) == len(busy) > 0
    for d, a in busy.items():
        row = depts[_departments(county)[d]["name_zh"]]
        assert (row["受理"], row["已解决"], row["解决率"], row["考核得分"]) == (
            a["received"],
            a["closed_fixed"],
            a["closure_rate"],
            a["score"],
        )
    ranks = county.http.get(f"{base}/scoring/rankings", params={"month": month, "limit": 1000}, timeout=10).json()
    assert [(x["名次"], x["网格员"], x["积分"]) for x in _sheet(wb, "网格员积分排名")] == [
        (w["rank"], w["name"], w["score"]) for w in ranks["workers"]
    ]
    assert [(x["名次"], x["网格编码"], x["积分"]) for x in _sheet(wb, "网格积分排名")] == [
        (g["rank"], g["name"], g["score"]) for g in ranks["grids"]
    ]
    assert ranks["grids"], "the solved cases earned their grids points"
    assert [(x["名次"], x["社区编码"], x["积分"]) for x in _sheet(wb, "社区积分排名")] == [
        (c["rank"], c["name"], c["score"]) for c in ranks["communities"]
    ]
    risk = county.http.get(f"{base}/scoring/risk", timeout=10).json()
    colours = {x["风险等级"]: x["网格数"] for x in _sheet(wb, "五色管控网格数")}
    zh = {"red": "红", "orange": "橙", "yellow": "黄", "blue": "蓝", "green": "绿"}
    assert colours == {zh[c]: n for c, n in risk["counts"].items()}

    report = county.http.get(f"{base}/reports/{month}", timeout=30).json()
    with ClusterRpcProxy({"AMQP_URI": county.uri}) as rpc:
        by_rpc = rpc.scoring.report(month)
        file = rpc.scoring.report_file(month, "closure.xlsx")
    assert {**by_rpc, "generated_at": ""} == {**report, "generated_at": ""}
    assert report["closure_total"]["solved"] == 3 and report["closure_total"]["closure_rate"] == 0.4286
    sheet = load_workbook(io.BytesIO(base64.b64decode(file["body_base64"])))["分类办结情况"]
    assert sheet.cell(row=sheet.max_row, column=6).value == 3 and file["content_type"] == XLSX

    page = county.http.get(f"{base}/reports/{month}/bulletin.html", timeout=30)
    assert page.status_code == 200 and page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert page.headers["Content-Disposition"].startswith("inline;")
    assert "共排查登记各类问题7起,已解决3起,解决率为42.86%" in page.text


def test_an_officer_sees_their_part_and_bad_requests_are_refused(county, lived):
    month, base = _month(), county.services.url("scoring")
    solved = county.store.case(lived["satisfied"][0])
    community = county.tenant.ancestor(solved["grid"], "community").code
    officer = bearer(county.store.r, county.tenant, access.COMMUNITY_OFFICER, community)
    mine = requests.get(f"{base}/reports/{month}", headers=officer, timeout=30).json()
    in_it = [
        cid
        for ids in lived.values()
        for cid in ids
        if county.tenant.ancestor(county.store.case(cid)["grid"], "community").code == community
    ]
    assert mine["scope"] == community and mine["closure_total"]["reported"] == len(in_it) >= 1
    assert all(g["code"].startswith(community) for g in mine["grids"])
    other = next(n.code for n in county.tenant.nodes.values() if n.level == "community" and n.code != community)
    get = lambda path, headers=officer, **params: requests.get(base + path, headers=headers, params=params, timeout=30)  # noqa: E731
    assert get(f"/reports/{month}", scope=other).status_code == 403
    assert get(f"/reports/{month}/closure.csv", scope=county.tenant.root).status_code == 403
    assert get(f"/reports/{month}", scope="999999").status_code == 400
    assert get(f"/reports/{month}/closure.csv", headers={}).status_code == 401
    worker = bearer(county.store.r, county.tenant, access.GRID_WORKER, solved["grid"])
    assert get(f"/reports/{month}", headers=worker).status_code == 403
    bad_month = get("/reports/2026-13/closure.xlsx")
    assert bad_month.status_code == 400 and "month" in bad_month.json()["fields"]
    assert get(f"/reports/{month}/closure.pdf").status_code == 404
    csv_of_other = county.http.get(f"{base}/reports/{month}/closure.csv", params={"scope": other}, timeout=30)
    assert csv_of_other.status_code == 200 and f"-{other}-closure.csv" in csv_of_other.headers["Content-Disposition"]


def test_the_cli_writes_the_same_workbook(county, lived, tmp_path):
    month = _month()
    out = tmp_path / "report.xlsx"
    env = {**os.environ, "CONTRACTS_DIR": str(county.contracts)}
    done = subprocess.run(
        [sys.executable, "-m", "onegrid", "report", county.id, month, "--format", "xlsx", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    served = county.http.get(f"{county.services.url('scoring')}/reports/{month}/report.xlsx", timeout=30)
    mine, theirs = load_workbook(out), load_workbook(io.BytesIO(served.content))
    for title in mine.sheetnames[:-1]:  # the last, 说明, says when each was made
        assert _sheet(mine, title) == _sheet(theirs, title), title
    table = subprocess.run(
        [sys.executable, "-m", "onegrid", "report", county.id, month, "--table", "closure"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert table.returncode == 0 and "合计" in table.stdout and "42.86%" in table.stdout


def _categories(county) -> dict:
    from onegrid.app.registry import load_strict

    return load_strict(county.contracts).categories


def _departments(county) -> dict:
    from onegrid.app.registry import load_strict

    return load_strict(county.contracts).departments


def _closed_fixed(county) -> dict[str, int]:
    text = county.http.get(county.services.url("supervision") + "/metrics", timeout=5).text
    out: Counter = Counter()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            mine = s.name == "onegrid_cases_closed_total" and s.labels.get("tenant") == county.id
            if mine and s.labels["outcome"] == "fixed" and s.value:
                out[s.labels["category"]] += int(s.value)
    return dict(out)
