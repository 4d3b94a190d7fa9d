"""JSON over nameko's @http: one way to read a body and to map errors to status codes."""
from __future__ import annotations

import json

from marshmallow import ValidationError
from werkzeug.wrappers import Response

from onegrid.adapters.auth import Forbidden, Unauthorized
from onegrid.domain.lifecycle import TransitionRefused


def body_of(request) -> dict:
    try:
        body = json.loads(request.get_data() or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValidationError(f"body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ValidationError("body must be a JSON object")
    return body


def respond(run) -> Response:
    """200 with the result; 400 invalid request, 401 no credential, 403 not yours, 404 unknown,
    409 refused by the state."""
    headers = {}
    try:
        status, payload = 200, run()
    except Unauthorized as exc:
        status, payload, headers = 401, {"error": exc.error, "detail": exc.detail}, exc.headers
    except Forbidden as exc:
        status, payload = 403, {"error": str(exc)}
    except ValidationError as exc:
        status, payload = 400, {"error": "invalid request", "fields": exc.messages}
    except TransitionRefused as exc:
        status, payload = 409, {"error": str(exc)}
    except LookupError as exc:
        status, payload = 404, {"error": str(exc).strip("'\"")}
    return Response(json.dumps(payload, ensure_ascii=False, default=str), status=status, headers=headers,
                    mimetype="application/json")
