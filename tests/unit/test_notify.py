"""Notify's pure rules: which notifications an event calls for, their Chinese text, keys,
backoff with jitter, the per-recipient rate limit; and the webhook signature as a receiver
checks it."""

import copy
import hashlib
import hmac
import random

import pytest

from onegrid.adapters.channels.notify_channels import sign, verify
from onegrid.domain import notify as nd
from tests.lifecycle import Story, as_event

from .helpers import JINCHENG, QINLING, registry

GRID = "410102-001-003-002"
CITIZEN = {"kind": "citizen", "id": "12345-0001", "phone": "13800138000"}


def _cfg(**over):
    doc = copy.deepcopy(registry().tenants[QINLING].source)
    doc["notify"]["channels"]["email"]["enabled"] = True
    doc["notify"]["channels"]["sms"]["enabled"] = True
    doc["notify"].update(over)
    return nd.parse_config(doc)


def _names():
    reg, t = registry(), registry().tenants[QINLING]
    return nd.Names(
        t.name_zh,
        {k: c["name_zh"] for k, c in reg.categories.items()},
        {k: d["name_zh"] for k, d in reg.departments.items()},
        {c: (n.name, n.parent) for c, n in t.nodes.items()},
    )


def _plan(event, cfg=None):
    return nd.plan(as_event(event), cfg or _cfg(), _names())


def test_demo_manifests_are_valid_and_reach_the_local_receiver():
    for tid in (QINLING, JINCHENG):
        doc = registry().tenants[tid].source
        assert nd.check_manifest(doc) == []
        cfg = nd.parse_config(doc)
        assert list(cfg.channels) == ["webhook", "sms", "hotline"]  # e-mail off: no relay on a demo machine
        assert all(c["url"].startswith("http://127.0.0.1:8290/") for c in cfg.channels.values())
        assert cfg.inbound == {"secret_env": "ONEGRID_SMS_INBOUND_SECRET", "tolerance_s": 300.0}


def test_manifest_problems_name_the_path():
    doc = {
        "notify": {
            "templates": {"receipt": "{case.id} {nonsense}", "gossip": "x", "closed": "{summary!r}"},
            "channels": {"webhook": {"url": "ftp://x"}, "pigeon": {}, "sms": {"enabled": False}},
            "routes": {"reporter": ["fax"]},
            "delivery": {"max_attempts": 0, "jitter": 2},
            "rate_limit": {"per_recipient": 0},
            "colour": 1,
        }
    }
    paths = {p for p, _ in nd.check_manifest(doc)}
    assert paths == {
        "notify.templates.receipt",
        "notify.templates.gossip",
        "notify.templates.closed",
        "notify.channels.webhook.url",
        "notify.channels.webhook.secret_env",
        "notify.channels.pigeon",
        "notify.routes.reporter",
        "notify.delivery.max_attempts",
        "notify.delivery.jitter",
        "notify.rate_limit.per_recipient",
        "notify.colour",
    }
    with pytest.raises(ValueError):
        nd.parse_config(doc)


def test_a_receipt_to_the_reporter_in_chinese_on_each_channel_that_reaches_them():
    s = Story("c-1a", grid=GRID, reporter=CITIZEN, category="city_appearance")
    out = _plan(s.registered())
    assert [(n.kind, n.channel, n.address) for n in out] == [
        ("receipt", "sms", "13800138000"),
        ("receipt", "webhook", "reporter:12345-0001"),
    ]
    assert out[0].text == (
        "【郑州市中原区秦岭路街道】您反映的“楼道堆放杂物影响通行”已受理，编号 c-1a。我们将尽快处理，结果会及时告知您。"
    )
    # a grid worker has no phone on record: the app (webhook) only
    g = Story("c-1b", grid=GRID)
    assert [(n.channel, n.recipient.role) for n in _plan(g.registered())] == [("webhook", "reporter")]


def test_dispatch_goes_to_the_grid_worker_in_the_grid_else_to_each_department():
    s = Story("c-2a", grid=GRID)
    s.registered()
    out = _plan(s.dispatched("urban_management", level="grid"))
    assert [(n.recipient.role, n.recipient.id, n.channel) for n in out] == [("grid_worker", f"grid:{GRID}", "webhook")]
    assert "杜康社区第二网格" in out[0].text and "市容环境（琐事）" in out[0].text and "前签收" in out[0].text
    j = Story("c-2b", grid=GRID, severity="critical", category="public_facilities")
    j.registered()
    out = _plan(j.dispatched("urban_management", "water", level="county"))
    assert [(n.recipient.id, n.channel, n.address) for n in out] == [
        ("urban_management", "webhook", "department:urban_management"),
        ("urban_management", "email", "urban_management@qinling.zhongyuan.example.gov.cn"),
        ("water", "webhook", "department:water"),
        ("water", "email", "water@qinling.zhongyuan.example.gov.cn"),
    ]
    assert all("紧急" in n.text for n in out)


def test_overdue_reminds_the_handling_unit_and_its_leader():
    s = Story("c-3", grid=GRID)
    s.registered(), s.dispatched("urban_management", level="community")
    out = _plan(s.supervised("overdue_acknowledge", department="urban_management"))
    got = [(n.kind, n.recipient.role, n.channel, n.address) for n in out]
    assert got == [
        ("overdue", "department", "webhook", "department:urban_management"),
        ("overdue", "department", "email", "urban_management@qinling.zhongyuan.example.gov.cn"),
        ("overdue_leader", "leader", "email", "urban_management.leader@qinling.zhongyuan.example.gov.cn"),
        ("overdue_leader", "leader", "webhook", "leader:urban_management:leader"),
    ]
    assert "超时未签收" in out[0].text and out[2].text.startswith("【督办抄送】城市管理")
    g = Story("c-3g", grid=GRID)
    g.registered(), g.dispatched("urban_management", level="grid")
    leaders = [n for n in _plan(g.supervised()) if n.kind == "overdue_leader"]
    assert leaders[0].address == "community-410102-001-003@qinling.zhongyuan.example.gov.cn"
    assert "杜康社区第二网格承办" in leaders[0].text


def test_an_escalation_reaches_the_new_office_and_tells_those_below():
    t = registry().tenants[QINLING]
    community, street = t.ancestor(GRID, "community").code, t.ancestor(GRID, "street").code
    s = Story("c-4", grid=GRID)
    s.registered(), s.dispatched("urban_management", level="grid")
    _, data, eid, at = s.escalated("street")
    item = {"id": "e-4-street", "level": "street", "unit": street, "office": "街道办", "due": 1_800_000_000.0}
    told = [{"level": "grid", "unit": GRID}, {"level": "community", "unit": community}]
    out = nd.plan(as_event(("case.escalated", {**data, "item": item, "told": told}, eid, at)), _cfg(), _names())
    got = [(n.kind, n.recipient.role, n.recipient.id, n.channel) for n in out]
    assert got == [
        ("escalated", "office", f"office:{street}", "webhook"),
        ("escalated_below", "grid_worker", f"grid:{GRID}", "webhook"),
        ("escalated_below", "office", f"office:{community}", "webhook"),
    ]
    assert out[0].text.startswith("【升级督办】c-4") and "街道办" in out[0].text and "前签收" in out[0].text
    assert "已升级至街道（街道办）办理" in out[1].text
    # a deadline passing on the case now at the street goes to the street's office too
    _, data, eid, at = s.supervised("overdue_resolve", department="urban_management")
    sup = nd.plan(as_event(("case.supervised", {**data, "unit": street}, eid, at)), _cfg(), _names())
    office = [n for n in sup if n.kind == "overdue_office"]
    assert [n.recipient.id for n in office] == [f"office:{street}"] and "请本级立即处理" in office[0].text
    # an office that missed its own item's deadline is the one reminded, not the departments
    _, data, eid, at = s.supervised("office_unacknowledged")
    missed = {**data, "unit": street, "level": "street", "item": "e-4-street"}
    got = nd.plan(as_event(("case.supervised", missed, eid, at)), _cfg(), _names())
    assert {(n.kind, n.recipient.id) for n in got} == {("overdue_office", f"office:{street}")}
    assert "上级督办单超时未签收" in got[0].text


def test_the_reporter_hears_the_resolution_the_question_and_any_unhappy_ending():
    s = Story("c-4", grid=GRID, reporter=CITIZEN)
    s.registered(), s.dispatched("urban_management"), s.work_order("urban_management", "accept")
    s.work_order("urban_management", "resolve"), s.resolved()
    kinds = [(n.kind, n.channel) for n in _plan(s.verified())]
    assert kinds == [
        ("resolution", "sms"),
        ("resolution", "webhook"),
        ("satisfaction", "sms"),
        ("satisfaction", "webhook"),
    ]
    assert _plan(s.closed("fixed")) == []  # they already have the answer
    n = Story("c-5", reporter=CITIZEN)
    n.registered()
    closed = _plan(n.closed("not_fixed", satisfied=None))
    assert closed[0].kind == "closed" and "问题未能解决，已终结。无法处置" in closed[0].text
    r = Story("c-6", reporter=CITIZEN)
    r.registered()
    assert "属司法诉讼事项" in _plan(r.rejected())[0].text
    m = Story("c-7", reporter=CITIZEN)
    m.registered()
    assert "c-primary" in _plan(m.merged("c-primary"))[0].text


def test_every_reporter_still_merged_into_a_case_hears_its_outcome():
    other = {"kind": "citizen", "id": "12345-0002", "phone": "13900139000"}
    s = Story("c-9", grid=GRID, reporter=CITIZEN)
    s.registered()
    s.case["linked"] = [
        {"case_id": "c-10", "reporter": other, "summary": "秦岭路12号门前烧烤"},
        {"case_id": "c-11", "reporter": {"kind": "grid_worker", "id": "gw-2"}},
    ]
    fixed = _plan(s.closed("fixed"))
    told = [(n.kind, n.recipient.id, n.channel) for n in fixed]
    assert told == [
        ("merged_outcome", "12345-0002", "sms"),
        ("merged_outcome", "12345-0002", "webhook"),
        ("merged_outcome", "gw-2", "webhook"),
    ]
    assert "“秦岭路12号门前烧烤”已与事项（编号 c-9）合并办理，现已办结：问题已解决" in fixed[0].text
    assert fixed[0].case_id == "c-9"
    s.case["linked"] = []  # un-merged meanwhile: not told another case's outcome
    assert [n.kind for n in _plan(s.closed("not_fixed"))] == ["closed", "closed"]


def test_keys_are_stable_and_unique_per_event_kind_recipient_and_channel():
    s = Story("c-8", reporter=CITIZEN)
    s.registered(), s.dispatched("urban_management"), s.work_order("urban_management", "accept")
    verified = s.verified()
    first, again = _plan(verified), _plan(verified)
    assert [n.key for n in first] == [n.key for n in again]
    assert len({n.key for n in first}) == len(first) == 4
    rcpt = first[0].recipient
    assert nd.idempotency_key("e1", "receipt", rcpt, "sms") != nd.idempotency_key("e2", "receipt", rcpt, "sms")


def test_templates_are_plain_names_and_missing_values_render_empty():
    assert nd.render("{summary}：{note}", {"summary": "积水"}) == "积水："
    for bad in ("{case.__class__}", "{summary!r}", "{summary:>10}", "{0}"):
        with pytest.raises(ValueError):
            nd.template_fields(bad)
    custom = _cfg(templates={"receipt": "已收到 {case_id}"})
    s = Story("c-9", reporter=CITIZEN)
    assert {n.text for n in nd.plan(as_event(s.registered()), custom, _names())} == {"已收到 c-9"}


def test_backoff_grows_exponentially_is_capped_and_jitter_stays_in_bounds():
    rng = random.Random(1)
    for attempt in range(1, 12):
        d = min(300, 2 * 2 ** (attempt - 1))
        samples = [nd.backoff(attempt, 2, 300, 0.5, rng) for _ in range(200)]
        assert all(d * 0.5 <= x <= d for x in samples)
        assert max(samples) - min(samples) > d * 0.3  # spread out, not one value
    assert nd.backoff(3, 2, 300, 0) == 8 and nd.backoff(20, 2, 300, 0) == 300


def test_rate_limit_per_recipient_with_an_injected_clock():
    assert nd.rate_decision([], 100.0, 2, 60) is None
    assert nd.rate_decision([90.0], 100.0, 2, 60) is None
    assert nd.rate_decision([50.0, 90.0], 100.0, 2, 60) == 110.0  # when the one at 50 leaves the window
    assert nd.rate_decision([10.0, 50.0, 90.0], 100.0, 2, 60) == 110.0  # 10 is outside already
    assert nd.rate_decision([50.0, 90.0], 111.0, 2, 60) is None


def test_webhook_signature_as_a_receiver_verifies_it():
    secret, ts, body = b"s3cret", "1795315200", '{"text":"已受理"}'.encode()
    signature = sign(secret, ts, body)
    expected = "sha256=" + hmac.new(secret, f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    assert signature == expected
    assert verify(secret, ts, body, signature, now=1795315200 + 60)
    assert not verify(secret, ts, body + b" ", signature, now=1795315200)  # body changed
    assert not verify(b"other", ts, body, signature, now=1795315200)  # wrong secret
    assert not verify(secret, ts, body, signature, now=1795315200 + 3600)  # an old request replayed
    assert not verify(secret, "soon", body, signature)


def test_the_webhook_client_and_the_local_receiver_agree_on_the_signature():
    from onegrid.adapters.channels.notify_channels import DeliveryError, Hotline, Webhook
    from sim.notify_receiver import WebhookReceiver

    receiver = WebhookReceiver(b"shared").start()
    try:
        n = {
            "id": "n-1",
            "tenant": "t",
            "kind": "receipt",
            "case_id": "c-1",
            "event_id": "e-1",
            "event_type": "case.registered",
            "subject": "s",
            "text": "已受理",
            "created_at": "2026-11-10T01:00:00Z",
            "recipient": {"role": "reporter", "id": "r-1", "name": ""},
        }
        Webhook(receiver.url, b"shared", 2).send(n)
        Webhook(receiver.url, b"shared", 2).send(n)  # the same delivery twice: the receiver can tell
        with pytest.raises(DeliveryError) as refused:
            Webhook(receiver.url, b"wrong", 2).send(n)
        assert refused.value.permanent and "401" in refused.value.reason
        assert receiver.counts == {
            "received": 3,
            "verified": 2,
            "duplicates": 1,
            "by_kind": {"receipt": 2},
            "sms": 0,
            "hotline_answers": 0,
        }
        assert receiver.last[-1]["text"] == "已受理"
        answer = {
            **n,
            "id": "n-2",
            "ticket_no": "12345-0001",
            "step": "closed",
            "outcome": "fixed",
            "satisfied": "true",
        }
        Hotline(receiver.hotline_url, b"shared", 2).send(answer)
        Hotline(receiver.hotline_url, b"shared", 2).send(answer)  # a retry: the 12345 system keeps one
        assert receiver.counts["hotline_answers"] == 1
        kept = receiver.answers["12345-0001"][0]
        assert (kept["step"], kept["satisfied"], kept["case_id"]) == ("closed", True, "c-1")
    finally:
        receiver.close()
    with pytest.raises(DeliveryError) as dead:
        Webhook(receiver.url, b"shared", 1).send(n)  # nobody listens any more
    assert not dead.value.permanent and "unreachable" in dead.value.reason
