"""notify's inbound use cases through in-memory fakes of its ports: questions opened and
settled by the lifecycle events, a reply recorded once however often the gateway pushes it, a
verdict that reaches a case which moved on kept unmatched, and the question back when a bare
verdict could answer several."""

from __future__ import annotations

import copy

import pytest
from marshmallow import ValidationError

from onegrid.app.replies import SmsReplies
from onegrid.domain import notify as nd
from onegrid.domain import replies as rp
from onegrid.domain.lifecycle import TransitionRefused
from tests.lifecycle import T0, Story, as_event
from tests.unit.helpers import QINLING, registry
from tests.unit.services.test_notify import FakeOutbox

TENANT = registry().tenants[QINLING]
PHONE = "13800138000"
A, B = "c-00000000000a3f2a", "c-0000000000009b1c"


class FakeBook:
    def __init__(self):
        self.asked: dict[str, dict[str, rp.Question]] = {}
        self.outcomes: dict[str, dict] = {}
        self.kept: list[dict] = []

    def ask(self, phone_key, q):
        self.asked.setdefault(phone_key, {})[q.case_id] = q

    def settle(self, case_id):
        for qs in self.asked.values():
            qs.pop(case_id, None)

    def questions(self, phone_key):
        return list(self.asked.get(phone_key, {}).values())

    def claim(self, key):
        if key in self.outcomes:
            return self.outcomes[key] or {"busy": True}
        self.outcomes[key] = {}
        return None

    def release(self, key):
        self.outcomes.pop(key, None)

    def record(self, key, answer, kept, retention_s):
        self.outcomes[key] = answer
        self.kept.append(kept)

    def replies(self, outcome=None, limit=100):
        return [k for k in self.kept if outcome in (None, k["outcome"])][:limit]


class FakeVerdicts:
    def __init__(self, refuse: bool = False):
        self.calls, self.refuse = [], refuse

    def act(self, case_id, action, actor, note):
        if self.refuse:
            raise TransitionRefused(f"case {case_id} is closed; cannot {action}")
        self.calls.append((case_id, action, actor, note))


class Clock:
    def now(self):
        return T0.timestamp()

    def now_iso(self):
        return T0.isoformat()


def _desk(refuse=False) -> tuple[SmsReplies, FakeBook, FakeOutbox, FakeVerdicts]:
    doc = copy.deepcopy(TENANT.source)
    doc["notify"]["channels"]["sms"]["enabled"] = True
    cfg = nd.parse_config(doc)
    book, outbox, verdicts = FakeBook(), FakeOutbox(), FakeVerdicts(refuse)
    names = nd.Names("秦岭路街道")
    return SmsReplies(TENANT, cfg, names, book, outbox, verdicts, Clock()), book, outbox, verdicts


def _verified(desk: SmsReplies, case_id: str) -> Story:
    s = Story(case_id, reporter={"kind": "citizen", "id": "r", "phone": PHONE})
    s.registered()
    desk.on_event(as_event(s.verified()))
    return s


def test_a_reply_is_recorded_once_however_often_the_gateway_pushes_it():
    desk, book, _, verdicts = _desk()
    _verified(desk, A)
    first = desk.receive({"message_id": "m1", "from": "+86 13800138000", "text": "1"})
    again = desk.receive({"message_id": "m1", "from": "+86 13800138000", "text": "1"})
    assert (first["outcome"], first["case_id"], first["replayed"]) == ("matched", A, False)
    assert again == {**first, "replayed": True}
    [(case_id, action, actor, note)] = verdicts.calls
    assert (case_id, action) == (A, "satisfied") and PHONE not in actor and "by SMS reply" in note
    assert book.questions(rp.phone_key(TENANT.id, PHONE)) == []  # answered: no longer open


def test_the_case_moving_on_settles_the_question():
    desk, book, _, _ = _desk()
    s = _verified(desk, A)
    desk.on_event(as_event(s.closed("fixed", satisfied=None)))
    out = desk.receive({"message_id": "m2", "from": PHONE, "text": "2"})
    assert (out["outcome"], out["reason"]) == ("unmatched", "no_open_question")
    assert book.kept[-1]["from"] == PHONE and book.kept[-1]["text"] == "2"


def test_a_verdict_supervision_refuses_is_kept_unmatched():
    desk, _, _, _ = _desk(refuse=True)
    _verified(desk, A)
    out = desk.receive({"message_id": "m3", "from": PHONE, "text": "满意"})
    assert (out["outcome"], out["reason"], out["case_id"]) == ("unmatched", "case_moved_on", A)


def test_a_bare_verdict_with_two_open_asks_which_by_sms_and_records_nothing():
    desk, _, outbox, verdicts = _desk()
    _verified(desk, A), _verified(desk, B)
    out = desk.receive({"message_id": "m4", "from": PHONE, "text": "1"})
    assert out["outcome"] == "ambiguous" and sorted(out["codes"]) == ["3F2A", "9B1C"] and verdicts.calls == []
    [ask] = outbox.records.values()
    assert (ask.kind, ask.channel, ask.address) == ("reply_ask", "sms", PHONE) and "3F2A" in ask.text
    desk.receive({"message_id": "m4", "from": PHONE, "text": "1"})  # the retry asks nothing twice
    assert len(outbox.records) == 1


def test_aliyun_smsup_names_are_taken_and_a_bad_body_is_a_400():
    desk, _, _, _ = _desk()
    _verified(desk, A)
    out = desk.receive({"sequence_id": 1234567890, "phone_number": PHONE, "content": "1", "send_time": "2026-12-05"})
    assert (out["message_id"], out["outcome"]) == ("1234567890", "matched")
    with pytest.raises(ValidationError):
        desk.receive({"message_id": "m5", "from": "not a number", "text": "1"})
    with pytest.raises(ValidationError):
        desk.receive({"message_id": ["m6"], "from": PHONE, "text": "1"})
