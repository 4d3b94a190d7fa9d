"""The one exception → HTTP status mapping (onegrid/adapters/nameko/httpjson.py) the JSON
services' `respond` and the console's pages share."""

import json

import pytest
from marshmallow import ValidationError

from onegrid.adapters.nameko.httpjson import ANSWERED, failure_of, respond
from onegrid.adapters.redis.auth import Forbidden, Unauthorized
from onegrid.domain.lifecycle import TransitionRefused


def _raise(exc):
    def run():
        raise exc

    return run


@pytest.mark.parametrize(
    ("exc", "status", "body"),
    [
        (Forbidden("not yours"), 403, {"error": "not yours"}),
        (ValidationError({"x": ["bad"]}), 400, {"error": "invalid request", "fields": {"x": ["bad"]}}),
        (TransitionRefused("closed"), 409, {"error": "closed"}),
        (KeyError("CASE-1"), 404, {"error": "CASE-1"}),
        (LookupError("no such page"), 404, {"error": "no such page"}),
    ],
)
def test_each_answered_error_has_its_status_and_body(exc, status, body):
    failure = failure_of(exc)
    assert (failure.status, failure.body, failure.headers) == (status, body, {})
    resp = respond(_raise(exc))
    assert resp.status_code == status
    assert json.loads(resp.get_data()) == body


def test_unauthorized_carries_its_challenge():
    exc = Unauthorized("invalid_token", "the token has expired")
    failure = failure_of(exc)
    assert failure.status == 401
    assert failure.body == {"error": "invalid_token", "detail": "the token has expired"}
    assert "invalid_token" in failure.headers["WWW-Authenticate"]
    assert respond(_raise(exc)).headers["WWW-Authenticate"] == failure.headers["WWW-Authenticate"]


def test_a_result_is_200_json_and_anything_else_is_not_answered():
    resp = respond(lambda: {"ok": 1})
    assert (resp.status_code, json.loads(resp.get_data())) == (200, {"ok": 1})
    assert not isinstance(RuntimeError("bug"), ANSWERED)
    with pytest.raises(RuntimeError):
        respond(_raise(RuntimeError("bug")))
