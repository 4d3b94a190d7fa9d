"""A county's manifest: its grid tree, enabled departments, routing and deadline tables.

Pure data and parsing; `parse_tenant` returns the tenant and every (path, reason) problem.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

LEVELS = ("grid", "community", "street", "county")  # bottom to top: the escalation ladder
SEVERITIES = ("minor", "general", "major", "critical")
COMMAND_CENTRE = "governance"
TENANT_ID = re.compile(r"^[a-z][a-z0-9-]{2,40}$")
RESERVED_IDS = {"default"}  # the Redis ACL user of a tenant is named as the tenant
# limits: name -> (default, minimum value); integers but rate_per_department (events/s)
LIMITS = {
    "max_payload_bytes": 65536,       # one event; larger ones are quarantined as payload_too_large
    "max_batch": 500,                 # events in one HTTP batch
    "max_request_bytes": 4194304,     # one HTTP request body; larger ones are refused unread (413)
    "rate_per_department": 50,        # events/s a department may POST (token bucket), ...
    "burst_per_department": 500,      # ... with this many at once (at least max_batch)
    "max_connections": 512,           # AMQP connections to the tenant's vhost
    "max_queues": 128,                # queues in the tenant's vhost
    "max_connections_per_department": 16,  # AMQP connections of one department user
    "max_intake_backlog": 200000,     # messages waiting in intake.events; then publishes are refused
    "max_dead_letters": 100000,       # messages kept in each <queue>.dlq; then dead-lettering is refused
}
_CODE = {"county": r"[0-9]{6}", "street": r"[0-9]{3}", "community": r"[0-9]{3}", "grid": r"[0-9]{3}"}
_DURATION = re.compile(r"^([1-9][0-9]*)([smhd])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class GridNode:
    level: str
    code: str
    name: str
    parent: str | None


@dataclass(frozen=True)
class Rule:
    """A row of the routing or deadline table: matches a category and a severity."""
    categories: frozenset | None  # None: any
    severities: frozenset | None
    values: dict

    def matches(self, category: str, severity: str) -> bool:
        return ((self.categories is None or category in self.categories)
                and (self.severities is None or severity in self.severities))


@dataclass
class Tenant:
    id: str
    name: str
    name_zh: str
    departments: tuple[str, ...]
    nodes: dict[str, GridNode]
    routing: list[Rule]
    deadlines: list[Rule]
    max_payload_bytes: int = 65536
    max_batch: int = 500
    root: str = ""
    source: dict = field(default_factory=dict, repr=False)
    max_request_bytes: int = LIMITS["max_request_bytes"]
    rate_per_department: float = LIMITS["rate_per_department"]
    burst_per_department: int = LIMITS["burst_per_department"]
    max_connections: int = LIMITS["max_connections"]
    max_queues: int = LIMITS["max_queues"]
    max_connections_per_department: int = LIMITS["max_connections_per_department"]
    max_intake_backlog: int = LIMITS["max_intake_backlog"]
    max_dead_letters: int = LIMITS["max_dead_letters"]
    # accept events with no authenticated department (AMQP: no user_id of a department user;
    # HTTP: no bearer token) on the envelope's word: demo and test tenants only
    trust_unauthenticated_amqp: bool = False
    trust_unauthenticated_http: bool = False

    def trusts_unauthenticated(self, transport: str) -> bool:
        return self.trust_unauthenticated_http if transport == "http" else self.trust_unauthenticated_amqp

    def grids(self) -> list[GridNode]:
        return [n for n in self.nodes.values() if n.level == "grid"]

    def ancestor(self, code: str, level: str) -> GridNode:
        """The node at `level` above (or at) the node `code`."""
        node = self.nodes[code]
        while node.level != level:
            node = self.nodes[node.parent]
        return node


def parse_duration(text) -> int | None:
    match = _DURATION.match(text) if isinstance(text, str) else None
    return int(match[1]) * _SECONDS[match[2]] if match else None


def parse_tenant(doc, stem: str, categories: dict, departments: dict):
    problems: list[tuple[str, str]] = []
    if not isinstance(doc, dict):
        return None, [("$", "a tenant manifest is a map")]
    tid = doc.get("tenant")
    if not isinstance(tid, str) or not TENANT_ID.match(tid):
        problems.append(("tenant", "must match ^[a-z][a-z0-9-]{2,40}$"))
    elif tid in RESERVED_IDS:
        problems.append(("tenant", f"{tid!r} is reserved"))
    elif tid != stem:
        problems.append(("tenant", f"{tid!r} must equal the file name {stem!r}"))
    for key in ("name", "name_zh"):
        if not isinstance(doc.get(key), str):
            problems.append((key, "is required"))
    limits = _limits(doc.get("limits"), problems)
    for key in ("trust_unauthenticated_amqp", "trust_unauthenticated_http"):
        if not isinstance(doc.get(key, False), bool):
            problems.append((key, "must be true or false"))
    enabled = doc.get("departments")
    if not isinstance(enabled, list) or not enabled:
        problems.append(("departments", "must list the enabled department ids"))
        enabled = []
    for i, dept in enumerate(enabled):
        if dept not in departments:
            problems.append((f"departments[{i}]", f"unknown department {dept!r} (contracts/departments/)"))
    if COMMAND_CENTRE not in enabled:
        problems.append(("departments", f"{COMMAND_CENTRE!r}, the command centre, must be enabled"))
    nodes: dict[str, GridNode] = {}
    _walk(doc.get("grid_tree"), "grid_tree", None, 3, nodes, problems)
    routing = _rules(doc.get("routing"), "routing", categories, problems, _check_route(enabled))
    deadlines = _rules(doc.get("deadlines"), "deadlines", categories, problems, _check_deadline)
    if problems:
        return None, problems
    root = doc["grid_tree"]["code"]
    return Tenant(tid, doc["name"], doc["name_zh"], tuple(enabled), nodes, routing, deadlines,
                  limits.pop("max_payload_bytes"), limits.pop("max_batch"), root, doc, **limits,
                  trust_unauthenticated_amqp=doc.get("trust_unauthenticated_amqp", False),
                  trust_unauthenticated_http=doc.get("trust_unauthenticated_http", False)), []


def _limits(raw, problems: list) -> dict:
    """The manifest's limits over the defaults; every value checked."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        problems.append(("limits", "must be a map of limit name to value"))
        raw = {}
    values = dict(LIMITS)
    for key, value in raw.items():
        if key not in LIMITS:
            problems.append((f"limits.{key}", f"unknown limit; one of {', '.join(LIMITS)}"))
        elif key == "rate_per_department":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                problems.append((f"limits.{key}", "must be a positive number (events per second)"))
            else:
                values[key] = value
        elif not isinstance(value, int) or isinstance(value, bool) or value < 1:
            problems.append((f"limits.{key}", "must be a positive integer"))
        else:
            values[key] = value
    if values["burst_per_department"] < values["max_batch"]:
        problems.append(("limits.burst_per_department", f"{values['burst_per_department']} is less than max_batch "
                         f"{values['max_batch']}: a full batch could never pass"))
    if values["max_request_bytes"] < values["max_payload_bytes"]:
        problems.append(("limits.max_request_bytes", f"{values['max_request_bytes']} is less than max_payload_bytes "
                         f"{values['max_payload_bytes']}"))
    return values


def _walk(node, path, parent: GridNode | None, depth: int, nodes: dict, problems: list) -> None:
    level = LEVELS[depth]
    if not isinstance(node, dict):
        problems.append((path, f"a {level} node is a map with level, code and name"))
        return
    if node.get("level") != level:
        problems.append((f"{path}.level", f"expected {level!r}, got {node.get('level')!r}"))
        return
    code, name = node.get("code"), node.get("name")
    pattern = (re.escape(parent.code) + "-" if parent else "") + _CODE[level]
    if not isinstance(code, str) or not re.fullmatch(pattern, code):
        problems.append((f"{path}.code", f"{code!r} must be its parent's code followed by -NNN" if parent
                         else f"{code!r} must be the six-digit division code"))
        return
    if code in nodes:
        problems.append((f"{path}.code", f"{code} appears twice"))
    if not isinstance(name, str) or not name:
        problems.append((f"{path}.name", "is required"))
    nodes[code] = GridNode(level, code, name or "", parent.code if parent else None)
    children = node.get("children")
    if depth == 0:
        if children:
            problems.append((f"{path}.children", "a grid has no children"))
        return
    if not isinstance(children, list) or not children:
        problems.append((f"{path}.children", f"a {level} needs at least one {LEVELS[depth - 1]}"))
        return
    for i, child in enumerate(children):
        _walk(child, f"{path}.children[{i}]", nodes[code], depth - 1, nodes, problems)


def _rules(rows, path, categories, problems, check_values) -> list[Rule]:
    if not isinstance(rows, list) or not rows:
        problems.append((path, "must be a non-empty ordered list of rules"))
        return []
    rules = []
    for i, row in enumerate(rows):
        where = f"{path}[{i}]"
        if not isinstance(row, dict):
            problems.append((where, "a rule is a map"))
            continue
        cats = _selector(row.get("category"), categories, f"{where}.category", "category", problems)
        sevs = _selector(row.get("severity"), SEVERITIES, f"{where}.severity", "severity", problems)
        values = {k: v for k, v in row.items() if k not in ("category", "severity")}
        problems += [(f"{where}.{p}", r) for p, r in check_values(values)]
        rules.append(Rule(cats, sevs, values))
    return rules


def _selector(value, known, path, what, problems):
    if value == "*":
        return None
    values = value if isinstance(value, list) else [value]
    unknown = [v for v in values if v not in known]
    if not values or unknown:
        problems.append((path, f"unknown {what} {unknown or value!r}; use ids, a list of them, or '*'"))
    return frozenset(values)


def _check_route(enabled):
    def check(values: dict) -> list[tuple[str, str]]:
        problems = [(k, "unknown key; a route has level, departments, alternates") for k in values
                    if k not in ("level", "departments", "alternates")]
        if values.get("level") not in LEVELS:
            problems.append(("level", f"must be one of {', '.join(LEVELS)}"))
        depts = values.get("departments")
        if not isinstance(depts, list) or not depts:
            problems.append(("departments", "must list at least one department"))
            depts = []
        for key, listed in (("departments", depts), ("alternates", values.get("alternates") or [])):
            for d in listed:
                if d not in enabled:
                    problems.append((key, f"department {d!r} is not enabled for this tenant"))
        return problems
    return check


def _check_deadline(values: dict) -> list[tuple[str, str]]:
    problems = [(k, "unknown key; a deadline has acknowledge and resolve") for k in values
                if k not in ("acknowledge", "resolve")]
    for key in ("acknowledge", "resolve"):
        if parse_duration(values.get(key)) is None:
            problems.append((key, "must be a duration like 10m, 4h or 3d"))
    return problems
