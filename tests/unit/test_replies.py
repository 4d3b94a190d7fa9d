"""The citizen's two-way voice, pure: a reply read as a verdict and matched to the question it
answers (onegrid/domain/replies.py), and the 12345 answers and call-backs notify plans
(onegrid/domain/notify.py: plan_two_way)."""

import copy

import pytest

from onegrid.domain import notify as nd
from onegrid.domain import replies as rp
from tests.lifecycle import Story, as_event

from .helpers import QINLING, registry

A, B = "c-00000000000a3f2a", "c-0000000000009b1c"


@pytest.mark.parametrize(
    ("text", "verdict", "code"),
    [
        ("1", "satisfied", None),
        (" 1 ", "satisfied", None),
        ("１", "satisfied", None),  # full-width
        ("1。", "satisfied", None),
        ("满意！", "satisfied", None),
        ("2", "not_satisfied", None),
        ("２", "not_satisfied", None),
        ("不满意", "not_satisfied", None),
        ("【回复】不满意。", None, None),  # a bracketed word is no verdict: the words must stand alone
        ("1 3F2A", "satisfied", "3f2a"),
        ("3f2a，2", "not_satisfied", "3f2a"),
        ("13F2A", "satisfied", "3f2a"),
        ("１ ３Ｆ２Ａ", "satisfied", "3f2a"),
        ("2 编号 c-00000000000a3f2a", "not_satisfied", "c00000000000a3f2a"),
        ("满意 9B1C", "satisfied", "9b1c"),
        ("12", None, None),
        ("1 2", None, None),
        ("谢谢", None, None),
        ("非常满意", None, None),
        ("", None, None),
        ("1 3F2A 9B1C", None, None),
    ],
)
def test_parse_reads_the_verdict_and_the_code_it_names(text, verdict, code):
    assert rp.parse(text) == rp.Reply(verdict, code if verdict else None)


def _q(case_id: str, asked: float) -> rp.Question:
    return rp.Question(case_id, asked, "楼道堆放杂物影响通行")


def test_one_open_question_takes_a_bare_verdict():
    out = rp.match(rp.parse("1"), [_q(A, 10)])
    assert (out.outcome, out.case_id, out.verdict) == (rp.MATCHED, A, "satisfied")


def test_several_open_questions_and_a_bare_verdict_record_nothing_and_ask_again():
    out = rp.match(rp.parse("2"), [_q(A, 10), _q(B, 20)])
    assert out.outcome == rp.AMBIGUOUS and out.reason == "several_open" and out.case_id == ""
    assert [q.code for q in out.asked] == ["9B1C", "3F2A"]  # newest first
    text = rp.ask_again_text("秦岭路街道", out.asked)
    assert "9B1C" in text and "3F2A" in text and "未记录您的评价" in text and "“1 9B1C”" in text


def test_a_code_names_its_question_among_several():
    out = rp.match(rp.parse("2 3f2a"), [_q(A, 10), _q(B, 20)])
    assert (out.outcome, out.case_id, out.verdict) == (rp.MATCHED, A, "not_satisfied")
    whole = rp.match(rp.parse(f"1 {B}"), [_q(A, 10), _q(B, 20)])
    assert (whole.outcome, whole.case_id) == (rp.MATCHED, B)


def test_a_code_of_no_open_question_is_unmatched_even_with_one_open():
    out = rp.match(rp.parse("1 FFFF"), [_q(A, 10)])
    assert (out.outcome, out.reason) == (rp.UNMATCHED, "unknown_code")


def test_two_open_questions_sharing_a_code_are_ambiguous():
    twin = "c-11111111111a3f2a"
    out = rp.match(rp.parse("1 3F2A"), [_q(A, 10), _q(twin, 20)])
    assert (out.outcome, out.reason) == (rp.AMBIGUOUS, "code_collision")
    assert rp.match(rp.parse(f"1 {twin}"), [_q(A, 10), _q(twin, 20)]).case_id == twin


def test_no_question_or_other_text_is_kept_unmatched():
    assert rp.match(rp.parse("1"), []).reason == "no_open_question"
    assert rp.match(rp.parse("谢谢你们"), [_q(A, 10)]).reason == "not_a_verdict"
    assert set(rp.REASONS) >= {"no_open_question", "not_a_verdict", "unknown_code", "several_open", "case_moved_on"}


def test_numbers_are_matched_by_a_salted_hash_of_the_digits_people_mean():
    key = rp.phone_key("t", "13800138000")
    assert key == rp.phone_key("t", "+86 138-0013-8000") == rp.phone_key("t", "008613800138000")
    assert key != rp.phone_key("other-county", "13800138000")
    assert "13800138000" not in key and "13800138000" not in rp.citizen_actor(key)
    assert len(rp.citizen_actor(key)) <= 64


def test_the_satisfaction_sms_carries_the_code_a_reply_names():
    s = Story(A, reporter={"kind": "citizen", "id": "x", "phone": "13800138000"})
    s.registered()
    sms = [n for n in nd.plan(as_event(s.verified()), _cfg(), nd.Names("秦岭路街道")) if n.kind == "satisfaction"]
    assert "回复 1 满意，2 不满意" in sms[0].text and "“1 3F2A”" in sms[0].text
    assert rp.parse("1 3F2A").code == rp.short_code(A).lower()


def _cfg(hotline: bool = True):
    doc = copy.deepcopy(registry().tenants[QINLING].source)
    doc["notify"]["channels"]["sms"]["enabled"] = True
    doc["notify"]["channels"].pop("hotline", None)
    if hotline:
        doc["notify"]["channels"]["hotline"] = {"url": "http://127.0.0.1:1/12345", "secret_env": "HOTLINE_SECRET"}
    return nd.parse_config(doc)


def _hotline_story(callback=None) -> Story:
    s = Story(A, reporter={"kind": "hotline", "id": "12345-0001", "phone": "13800138000"})
    s.case["data"] = {
        "ticket_no": "12345-20261122-0001",
        **({"callback_required": callback} if callback is not None else {}),
    }
    return s


def test_a_12345_case_is_answered_at_each_step_with_its_ticket_no():
    s, cfg, names = _hotline_story(), _cfg(), nd.Names("秦岭路街道")
    steps = [s.registered(), s.dispatched("urban_management"), s.resolved(), s.verified(), s.closed("fixed")]
    answers = [n for e in steps for n in nd.plan_two_way(as_event(e), cfg, names)]
    assert [(n.extra["step"], n.channel, n.address) for n in answers] == [
        (step, "hotline", "12345-20261122-0001") for step in ("accepted", "dispatched", "resolved", "closed")
    ]
    closed = answers[-1]
    assert closed.extra["satisfied"] == "true" and closed.extra["outcome"] == "fixed"
    assert "12345 工单 12345-20261122-0001" in closed.text and "已办结" in closed.text
    assert len({n.key for n in answers}) == 4  # one per event: a redelivery enqueues nothing new
    assert nd.plan_two_way(as_event(Story("c-1").registered()), cfg, names) == []  # not the hotline's
    assert nd.plan_two_way(as_event(_hotline_story().registered()), _cfg(hotline=False), names) == []


def test_callback_required_tells_the_reporter_the_outcome_by_sms_where_plan_would_not():
    names = nd.Names("秦岭路街道")
    asked, quiet = _hotline_story(callback=True), _hotline_story()
    asked.registered(), quiet.registered()
    told = [n for n in nd.plan_two_way(as_event(asked.closed("fixed")), _cfg(), names) if n.kind == "closed"]
    assert [(n.channel, n.address) for n in told] == [("sms", "13800138000")] and "问题已解决" in told[0].text
    assert not [n for n in nd.plan_two_way(as_event(quiet.closed("fixed")), _cfg(), names) if n.kind == "closed"]


def test_the_manifest_names_the_inbound_secret_and_the_hotline_channel():
    doc = copy.deepcopy(registry().tenants[QINLING].source)
    doc["notify"]["channels"]["sms"].update(inbound_secret_env="SMS_IN", inbound_tolerance_s=-1)
    doc["notify"]["channels"]["hotline"] = {"url": "ftp://x"}
    problems = dict(nd.check_manifest(doc))
    assert "notify.channels.sms.inbound_tolerance_s" in problems
    assert "notify.channels.hotline.secret_env" in problems and "notify.channels.hotline.url" in problems
    doc["notify"]["channels"]["sms"]["inbound_tolerance_s"] = 120
    doc["notify"]["channels"]["hotline"] = {"url": "https://12345.example/answers", "secret_env": "H"}
    assert nd.parse_config(doc).inbound == {"secret_env": "SMS_IN", "tolerance_s": 120.0}
