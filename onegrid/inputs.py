"""What the services accept from a caller over RPC and HTTP: the marshmallow schemas of
request bodies and query strings. The services validate with them, and onegrid/openapi.py
documents them (one definition, so the OpenAPI documents cannot drift from the checks)."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from onegrid.domain.lifecycle import CASE_STATES
from onegrid.tenant import LEVELS

CASE_ACTIONS = ("verify", "verify_failed", "satisfied", "not_satisfied", "reject", "close_not_fixed")  # supervision
WORK_ORDER_ACTIONS = {"accept": "accept", "return": "return", "resolve": "resolve",  # departments: the HTTP name ...
                      "extension": "request_extension"}  # ... of each department action
MAX_OFFSET = 10**9  # far past any page anyone reads; Redis takes no index past a 64-bit integer
MONTH = validate.Regexp(r"^[0-9]{4}-(0[1-9]|1[0-2])$", error="a month is YYYY-MM")
WEEK = validate.Regexp(r"^[0-9]{4}-W(0[1-9]|[1-4][0-9]|5[0-3])$", error="an ISO week is YYYY-Www")
PERIODS = {"month": MONTH, "week": WEEK}  # scoring's assessment periods, and how each is named
_ACTOR = fields.String(required=True, validate=validate.Length(1, 64))
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


class CaseAction(Schema):
    """supervision: verify, the citizen's word, reject, close not fixed."""
    actor = _ACTOR
    note = _NOTE
    evidence_urls = _EVIDENCE


class Whistle(Schema):
    """supervision: escalate by hand and/or add departments."""
    actor = _ACTOR
    note = fields.String(required=True, validate=validate.Length(1, 2000))
    level = fields.String(load_default=None, validate=validate.OneOf(LEVELS))
    departments = fields.List(fields.String(validate=validate.Length(1, 32)), load_default=list,
                              validate=validate.Length(max=16))


class ExtensionDecision(Schema):
    """supervision: grant or deny a department's request for more time."""
    actor = _ACTOR
    note = _NOTE


class Query(Page):
    """supervision: case queries; every filter given must match."""
    status = fields.String(load_default=None, validate=validate.OneOf(CASE_STATES))
    department = fields.String(load_default=None, validate=validate.Length(1, 32))
    grid = fields.String(load_default=None, validate=validate.Length(1, 32))
    level = fields.String(load_default=None, validate=validate.OneOf(LEVELS))
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


class Parked(Schema):
    """notify: the parked notifications to list."""
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 1000))
