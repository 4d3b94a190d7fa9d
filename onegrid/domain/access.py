"""Who may do what: a person (or a department's system) × an action × the resource's place.

One pure decision for every HTTP route (onegrid/catalogue.py names each route's action in
ROUTE_ACTIONS below; a route without one fails the tests). The roles are the county's
organisation (docs/DOMAIN.md): the command centre's operators act county-wide, street and
community officers in their subtree of the grid tree, a grid worker in their grid, department
staff on their department's work orders, supervisors/assessors read everything and adjust
points with a reason, auditors read (and read the audit), tenant admins operate the county,
a citizen reads their own cases (the reporter is them). docs/access.md is generated from this.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from onegrid.kernel.tenant import Tenant

OPERATOR = "operator"
STREET_OFFICER = "street_officer"
COMMUNITY_OFFICER = "community_officer"
GRID_WORKER = "grid_worker"
DEPARTMENT_STAFF = "department_staff"
SUPERVISOR = "supervisor"
AUDITOR = "auditor"
TENANT_ADMIN = "tenant_admin"
CITIZEN = "citizen"
ROLES = (
    OPERATOR,
    STREET_OFFICER,
    COMMUNITY_OFFICER,
    GRID_WORKER,
    DEPARTMENT_STAFF,
    SUPERVISOR,
    AUDITOR,
    TENANT_ADMIN,
    CITIZEN,
)
# the grid-tree level a scoped role's scope names; department staff's scope is a department id
SCOPE_LEVEL = {STREET_OFFICER: "street", COMMUNITY_OFFICER: "community", GRID_WORKER: "grid"}
MACHINE = "department_system"  # a department's system with its HTTP token, not a person
CLIENT = "open311_client"  # a client application of the Open311 door with its api_key (a citizens' app, 12345)
GATEWAY = "sms_gateway"  # the SMS gateway pushing received replies, with its HMAC signature (no token)
PUBLIC = "public"  # the action of a route anyone may call (the issuer's discovery and keys)

CASE_ID = re.compile(r"^c-[0-9a-f]{16}$")
WORK_ORDER_ID = re.compile(r"^w-[0-9a-f]{16}-[a-z][a-z0-9_]{1,40}$")

# the action of every HTTP route (catalogue "METHOD /url"); common routes (/health, /metrics,
# /openapi.json) are public
ROUTE_ACTIONS = {
    "POST /events": "events.publish",
    "GET /events/<path:event_id>": "receipts.read",  # intake: a department's receipt of its event
    "GET /quarantine": "quarantine.read",  # intake: a department's own quarantined events
    "GET /asyncapi.json": PUBLIC,  # the county's contracts, for department integrators
    "GET /asyncapi.yaml": PUBLIC,
    "GET /departments/<string:department>/work-orders": "work_orders.list",
    "POST /departments/<string:department>/work-orders/<string:work_order_id>/<string:action>": "work_order.act",
    "GET /cases/<string:case_id>": "case.read",
    "GET /cases": "cases.list",
    "GET /cases/<string:case_id>/timeline/verify": "timeline.verify",
    "POST /cases/<string:case_id>/whistle": "case.whistle",
    "POST /cases/<string:case_id>/check-in": "case.check_in",  # the grid worker on site
    "POST /cases/<string:case_id>/<string:action>": "case.act",
    "GET /duplicates": "duplicates.list",  # supervision: the command centre's duplicate suggestions
    "POST /cases/<string:case_id>/duplicate/<string:decision>": "case.duplicate",  # confirm, dismiss, unmerge
    "POST /work-orders/<string:work_order_id>/extension/<string:decision>": "extension.decide",
    "GET /escalations": "escalations.list",  # supervision: an office's escalation items (督办单)
    "POST /escalations/<string:item_id>/<string:decision>": "escalation.act",  # acknowledge, take_over, ...
    "GET /audit": "audit.read",
    "GET /.well-known/openid-configuration": PUBLIC,
    "GET /.well-known/jwks.json": PUBLIC,
    "GET /scoring/rankings": "scoring.read",
    "GET /scoring/assessment": "scoring.read",
    "GET /scoring/risk": "scoring.read",
    "GET /scoring/workers/<string:worker>": "scoring.worker",
    "GET /scoring/adjustments": "scoring.adjustments",
    "POST /scoring/adjustments": "scoring.adjust",
    "GET /reports/<string:month>": "reports.read",  # scoring: the monthly report (docs/reports.md)
    "GET /reports/<string:month>/<string:file>": "reports.read",  # ... as CSV, XLSX, the bulletin
    "GET /notify/stats": "notify.read",
    "GET /notify/parked": "notify.read",
    "GET /notify/replies": "notify.replies",  # the citizens' SMS replies, with their numbers: personal data
    "POST /notify/sms/replies": "sms.reply",  # the SMS gateway's push of a received reply (signed)
    # the Open311 door: reads are public as the spec has them (only the door's own requests,
    # no reporter data); a request takes a client application's api_key
    "GET /open311/v2/services.<string:fmt>": PUBLIC,
    "GET /open311/v2/services/<string:service_code>.<string:fmt>": PUBLIC,
    "GET /open311/v2/requests.<string:fmt>": PUBLIC,
    "GET /open311/v2/requests/<string:request_id>.<string:fmt>": PUBLIC,
    "GET /open311/v2/tokens/<string:token>.<string:fmt>": PUBLIC,
    "POST /open311/v2/requests.<string:fmt>": "open311.submit",
    "GET /contracts": "registry.read",  # registry: the county's contracts, for integrators
    "GET /contracts/<string:key>/versions/<int:version>": "registry.read",
    "GET /contracts/<string:key>/usage": "registry.read",
    "GET /manifest": "registry.read",
    "POST /validate": "registry.check",
    "POST /contracts/<string:key>/compatibility": "registry.check",
    "POST /whatif/manifest": "registry.whatif",
    "POST /contracts/<string:key>/versions": "registry.publish",
    "PUT /manifest": "registry.publish",
    "POST /contracts/<string:key>/versions/<int:version>/retire": "registry.retire",
    # console: the command-centre page; signing in, the language switch and its files are public
    "GET /console": PUBLIC,
    "GET /console/signin": PUBLIC,
    "POST /console/signin": PUBLIC,
    "POST /console/signout": PUBLIC,
    "GET /console/lang/<string:lang>": PUBLIC,
    "GET /console/static/<path:name>": PUBLIC,
    "GET /console/inbox": "console.inbox",
    "GET /console/inbox/trays": "console.inbox",
    "GET /console/map": "console.inbox",
    "GET /console/map/grids.geojson": "console.inbox",
    "GET /console/map/cases.json": "console.inbox",
    "GET /console/reports": "reports.read",
    "GET /console/reports/<string:month>/<string:file>": "reports.read",
    "GET /console/cases/<string:case_id>": "case.read",
    "POST /console/cases/<string:case_id>/whistle": "case.whistle",
    "POST /console/cases/<string:case_id>/take-over": "case.whistle",
    "POST /console/escalations/<string:item_id>/<string:decision>": "escalation.act",  # the office's item
    "POST /console/cases/<string:case_id>/act/<string:action>": "case.act",
    "POST /console/cases/<string:case_id>/evidence": "case.act",
    "POST /console/cases/<string:case_id>/duplicate/<string:decision>": "case.duplicate",  # confirm, dismiss, unmerge
    "GET /console/evidence/<string:case_id>/<string:name>": "case.read",
    "POST /console/work-orders/<string:work_order_id>/extension/<string:decision>": "extension.decide",
}

_READ_ALL = (OPERATOR, SUPERVISOR, AUDITOR, TENANT_ADMIN)
_SCOPED = (STREET_OFFICER, COMMUNITY_OFFICER, GRID_WORKER)
# who may do each action, and how the resource narrows it: "all" (anywhere in the county),
# "place" (the case's grid inside the principal's subtree), "department" (the principal's
# department is the route's or one of the case's), "reporter" (the citizen reported it),
# "self" (the worker named is the principal)
RULES: dict[str, dict[str, str]] = {
    "events.publish": {MACHINE: "department"},  # intake: department systems' tokens only
    "receipts.read": {MACHINE: "department"},  # ... each reads what it sent
    "quarantine.read": {MACHINE: "department"},
    "work_orders.list": {MACHINE: "department", DEPARTMENT_STAFF: "department", **dict.fromkeys(_READ_ALL, "all")},
    "work_order.act": {MACHINE: "department", DEPARTMENT_STAFF: "department"},
    "case.read": {
        **dict.fromkeys(_READ_ALL, "all"),
        **dict.fromkeys(_SCOPED, "place"),
        DEPARTMENT_STAFF: "department",
        CITIZEN: "reporter",
    },
    "cases.list": {**dict.fromkeys(_READ_ALL, "all"), **dict.fromkeys(_SCOPED, "place")},
    # the page's inbox and map: a scoped role's subtree, a department's staff their department's
    "console.inbox": {**dict.fromkeys(_READ_ALL, "all"), **dict.fromkeys(_SCOPED, "place"), DEPARTMENT_STAFF: "all"},
    "case.whistle": {OPERATOR: "all", STREET_OFFICER: "place", COMMUNITY_OFFICER: "place"},
    "case.act": {OPERATOR: "all", STREET_OFFICER: "place", COMMUNITY_OFFICER: "place", GRID_WORKER: "place"},
    "extension.decide": {OPERATOR: "all"},
    "case.check_in": {GRID_WORKER: "place"},  # their own grid's cases only
    # an office's escalation items: the unit's own officers (or those above it) and the command
    # centre; the place judged is the item's unit, so a community officer cannot take a street's
    "escalations.list": {
        **dict.fromkeys(_READ_ALL, "all"),
        STREET_OFFICER: "place",
        COMMUNITY_OFFICER: "place",
    },
    "escalation.act": {OPERATOR: "all", STREET_OFFICER: "place", COMMUNITY_OFFICER: "place"},
    # duplicates: the command centre decides (a merge moves work between cases county-wide)
    "duplicates.list": dict.fromkeys(_READ_ALL, "all"),
    "case.duplicate": {OPERATOR: "all"},
    "audit.read": {AUDITOR: "all"},
    "timeline.verify": dict.fromkeys((SUPERVISOR, AUDITOR), "all"),  # prove a case's record untouched
    "scoring.read": dict.fromkeys((*_READ_ALL, *_SCOPED, DEPARTMENT_STAFF), "all"),
    "scoring.worker": {**dict.fromkeys((*_READ_ALL, STREET_OFFICER, COMMUNITY_OFFICER), "all"), GRID_WORKER: "self"},
    "scoring.adjustments": dict.fromkeys((SUPERVISOR, AUDITOR, TENANT_ADMIN), "all"),
    "scoring.adjust": {SUPERVISOR: "all"},
    "notify.read": dict.fromkeys((OPERATOR, AUDITOR, TENANT_ADMIN), "all"),
    # the replies nobody's case took: the command centre calls the citizen back; auditors read
    "notify.replies": dict.fromkeys((OPERATOR, AUDITOR), "all"),
    "sms.reply": {GATEWAY: "all"},  # the signature is the credential: a person's token is none
    # the command centre, supervisors and auditors county-wide (or any part of it); a street or
    # community officer their own part of the tree (the report's scope is checked as a place)
    "reports.read": {
        **dict.fromkeys((OPERATOR, SUPERVISOR, AUDITOR), "all"),
        STREET_OFFICER: "place",
        COMMUNITY_OFFICER: "place",
    },
    "open311.submit": {CLIENT: "all"},  # the door checks the api_key; people's tokens are not keys
    # the registry: integrators (department systems and staff) and the command centre read the
    # contracts and check events and proposals; a tenant admin publishes and retires
    "registry.read": dict.fromkeys((MACHINE, DEPARTMENT_STAFF, *_READ_ALL), "all"),
    "registry.check": dict.fromkeys((MACHINE, DEPARTMENT_STAFF, *_READ_ALL), "all"),
    # a proposed manifest on the county's history: every department's work orders and every
    # grid worker's points, so those who plan the county's changes, not a department
    "registry.whatif": dict.fromkeys(_READ_ALL, "all"),
    "registry.publish": {TENANT_ADMIN: "all"},
    "registry.retire": {TENANT_ADMIN: "all"},
}
# actions only a department's system takes (intake checks its token, a person's JWT is not one)
MACHINES_ONLY = frozenset(a for a, who in RULES.items() if set(who) == {MACHINE})
# actions only an Open311 client application takes, with its api_key
CLIENTS_ONLY = frozenset(a for a, who in RULES.items() if set(who) == {CLIENT})
# actions only the SMS gateway takes, with its signature over the body
GATEWAYS_ONLY = frozenset(a for a, who in RULES.items() if set(who) == {GATEWAY})
# who sees a reporter's phone number unmasked: those who call the reporter back
SEES_PHONE = (OPERATOR, GRID_WORKER, DEPARTMENT_STAFF, CITIZEN, MACHINE)


@dataclass(frozen=True)
class Principal:
    subject: str
    role: str
    scope: str = ""  # a grid-tree node (street, community, grid) or a department id
    name: str = ""

    @property
    def person(self) -> bool:
        return self.role != MACHINE


@dataclass(frozen=True)
class Resource:
    grid: str = ""  # the case's grid
    departments: tuple[str, ...] = ()  # the route's department, or the case's work orders'
    reporter: str = ""  # the case's reporter id
    worker: str = ""  # the grid worker a scoring route names
    extra: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str


def decide(tenant: Tenant, who: Principal, action: str, resource: Resource | None = None) -> Decision:
    """Allow or refuse, with the reason (it goes into the audit and the 403's body)."""
    resource = resource or Resource()
    if action not in RULES:
        return Decision(False, f"no rule for action {action!r}")
    how = RULES[action].get(who.role)
    if how is None:
        return Decision(False, f"a {who.role} may not {action}")
    if how == "all":
        return Decision(True, f"a {who.role} may {action} county-wide")
    if how == "department":
        if who.scope and who.scope in resource.departments:
            return Decision(True, f"{who.scope} is a department of this resource")
        if who.role == MACHINE:
            return Decision(False, f"the token is {who.scope}'s; it cannot act for {', '.join(resource.departments)}")
        return Decision(False, f"{who.scope or 'no department'} is not a department of this resource")
    if how == "reporter":
        if resource.reporter and resource.reporter == who.subject:
            return Decision(True, "the citizen reported this case")
        return Decision(False, "a citizen reads only the cases they reported")
    if how == "self":
        if resource.worker and resource.worker == who.subject:
            return Decision(True, "a grid worker reads their own points")
        return Decision(False, "a grid worker reads only their own points")
    # "place": the case's grid inside the principal's subtree
    if resource.grid and within(tenant, resource.grid, who.scope):
        return Decision(True, f"{resource.grid} is inside {who.scope}")
    return Decision(False, f"{resource.grid or 'this resource'} is outside {who.role} scope {who.scope or '(none)'}")


def within(tenant: Tenant, node: str, scope: str) -> bool:
    """Is grid-tree `node` at or below `scope`?"""
    seen = 0
    while node and seen < 10:
        if node == scope:
            return True
        parent = tenant.nodes.get(node)
        node = parent.parent if parent is not None and parent.parent else ""
        seen += 1
    return False


def check_scope(tenant: Tenant, role: str, scope: str) -> str | None:
    """Why a person's role and scope do not fit the county (None when they do)."""
    if role not in ROLES:
        return f"unknown role {role!r}; one of {', '.join(ROLES)}"
    if role in SCOPE_LEVEL:
        node = tenant.nodes.get(scope)
        if node is None or node.level != SCOPE_LEVEL[role]:
            return f"a {role} needs a scope: a {SCOPE_LEVEL[role]} of the grid tree (got {scope!r})"
    elif role == DEPARTMENT_STAFF:
        if scope not in tenant.departments:
            return f"department staff need a scope: one of the county's departments (got {scope!r})"
    elif scope:
        return f"a {role} has no scope (got {scope!r})"
    return None


def check_case_id(case_id: str) -> str:
    """The id, or LookupError (a 404) when it cannot be a case's: never a key built from junk."""
    if not CASE_ID.match(case_id):
        raise LookupError(f"no case {case_id[:80]}: a case id is c- and 16 hex digits")
    return case_id


def check_work_order_id(work_order_id: str) -> str:
    if not WORK_ORDER_ID.match(work_order_id):
        raise LookupError(f"no work order {work_order_id[:80]}: a work order id is w-<16 hex digits>-<department>")
    return work_order_id


def mask_phone(phone: str) -> str:
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 7 else "****"


def redact(who: Principal, case: dict) -> dict:
    """A case as `who` may see it: the reporter's phone masked unless they call reporters back."""
    reporter = case.get("reporter")
    if who.role in SEES_PHONE or not isinstance(reporter, dict) or not reporter.get("phone"):
        return case
    return {**case, "reporter": {**reporter, "phone": mask_phone(str(reporter["phone"]))}}


def redact_reply(who: Principal, reply: dict) -> dict:
    """A citizen's SMS reply as `who` may see it: the sender's number masked as `redact` masks a
    reporter's phone."""
    if who.role in SEES_PHONE:
        return reply
    return {**reply, "from": mask_phone(str(reply.get("from", "")))}


def has_personal_data(case: dict) -> bool:
    reporter = case.get("reporter")
    return isinstance(reporter, dict) and bool(reporter.get("phone") or reporter.get("name"))


def case_resource(case: dict) -> Resource:
    raw = case.get("reporter")
    reporter: dict = raw if isinstance(raw, dict) else {}
    departments = tuple(wo.get("department", "") for wo in case.get("work_orders") or () if isinstance(wo, dict))
    return Resource(
        grid=str(case.get("grid") or ""),
        departments=departments or ((case["department"],) if case.get("department") else ()),
        reporter=str(reporter.get("id") or ""),
    )
