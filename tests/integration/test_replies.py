"""The citizen's two-way voice on the real bus: the satisfaction SMS lands on the demo's SMS
gateway stand-in (sim.notify_receiver), the citizen's signed reply "1" closes the case satisfied
through supervision's case action; a bad signature is a 401; a bare reply with two questions
open records nothing and asks which; a 12345 case is answered at each step with its ticket_no."""

import json
import time
from dataclasses import replace

import pytest
import requests
import yaml

from onegrid.adapters.channels.notify_channels import SIGNATURE, TIMESTAMP, sign
from onegrid.domain import replies as rp
from onegrid.domain.cases import case_id
from sim.notify_receiver import WebhookReceiver, push_reply
from tests.conftest import County
from tests.support import publish, wait_until

pytestmark = pytest.mark.integration
SECRET, INBOUND = "test-webhook-secret", "test-sms-inbound-secret"
PHONE, OTHER = "13900139000", "13700137000"


@pytest.fixture(scope="module")
def county(tmp_path_factory):
    receiver = WebhookReceiver(SECRET.encode()).start()
    c = County(
        tmp_path_factory.mktemp("replies"),
        services=("intake", "routing", "departments", "supervision", "notify"),
        env={"ONEGRID_WEBHOOK_SECRET": SECRET, "ONEGRID_SMS_INBOUND_SECRET": INBOUND},
    )
    manifest = c.contracts / "tenants" / f"{c.id}.yaml"
    doc = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    channels = doc["notify"]["channels"]
    channels["webhook"]["url"] = receiver.url
    channels["sms"].update(enabled=True, url=receiver.sms_url, inbound_secret_env="ONEGRID_SMS_INBOUND_SECRET")
    channels["hotline"] = {"url": receiver.hotline_url, "secret_env": "ONEGRID_WEBHOOK_SECRET", "timeout_s": 5}
    manifest.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    c.services.start()
    c.receiver = receiver
    yield c
    c.close()
    receiver.close()


def _hotline_case(county, seed: int, phone: str, category: str, ticket: str, callback: bool = False) -> str:
    """A 12345 work order (governance's hotline_order_received) from `phone`, in its own grid."""
    sim = county.simulator(seed=seed)
    while not (p := sim.good()).routing_key.endswith("hotline_order_received"):
        pass
    data = json.loads(p.body)
    grids = county.tenant.grids()
    data.update(
        category=category,
        ticket_no=ticket,
        callback_required=callback,
        summary=f"{ticket} 反映{category}问题",
        reporter={"kind": "citizen", "id": f"hotline-{ticket}", "phone": phone},
        grid=grids[seed % len(grids)].code,
    )
    data.pop("location", None)
    p = replace(p, body=json.dumps(data, ensure_ascii=False).encode())
    publish(county.uri, [p])
    return case_id(f"{p.department}|{p.headers['ce-source']}|{p.event_id}")


def _to_verified(county, cid: str) -> None:
    case = wait_until(lambda: (c := county.store.case(cid)) and c["status"] == "dispatched" and c, what="dispatch")
    dep, sup = county.services.url("departments"), county.services.url("supervision")
    for o in county.store.work_orders_of(case["id"]):
        base = f"{dep}/departments/{o['department']}/work-orders/{o['id']}"
        county.http.post(f"{base}/accept", json={"actor": "duty"}, timeout=5).raise_for_status()
        county.http.post(f"{base}/resolve", json={"actor": "duty", "note": "done"}, timeout=5).raise_for_status()
    r = county.http.post(f"{sup}/cases/{cid}/verify", json={"actor": "grid-worker-1"}, timeout=5)
    assert r.status_code == 200 and r.json()["case"]["status"] == "verified", r.text


def _asked(county, phone: str, cid: str) -> str:
    """The satisfaction SMS the gateway was given for `cid` (the question is open once it is)."""
    code = rp.short_code(cid)
    return wait_until(
        lambda: next((t for t in county.receiver.texts_to(phone) if "回复 1 满意" in t and code in t), None),
        what=f"the satisfaction SMS for {cid}",
    )


def _reply(county, message_id: str, phone: str, text: str, secret: str = INBOUND):
    return push_reply(county.services.url("notify"), secret.encode(), message_id, phone, text)


def test_a_signed_reply_1_closes_the_case_satisfied_and_the_12345_system_hears_each_step(county):
    cid = _hotline_case(county, 61, PHONE, "city_appearance", "HL-20261205-0001", callback=True)
    _to_verified(county, cid)
    assert "请加代码" in _asked(county, PHONE, cid)
    r = _reply(county, "sms-up-0001", PHONE, " １。")
    assert r.status_code == 200, r.text
    assert r.json() | {"codes": []} == {
        "message_id": "sms-up-0001",
        "outcome": "matched",
        "reason": "",
        "case_id": cid,
        "verdict": "satisfied",
        "codes": [],
        "replayed": False,
    }
    case = county.store.case(cid)
    assert (case["status"], case["outcome"], case["satisfied"]) == ("closed", "fixed", True)
    line = county.store.timeline(cid)[-1]
    assert line["action"] == "satisfied" and "by SMS reply" in line["note"]
    assert line["actor"].startswith("citizen:sms:") and PHONE not in json.dumps(line)
    again = _reply(county, "sms-up-0001", PHONE, " １。")  # the gateway retries: the same outcome, once
    assert again.status_code == 200 and again.json()["outcome"] == "matched" and again.json()["replayed"] is True
    assert [s["action"] for s in county.store.timeline(cid)].count("satisfied") == 1
    # the 12345 system: accepted, dispatched, resolved, closed, each with its ticket_no, signed
    answers = wait_until(
        lambda: len(a := county.receiver.answers["HL-20261205-0001"]) >= 4 and a, what="four 12345 answers"
    )
    # delivered concurrently (and retried), so not necessarily in order: each step exactly once
    assert sorted(a["step"] for a in answers) == sorted(["accepted", "dispatched", "resolved", "closed"])
    assert {a["case_id"] for a in answers} == {cid}
    assert next(a for a in answers if a["step"] == "closed")["satisfied"] is True
    # callback_required: the caller is told the outcome by SMS although a fixed case tells nobody by default
    wait_until(lambda: any("已办结" in t for t in county.receiver.texts_to(PHONE)), what="the call-back SMS")


def test_unsigned_stale_or_badly_signed_pushes_are_refused(county):
    url = county.services.url("notify") + "/notify/sms/replies"
    body = {"message_id": "x-1", "from": PHONE, "text": "1"}
    assert county.http.post(url, json=body, timeout=5).status_code == 401  # a person's token is no signature
    assert requests.post(url, json=body, timeout=5).status_code == 401
    bad = _reply(county, "x-2", PHONE, "1", secret="not-the-secret")
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_signature"
    assert bad.headers["WWW-Authenticate"].startswith("OneGrid-HMAC-SHA256")
    raw = json.dumps(body).encode()
    old = str(int(time.time()) - 3600)  # a captured push replayed an hour later
    stale = requests.post(
        url, data=raw, headers={TIMESTAMP: old, SIGNATURE: sign(INBOUND.encode(), old, raw)}, timeout=5
    )
    assert stale.status_code == 401 and stale.json()["error"] == "invalid_signature"


def test_a_bare_reply_with_two_questions_open_records_nothing_and_asks_which(county):
    first = _hotline_case(county, 71, OTHER, "public_facilities", "HL-20261205-0002")
    second = _hotline_case(county, 72, OTHER, "pollution", "HL-20261205-0003")
    for cid in (first, second):
        _to_verified(county, cid)
        _asked(county, OTHER, cid)
    r = _reply(county, "sms-up-0002", OTHER, "2")
    assert r.status_code == 200 and r.json()["outcome"] == "ambiguous", r.text
    assert set(r.json()["codes"]) == {rp.short_code(first), rp.short_code(second)}
    assert {county.store.case(c)["status"] for c in (first, second)} == {"verified"}  # nothing recorded
    wait_until(lambda: any("未记录您的评价" in t for t in county.receiver.texts_to(OTHER)), what="the question back")
    named = _reply(county, "sms-up-0003", OTHER, f"2 {rp.short_code(second)}")
    assert named.json()["outcome"] == "matched" and named.json()["case_id"] == second
    assert county.store.case(second)["status"] in ("reopened", "dispatched")  # not satisfied reopens
    bare = _reply(county, "sms-up-0004", OTHER, "满意")  # one question left open: a bare verdict is enough
    assert (bare.json()["outcome"], bare.json()["case_id"]) == ("matched", first)
    stray = _reply(county, "sms-up-0005", "13600136000", "1")  # a number nobody asked
    assert (stray.json()["outcome"], stray.json()["reason"]) == ("unmatched", "no_open_question")
    notify = county.services.url("notify")
    kept = county.http.get(f"{notify}/notify/replies?outcome=unmatched", timeout=5)
    assert kept.status_code == 200 and any(x["message_id"] == "sms-up-0005" for x in kept.json()["replies"])
    stats = county.http.get(f"{notify}/notify/stats", timeout=5).json()
    assert stats["replies:unmatched"] >= 1 and stats["replies:ambiguous"] >= 1 and stats["replies:matched"] >= 2
