"""`onegrid scenario jifeng`: the manhole whistle of Jifeng street, replayed on the real bus.

The seed story (/work/shared/seeds/003_…, contracts/tenants/jifeng.yaml): at midnight on
2 July the river 万溶江 blew a manhole cover off the walkway behind 吉凤家园 by the 双河 bridge.
The 双河 grid workers reported it and whistled to the community and the street; the street
whistled to the zone's platform, which whistled six bodies — the beautification office, the
law-enforcement brigade, the emergency bureau, the work-safety bureau, the social affairs
bureau and the public utilities centre — and the cover was back before dawn.

Here: the grid worker's report is published on the tenant's bus as the app would; routing sends
it to the street with the public utilities centre (大事不出街道); the street officer whistles
the zone's platform (county level) and the other five bodies; each body's work order is taken
from its own work queue, accepted (报到) and resolved with what it did; the grid worker
verifies on site with a photo and the case closes fixed. A table shows each body's work order.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field

import requests
from kombu import Connection

from onegrid.adapters.amqp import topology
from onegrid.cli.ui import console, table
from onegrid.domain.access import DEPARTMENT_STAFF, GRID_WORKER, OPERATOR, STREET_OFFICER
from onegrid.domain.cases import case_id
from onegrid.kernel import envelope as ce
from onegrid.kernel.tenant import Tenant
from sim.actors import EVIDENCE, Badges

TENANT = "jifeng"
GRID = "433101-001-001-001"  # 双河社区一网格: the walkway behind 吉凤家园 by the 双河 bridge
STREET = "433101-001"  # 吉凤街道
# the six bodies the platform whistled, in the source's order, with what each did that night
BODIES = (
    ("housing_construction", "美丽办", "清理步行道淤泥，恢复绿化带"),
    ("urban_management", "执法大队", "封闭步行道，设置警示"),
    ("fire_rescue", "应急局", "抽排积水，堵住漏口"),
    ("emergency_management", "安监局", "排查周边井盖和护栏隐患"),
    ("civil_affairs", "社会事务局", "通知吉凤家园居民绕行"),
    ("water", "公共事业中心", "联系井盖商家，天亮前盖上新井盖"),
)
FIRST = "water"  # the street's own dispatch: a washed-off cover is the public utilities centre's
SUMMARY = "双河大桥附近吉凤家园背后绿化步行道井盖被万溶江水倒灌冲开，洞口大股往外翻水，淹没步行道，天黑有坠落危险"


@dataclass
class BodyRow:
    department: str
    body: str
    work_order: str = ""
    on_queue: bool = False  # the work order reached the body's own queue on the bus
    dispatched_at: str = ""
    accepted_at: str = ""
    resolved_at: str = ""
    note: str = ""


@dataclass
class Replay:
    case_id: str
    rows: list[BodyRow] = field(default_factory=list)
    case: dict = field(default_factory=dict)
    steps: list[str] = field(default_factory=list)  # the case's timeline, its actions in order


def report(tenant: Tenant) -> tuple[str, dict, bytes, str]:
    """The grid worker's one-tap report: (routing key, headers, body, case id)."""
    key = "governance.grid_report_submitted"
    data = {
        "category": "public_facilities",
        "app_report_id": f"JF-{uuid.uuid4().hex[:10]}",
        "resolved_on_site": False,
        "households_affected": 0,
        "grid": GRID,
        "severity": "major",
        "summary": SUMMARY,
        "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%S+08:00", time.gmtime(time.time() + 8 * 3600)),
        "reporter": {"kind": "grid_worker", "id": "双河-林通宣"},
    }
    env = ce.new(
        tenant=tenant.id,
        department="governance",
        type=key,
        version=1,
        source=f"/{tenant.id}/departments/governance/grid-app",
        subject=GRID,
        id=f"jifeng-{uuid.uuid4().hex[:12]}",
    )
    return (
        key,
        env.headers(),
        json.dumps(data, ensure_ascii=False).encode(),
        case_id(f"governance|{env.headers()['ce-source']}|{env.id}"),
    )


def replay(tenant: Tenant, uri: str, store, urls: dict[str, str], badges: Badges, timeout: float = 30) -> Replay:
    """Run the story on the running services (`urls`: supervision, departments)."""
    sup, dep = urls["supervision"], urls["departments"]
    key, headers, body, cid = report(tenant)
    with Connection(uri, transport_options={"confirm_publish": True}) as conn:
        conn.Producer().publish(
            body,
            exchange="onegrid.intake",
            routing_key=key,
            headers=headers,
            content_type=ce.JSON,
            content_encoding="binary",
            delivery_mode=2,
        )
    out = Replay(cid)
    _wait(lambda: (c := store.case(cid)) and c.get("status") == "dispatched", timeout, "the street's dispatch")
    street = badges.headers(f"street-{STREET}", STREET_OFFICER, STREET)
    r = requests.post(
        f"{sup}/cases/{cid}/whistle",
        json={
            "note": "井盖被冲开、洞口翻水，街道无力单独处置：吹哨开发区平台，请五家单位报到",
            "level": "county",
            "departments": [d for d, _, _ in BODIES if d != FIRST],
        },
        headers=street,
        timeout=10,
    )
    r.raise_for_status()
    orders = _wait(lambda: (o := store.work_orders_of(cid)) and len(o) >= len(BODIES) and o, timeout, "six orders")
    by_dept = {o["department"]: o for o in orders}
    seen = _take_from_queues(uri, [d for d, _, _ in BODIES], timeout)
    for dept, name, did in BODIES:
        wo = by_dept[dept]
        row = BodyRow(dept, name, wo["id"], wo["id"] in seen.get(dept, ()), note=did)
        staff = badges.headers(f"{dept}-duty", DEPARTMENT_STAFF, dept)
        base = f"{dep}/departments/{dept}/work-orders/{wo['id']}"
        requests.post(f"{base}/accept", json={}, headers=staff, timeout=10).raise_for_status()  # 报到
        out.rows.append(row)
    for row in out.rows:
        staff = badges.headers(f"{row.department}-duty", DEPARTMENT_STAFF, row.department)
        base = f"{dep}/departments/{row.department}/work-orders/{row.work_order}"
        body_ = {"note": row.note, "evidence_urls": [EVIDENCE]}
        requests.post(f"{base}/resolve", json=body_, headers=staff, timeout=10).raise_for_status()
    _wait(lambda: store.case(cid)["status"] == "resolved", timeout, "the case resolved")
    worker = badges.headers(f"gw-{GRID}", GRID_WORKER, GRID)
    verify = {"note": "新井盖已盖上，淤泥已清理，晨练居民未受影响", "evidence_urls": [EVIDENCE]}
    requests.post(f"{sup}/cases/{cid}/verify", json=verify, headers=worker, timeout=10).raise_for_status()
    hotline = badges.headers("jifeng-platform-duty", OPERATOR)
    requests.post(f"{sup}/cases/{cid}/satisfied", json={"note": "满意"}, headers=hotline, timeout=10).raise_for_status()
    out.case = _wait(lambda: (c := store.case(cid)) and c["status"] == "closed" and c, timeout, "the closure")
    for row in out.rows:
        wo = store.work_order(row.work_order) or {}
        row.dispatched_at, row.accepted_at, row.resolved_at = (
            wo.get("dispatched_at") or "",
            wo.get("accepted_at") or "",
            wo.get("resolved_at") or "",
        )
    out.steps = [s["action"] for s in store.timeline(cid)]
    return out


def _take_from_queues(uri: str, departments: list[str], timeout: float) -> dict[str, set[str]]:
    """Each body's system reads its own work queue (workorders.<department>): the ids it got."""
    seen: dict[str, set[str]] = {d: set() for d in departments}
    deadline = time.monotonic() + timeout
    with Connection(uri) as conn:
        channel = conn.channel()
        while time.monotonic() < deadline and not all(seen.values()):
            for dept in departments:
                msg = channel.basic_get(topology.work_queue(dept).name, no_ack=True)
                if msg is not None:
                    seen[dept].add(json.loads(msg.body)["id"])
            time.sleep(0.05)
    return seen


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while (value := predicate()) is False or value is None or value == [] or value == {}:
        if time.monotonic() > deadline:
            raise TimeoutError(f"jifeng: timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)
    return value


def _clock(iso: str) -> str:
    return iso[11:19] if len(iso) >= 19 else iso


def show(result: Replay) -> None:
    rows = [
        [
            r.body,
            r.department,
            r.work_order,
            "yes" if r.on_queue else "no",
            _clock(r.dispatched_at),
            _clock(r.accepted_at),
            _clock(r.resolved_at),
            r.note,
        ]
        for r in result.rows
    ]
    cols = ["body", "department", "work order", "on its queue", "dispatched", "reported (accepted)", "resolved", "did"]
    console.print(table(f"The whistle of Jifeng street: case {result.case_id}", cols, rows))
    c = result.case
    console.print(
        f"case {result.case_id}: {c.get('status')} ({c.get('outcome')}), level {c.get('level')}, "
        f"{len(result.rows)} bodies reported for duty; timeline: {' → '.join(result.steps)}"
    )


def run(contracts_dir: str) -> int:
    """Onboard the Jifeng tenant afresh, start its services, replay the whistle, print the table."""
    from onegrid.operator import ops
    from sim.live import LiveCounty

    tenant = ops.tenant(TENANT, contracts_dir)
    console.rule(f"Scenario: the manhole whistle of {tenant.name_zh} ({tenant.id}), on the real bus")
    services = ("intake", "routing", "departments", "supervision")
    with LiveCounty(tenant, services=services, actors=False) as county:
        urls = {n: county.services.url(n) for n in ("supervision", "departments")}
        result = replay(tenant, county.uri, county.store, urls, county.badges)
    show(result)
    ok = result.case.get("status") == "closed" and all(r.on_queue and r.resolved_at for r in result.rows)
    return 0 if ok and len(result.rows) == len(BODIES) else 1
