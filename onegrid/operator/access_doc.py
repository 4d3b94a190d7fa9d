"""docs/access.md: the role × route table, generated from the catalogue and the access policy
(`python -m onegrid.operator.access_doc docs/access.md`; a unit test keeps it current)."""

from __future__ import annotations

import sys

from onegrid import catalogue
from onegrid.domain.access import CLIENT, GATEWAY, MACHINE, PUBLIC, ROLES, ROUTE_ACTIONS, RULES

_HOW = {"all": "✓", "place": "in scope", "department": "own dept", "reporter": "own case", "self": "self"}

HEADER = """# Who may call what

Generated from `onegrid/catalogue.py` (the routes) and `onegrid/domain/access.py` (the policy) by
`python -m onegrid.operator.access_doc docs/access.md`; `tests/unit/test_access.py` fails when
this file is not current. Every route takes `Authorization: Bearer <token>`: a person's JWT (the
county's identity provider, or OneGrid's embedded issuer: docs/onboarding.md), or, where the
table says so, a department system's token. No token, or a bad one: 401. A role that may not: 403.
The Open311 door (docs/open311.md) is the exception the GeoReport v2 spec makes: its reads are
public, and a request takes a client application's `api_key` (the form field, or the Bearer
token; `onegrid open311 add-client`): none 401, a bad or revoked one 403.
The SMS gateway's push of received replies (`POST /notify/sms/replies`, docs/notify.md) is a
machine like a department's system, but its credential is an HMAC signature over the timestamp
and the body with the county's shared secret, not a token: unsigned, stale or badly signed 401.

✓ county-wide · *in scope*: the case's grid is inside the person's street, community or grid ·
*own dept*: the route's department, or one of the case's work orders' · *own case*: the citizen
is the case's reporter · *self*: the grid worker's own points · — refused (403).
Phone numbers are masked (138****5678) for roles that do not call reporters back: street and
community officers, supervisors, auditors, tenant admins.

"""


def render() -> str:
    cols = (*ROLES, MACHINE, CLIENT, GATEWAY)
    lines = [
        "| service | route | action | " + " | ".join(c.replace("_", " ") for c in cols) + " |",
        "| --- | --- | --- | " + " | ".join("---" for _ in cols) + " |",
    ]
    for svc in catalogue.services():
        for route in svc.routes:
            action = ROUTE_ACTIONS.get(route, "(none: refused)")
            if action == PUBLIC:
                cells = ["public"] * len(cols)
            else:
                rule = RULES.get(action, {})
                cells = [_HOW[rule[c]] if c in rule else "—" for c in cols]
            lines.append(f"| {svc.name} | `{route}` | {action} | " + " | ".join(cells) + " |")
    return HEADER + "\n".join(lines) + "\n"


if __name__ == "__main__":
    out = render()
    if len(sys.argv) > 1:
        with open(sys.argv[1], "w", encoding="utf-8") as f:
            f.write(out)
    else:
        sys.stdout.write(out)
