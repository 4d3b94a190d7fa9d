"""What the services accept from a caller over RPC and HTTP: the marshmallow schemas of
request bodies and query strings. The services validate with them, and onegrid/operator/openapi.py
documents them (one definition, so the OpenAPI documents cannot drift from the checks)."""

from __future__ import annotations

from marshmallow import Schema, fields, post_load, pre_load, validate

from onegrid.domain.lifecycle import CASE_STATES
from onegrid.kernel.tenant import LEVEL_NAME

CASE_ACTIONS = ("verify", "verify_failed", "satisfied", "not_satisfied", "reject", "close_not_fixed")  # supervision
WORK_ORDER_ACTIONS = {
    "accept": "accept",
    "return": "return",
    "resolve": "resolve",  # departments: the HTTP name ...
    "extension": "request_extension",
}  # ... of each department action
MAX_OFFSET = 10**9  # far past any page anyone reads; Redis takes no index past a 64-bit integer
MONTH = validate.Regexp(r"^[0-9]{4}-(0[1-9]|1[0-2])$", error="a month is YYYY-MM")
# the monthly report's month: from 1970-01, the epoch the cases' registration index counts from
REPORT_MONTH = validate.Regexp(r"^(19[7-9][0-9]|[2-9][0-9]{3})-(0[1-9]|1[0-2])$", error="a month YYYY-MM from 1970-01")
WEEK = validate.Regexp(r"^[0-9]{4}-W(0[1-9]|[1-4][0-9]|5[0-3])$", error="an ISO week is YYYY-Www")
PERIODS = {"month": MONTH, "week": WEEK}  # scoring's assessment periods, and how each is named
_ACTOR = fields.String(required=True, validate=validate.Length(1, 64))
ACTOR = _ACTOR  # who acts: the body's word for a machine, checked the same even when a person's token overrides it
_NOTE = fields.String(load_default="", validate=validate.Length(max=2000))
_EVIDENCE = fields.List(fields.Url(schemes={"http", "https"}), load_default=list, validate=validate.Length(max=9))


class ActionRequest(Schema):
    """departments: accept, return, resolve or ask for more time on a work order."""

    actor = _ACTOR
    note = _NOTE
    evidence_urls = _EVIDENCE
    extension = fields.String(load_default=None, validate=validate.Regexp(r"^[1-9][0-9]*[smhd]$"))


class Page(Schema):
    """One page of a listing (a department's queue, a case query)."""

    offset = fields.Integer(load_default=0, validate=validate.Range(0, MAX_OFFSET))
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 500))


class WhatIfQuery(Schema):
    """registry: POST /whatif/manifest's window (the last `days` of history, as long as a
    county keeps it at most) and how many grid workers' point changes it lists."""

    days = fields.Integer(load_default=30, validate=validate.Range(1, 400))
    top = fields.Integer(load_default=10, validate=validate.Range(1, 100))


class CaseAction(Schema):
    """supervision: verify, the citizen's word, reject, close not fixed."""

    actor = _ACTOR
    note = _NOTE
    evidence_urls = _EVIDENCE


class Whistle(Schema):
    """supervision: escalate by hand and/or add departments."""

    actor = _ACTOR
    note = fields.String(required=True, validate=validate.Length(1, 2000))
    level = fields.String(load_default=None, validate=validate.Regexp(LEVEL_NAME))  # one of the tenant's ladder
    departments = fields.List(
        fields.String(validate=validate.Length(1, 32)), load_default=list, validate=validate.Length(max=16)
    )


class CheckIn(Schema):
    """supervision: the grid worker on site: where (WGS84), and a note."""

    actor = _ACTOR
    lat = fields.Float(required=True, validate=validate.Range(-90, 90), allow_nan=False)
    lon = fields.Float(required=True, validate=validate.Range(-180, 180), allow_nan=False)
    note = _NOTE


class OfficeAction(Schema):
    """supervision: an office acknowledges or acts on its escalation item."""

    actor = _ACTOR
    note = _NOTE
    departments = fields.List(
        fields.String(validate=validate.Length(1, 32)), load_default=list, validate=validate.Length(max=16)
    )
    work_order_id = fields.String(load_default=None, validate=validate.Length(1, 80))


OFFICE_DECISIONS = ("acknowledge", "take_over", "whistle", "extend", "close_not_fixed")  # POST /escalations/<id>/<d>


class ExtensionDecision(Schema):
    """supervision: grant or deny a department's request for more time."""

    actor = _ACTOR
    note = _NOTE


class DuplicateDecision(Schema):
    """supervision: confirm or dismiss a duplicate suggestion, or un-merge a merged case."""

    actor = _ACTOR
    note = _NOTE


DUPLICATE_DECISIONS = ("confirm", "dismiss", "unmerge")  # POST /cases/<id>/duplicate/<decision>


class Query(Page):
    """supervision: case queries; every filter given must match."""

    status = fields.String(load_default=None, validate=validate.OneOf(CASE_STATES))
    department = fields.String(load_default=None, validate=validate.Length(1, 32))
    grid = fields.String(load_default=None, validate=validate.Length(1, 32))
    level = fields.String(load_default=None, validate=validate.Regexp(LEVEL_NAME))
    overdue = fields.Boolean(load_default=False)
    since = fields.Float(load_default=None)
    until = fields.Float(load_default=None)


class Adjustment(Schema):
    """scoring: an inspector adds or deducts a grid worker's points, with a reason."""

    worker = fields.String(required=True, validate=validate.Length(1, 64))
    points = fields.Integer(required=True, strict=True, validate=validate.Range(-1000, 1000))
    reason = fields.String(required=True, validate=validate.Length(2, 500))
    inspector = fields.String(required=True, validate=validate.Length(1, 64))
    month = fields.String(load_default=None, validate=MONTH)
    id = fields.String(load_default=None, validate=validate.Length(1, 64))


class QuarantinePage(Schema):
    """intake: one page of a department's quarantined events, after an entry id (exclusive)."""

    limit = fields.Integer(load_default=50, validate=validate.Range(1, 500))
    after = fields.String(
        load_default="-",
        validate=validate.Regexp(r"^[0-9]{1,20}-[0-9]{1,20}$", error="an entry id such as 1733300000000-0"),
    )

    @post_load
    def exclusive(self, data, **_):
        data["after"] = data["after"] if data["after"] == "-" else "(" + data["after"]
        return data


class Parked(Schema):
    """notify: the parked notifications to list."""

    limit = fields.Integer(load_default=100, validate=validate.Range(1, 1000))


# the Aliyun SMS "上行短信" (SmsUp) push's names for the same fields, taken as they come
ALIYUN_SMS_UP = {"sequence_id": "message_id", "phone_number": "from", "content": "text", "send_time": "received_at"}


class SmsReply(Schema):
    """notify: a reply the SMS gateway received and pushes (POST /notify/sms/replies), in
    OneGrid's shape or Aliyun's SmsUp one (docs/notify.md)."""

    message_id = fields.String(required=True, validate=validate.Length(1, 64))
    from_ = fields.String(
        required=True, data_key="from", validate=validate.Regexp(r"^\+?[0-9][0-9 -]{4,22}$", error="a phone number")
    )
    text = fields.String(required=True, validate=validate.Length(0, 1000))
    received_at = fields.String(load_default="", validate=validate.Length(max=40))
    sign_name = fields.String(load_default="", validate=validate.Length(max=40))  # the SMS signature replied to
    dest_code = fields.String(load_default="", validate=validate.Length(max=20))  # Aliyun's extension code

    @pre_load
    def _aliyun(self, data, **kwargs):
        """Aliyun's names mapped to ours (its sequence_id is a number: its text is the id)."""
        if not isinstance(data, dict) or "message_id" in data or "sequence_id" not in data:
            return data
        out = {ALIYUN_SMS_UP.get(k, k): v for k, v in data.items()}
        if isinstance(out.get("message_id"), int) and not isinstance(out["message_id"], bool):
            out["message_id"] = str(out["message_id"])
        return out


class Replies(Schema):
    """notify: the SMS replies to list (GET /notify/replies)."""

    outcome = fields.String(load_default=None, validate=validate.OneOf(("matched", "ambiguous", "unmatched")))
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 1000))
