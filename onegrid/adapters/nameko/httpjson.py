"""JSON over nameko's @http: one way to read a body and to map errors to status codes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from marshmallow import ValidationError
from werkzeug.wrappers import Response

from onegrid.adapters.redis.auth import Forbidden, Unauthorized
from onegrid.app.inputs import ACTOR
from onegrid.contracts import asyncapi
from onegrid.domain.intake import lone_surrogate
from onegrid.domain.lifecycle import TransitionRefused


def body_of(request) -> dict:
    try:
        body = json.loads(request.get_data() or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValidationError(f"body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ValidationError("body must be a JSON object")
    surrogate = lone_surrogate(body)
    if surrogate is not None:  # JSON allows the escape; no UTF-8 text (a store, an answer) can hold it
        raise ValidationError(f"body is not JSON text: a string escapes {surrogate}, a lone UTF-16 surrogate")
    return body


def acting_body(request, person: str | None) -> dict:
    """The body of an action; a signed-in `person` acts as themselves. A body's own `actor` is
    still held to its documented type (a string of 1-64) so that a wrong one is a 400 for
    everyone, but a person's token decides who is recorded."""
    body = body_of(request)
    if person:
        if "actor" in body:
            try:
                ACTOR.deserialize(body["actor"])
            except ValidationError as exc:
                raise ValidationError({"actor": exc.messages}) from None
        body["actor"] = person
    return body


@dataclass(frozen=True)
class Failure:
    """An error as an HTTP answer: its status, its JSON body and any headers it must carry."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


# The errors every HTTP entrypoint answers for itself; anything else is a bug (a 500).
ANSWERED = (Unauthorized, Forbidden, ValidationError, TransitionRefused, LookupError)


def failure_of(exc: Exception) -> Failure:
    """400 invalid request, 401 no credential, 403 not yours, 404 unknown, 409 refused by the
    state: the one mapping of the errors in ANSWERED (the JSON services and the console's pages)."""
    if isinstance(exc, Unauthorized):
        return Failure(401, {"error": exc.error, "detail": exc.detail}, exc.headers)
    if isinstance(exc, Forbidden):
        return Failure(403, {"error": str(exc)})
    if isinstance(exc, ValidationError):
        return Failure(400, {"error": "invalid request", "fields": exc.messages})
    if isinstance(exc, TransitionRefused):
        return Failure(409, {"error": str(exc)})
    if isinstance(exc, LookupError):
        return Failure(404, {"error": str(exc).strip("'\"")})
    raise TypeError(f"no status for {type(exc).__name__}") from exc


def respond(run) -> Response:
    """200 with the result (a Response as it is: a download); an error in ANSWERED as failure_of
    says."""
    try:
        payload = run()
    except ANSWERED as exc:
        failure = failure_of(exc)
        return json_response(failure.status, failure.body, failure.headers)
    if isinstance(payload, Response):
        return payload
    return json_response(200, payload)


def json_response(status: int, payload, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(payload, ensure_ascii=False, default=str),
        status=status,
        headers=headers or {},
        mimetype="application/json",
    )


def asyncapi_response(tenant, registry, fmt: str) -> Response:
    """The tenant's AsyncAPI document as YAML or JSON (intake and the registry both serve it)."""
    doc = asyncapi.document(tenant, registry)
    if fmt == "yaml":
        return Response(asyncapi.render(doc), mimetype="application/yaml")
    return Response(json.dumps(doc, ensure_ascii=False), mimetype="application/json")
