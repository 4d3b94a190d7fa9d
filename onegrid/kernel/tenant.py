"""A county's manifest: its grid tree, enabled departments, routing and deadline tables.

Pure data and parsing; `parse_tenant` returns the tenant and every (path, reason) problem.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from onegrid.kernel.spans import Span, parse_span, span_problem
from onegrid.kernel.spans import parse_duration as parse_duration  # its home is spans; kept importable here

if TYPE_CHECKING:
    from onegrid.kernel.geography import Geography

# bottom to top: the default escalation ladder (a manifest may declare its own, `ladder:`)
LEVELS = ("grid", "community", "street", "county")
SEVERITIES = ("minor", "general", "major", "critical")
COMMAND_CENTRE = "governance"
TENANT_ID = re.compile(r"^[a-z][a-z0-9-]{2,40}$")
RESERVED_IDS = {"default"}  # the Redis ACL user of a tenant is named as the tenant
# limits: name -> (default, minimum value); integers but rate_per_department (events/s)
LIMITS = {
    "max_payload_bytes": 65536,  # one event; larger ones are quarantined as payload_too_large
    "max_batch": 500,  # events in one HTTP batch
    "max_request_bytes": 4194304,  # one HTTP request body; larger ones are refused unread (413)
    "rate_per_department": 50,  # events/s a department may POST (token bucket), ...
    "burst_per_department": 500,  # ... with this many at once (at least max_batch)
    "max_connections": 512,  # AMQP connections to the tenant's vhost
    "max_queues": 128,  # queues in the tenant's vhost
    "max_connections_per_department": 16,  # AMQP connections of one department user
    "max_intake_backlog": 200000,  # messages waiting in intake.events; then publishes are refused
    "max_dead_letters": 100000,  # messages kept in each <queue>.dlq; then dead-lettering is refused
    # each history stream (history.intake, history.lifecycle) keeps this many days, and at most
    # this many bytes (the oldest segments go first): what `onegrid history` and what-if read
    "history_max_age_days": 400,
    "history_max_bytes": 20 * 1024**3,
}
_CODE = {"county": r"[0-9]{6}", "street": r"[0-9]{3}", "community": r"[0-9]{3}", "grid": r"[0-9]{3}"}
LEVEL_NAME = re.compile(r"^[a-z][a-z0-9_]{1,30}$")


@dataclass(frozen=True)
class GridNode:
    level: str
    code: str
    name: str
    parent: str | None
    # a dedicated grid (a school's, a hospital's, a market's) hangs beside the tree under a
    # higher level than the one just above grids; the levels it skips have no office for it
    dedicated: bool = False


@dataclass(frozen=True)
class Rung:
    """One level of a tenant's ladder: its code segment, the office that takes charge there,
    and how long that office has to acknowledge an escalation (`acknowledge`) and then to act
    on it (`act`) before the case goes up again: spans in clock time, working hours or working
    days (onegrid.kernel.spans; found on the tenant's calendar by onegrid.domain.calendar)."""

    level: str
    code: str  # the regular expression of this level's own code segment
    office: str  # who takes charge: 社区居委会, 街道办, 区综治中心, 市指挥中心 ...
    acknowledge: Span
    act: Span


# today's four rungs, what a manifest without `ladder:` gets
DEFAULT_LADDER = (
    Rung("grid", _CODE["grid"], "网格员", Span(30, "m"), Span(4, "h")),
    Rung("community", _CODE["community"], "社区居委会", Span(2, "h"), Span(1, "d")),
    Rung("street", _CODE["street"], "街道办", Span(2, "h"), Span(1, "d")),
    Rung("county", _CODE["county"], "县网格化服务管理中心", Span(4, "h"), Span(2, "d")),
)


@dataclass(frozen=True)
class Rule:
    """A row of the routing or deadline table: matches a category and a severity."""

    categories: frozenset | None  # None: any
    severities: frozenset | None
    values: dict

    def matches(self, category: str, severity: str) -> bool:
        return (self.categories is None or category in self.categories) and (
            self.severities is None or severity in self.severities
        )


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
    history_max_age_days: int = LIMITS["history_max_age_days"]
    history_max_bytes: int = LIMITS["history_max_bytes"]
    # accept events with no authenticated department (AMQP: no user_id of a department user;
    # HTTP: no bearer token) on the envelope's word: demo and test tenants only
    trust_unauthenticated_amqp: bool = False
    # only intake's POST /events (machines' events); people's routes always take a token
    trust_unauthenticated_http: bool = False
    # people's bearer tokens: the county's OIDC provider, or None for OneGrid's embedded issuer
    identity: IdentityProvider | None = None
    # boundaries and offices (onegrid.kernel.geography), from the manifest's `geography.file`;
    # None: the county has drawn none, and every event must name its grid
    geography: Geography | None = field(default=None, repr=False)
    # the escalation ladder, bottom (grids) to top (the root's level)
    ladder: tuple[Rung, ...] = DEFAULT_LADDER

    @property
    def levels(self) -> tuple[str, ...]:
        return tuple(r.level for r in self.ladder)

    @property
    def top(self) -> str:
        """The root's level (the county in the default ladder, the city in Taiyuan's)."""
        return self.ladder[-1].level

    def rung(self, level: str) -> Rung:
        for r in self.ladder:
            if r.level == level:
                return r
        raise KeyError(f"{self.id}: no level {level!r}; one of {', '.join(self.levels)}")

    def is_level(self, level: object) -> bool:
        return isinstance(level, str) and level in self.levels

    def is_higher(self, level: str, than: str) -> bool:
        return self.levels.index(level) > self.levels.index(than)

    def next_level(self, level: str, grid: str | None = None) -> str | None:
        """One rung up from `level`; None at the top. With `grid`, the next level that has a
        unit above that grid (a dedicated grid under a street skips the community)."""
        above = self.levels[self.levels.index(level) + 1 :]
        if grid is not None and grid in self.nodes:
            on_path = {n.level for n in self.path(grid)}
            above = tuple(lv for lv in above if lv in on_path)
        return above[0] if above else None

    def path(self, code: str) -> list[GridNode]:
        """The node `code` and every node above it, bottom to top."""
        out = [self.nodes[code]]
        while out[-1].parent is not None:
            out.append(self.nodes[out[-1].parent])
        return out

    def trusts_unauthenticated(self, transport: str) -> bool:
        return self.trust_unauthenticated_http if transport == "http" else self.trust_unauthenticated_amqp

    def grids(self) -> list[GridNode]:
        return [n for n in self.nodes.values() if n.level == self.levels[0]]

    def ancestor_or_none(self, code: str, level: str) -> GridNode | None:
        """As `ancestor`, None where the node has no unit at `level` (a dedicated grid)."""
        try:
            return self.ancestor(code, level)
        except KeyError:
            return None

    def ancestor(self, code: str, level: str) -> GridNode:
        """The node at `level` above (or at) the node `code`."""
        node = self.nodes[code]
        while node.level != level:
            if node.parent is None:  # passed the root: `level` is not above this node
                raise KeyError(f"no {level} node above {code}")
            node = self.nodes[node.parent]
        return node


@dataclass(frozen=True)
class IdentityProvider:
    """A county's own OIDC provider: tokens from `issuer` for `audience`, keys at `jwks_url`;
    the person's role and scope are in the `role_claim` and `scope_claim` claims."""

    issuer: str
    audience: str
    jwks_url: str
    role_claim: str = "onegrid_role"
    scope_claim: str = "onegrid_scope"


def _safe_key_url(url: str) -> bool:
    """https anywhere; plain http only to this machine's loopback (a provider beside the
    services, and the tests' own), judged on the parsed host so `http://127.0.0.1.evil.example`
    or `http://localhost@evil.example` does not pass."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return False
    if parts.scheme == "https":
        return bool(host)
    if parts.scheme != "http":
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _identity(raw, problems: list) -> IdentityProvider | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.append(
            ("identity", "must be a map: issuer, audience, jwks_url (or leave it out: the embedded issuer)")
        )
        return None
    unknown = set(raw) - {"issuer", "audience", "jwks_url", "role_claim", "scope_claim"}
    for key in sorted(unknown):
        problems.append((f"identity.{key}", "unknown key; issuer, audience, jwks_url, role_claim, scope_claim"))
    for key in ("issuer", "audience", "jwks_url"):
        if not isinstance(raw.get(key), str) or not raw.get(key):
            problems.append((f"identity.{key}", "is required, a non-empty string"))
    url = raw.get("jwks_url")
    if isinstance(url, str) and url and not _safe_key_url(url):
        why = "must be an https:// URL (keys fetched in clear could be swapped), or http:// on loopback"
        problems.append(("identity.jwks_url", why))
    for key in ("role_claim", "scope_claim"):
        if key in raw and (not isinstance(raw[key], str) or not raw[key]):
            problems.append((f"identity.{key}", "must be a claim name"))
    if unknown or any(p[0].startswith("identity") for p in problems):
        return None
    return IdentityProvider(**raw)


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
    identity = _identity(doc.get("identity"), problems)
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
    ladder = _ladder(doc.get("ladder"), problems)
    nodes: dict[str, GridNode] = {}
    if ladder:
        _walk(doc.get("grid_tree"), "grid_tree", None, len(ladder) - 1, ladder, nodes, problems)
    levels = tuple(r.level for r in ladder)
    routing = _rules(doc.get("routing"), "routing", categories, problems, _check_route(enabled, levels))
    deadlines = _rules(doc.get("deadlines"), "deadlines", categories, problems, _check_deadline)
    if problems:
        return None, problems
    root = doc["grid_tree"]["code"]
    return Tenant(
        doc["tenant"],
        doc["name"],
        doc["name_zh"],
        tuple(enabled),
        nodes,
        routing,
        deadlines,
        limits.pop("max_payload_bytes"),
        limits.pop("max_batch"),
        root,
        doc,
        **limits,
        trust_unauthenticated_amqp=doc.get("trust_unauthenticated_amqp", False),
        trust_unauthenticated_http=doc.get("trust_unauthenticated_http", False),
        identity=identity,
        ladder=ladder,
    ), []


def _limits(raw, problems: list) -> dict:
    """The manifest's limits over the defaults; every value checked."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        problems.append(("limits", "must be a map of limit name to value"))
        raw = {}
    values: dict[str, int | float] = dict(LIMITS)
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
        problems.append(
            (
                "limits.burst_per_department",
                f"{values['burst_per_department']} is less than max_batch "
                f"{values['max_batch']}: a full batch could never pass",
            )
        )
    if values["max_request_bytes"] < values["max_payload_bytes"]:
        problems.append(
            (
                "limits.max_request_bytes",
                f"{values['max_request_bytes']} is less than max_payload_bytes {values['max_payload_bytes']}",
            )
        )
    return values


def _ladder(raw, problems: list) -> tuple[Rung, ...]:
    """The manifest's `ladder:` (bottom to top), or the default four rungs; () if it is bad."""
    if raw is None:
        return DEFAULT_LADDER
    if not isinstance(raw, list) or len(raw) < 2:
        problems.append(("ladder", "must list at least two levels, bottom (grid) to top (the root's level)"))
        return ()
    rungs: list[Rung] = []
    bad = False
    for i, row in enumerate(raw):
        where = f"ladder[{i}]"
        if not isinstance(row, dict):
            problems.append((where, "a rung is a map: level, code, office, acknowledge, act"))
            bad = True
            continue
        for key in sorted(set(row) - {"level", "code", "office", "acknowledge", "act"}):
            problems.append((f"{where}.{key}", "unknown key; level, code, office, acknowledge, act"))
            bad = True
        level, code, office = row.get("level"), row.get("code"), row.get("office")
        if not isinstance(level, str) or not LEVEL_NAME.match(level):
            problems.append((f"{where}.level", "must be a level name like street (^[a-z][a-z0-9_]{1,30}$)"))
            bad = True
        elif any(r.level == level for r in rungs):
            problems.append((f"{where}.level", f"{level!r} appears twice"))
            bad = True
        if i == 0 and level != "grid":
            problems.append((f"{where}.level", "the bottom rung must be grid (where reports are placed)"))
            bad = True
        if not isinstance(code, str) or not _regex(code):
            problems.append(
                (f"{where}.code", "must be the regular expression of the level's code segment, e.g. [0-9]{3}")
            )
            bad = True
        elif any(re.fullmatch(code, probe) for probe in ("-", "0-0", "00-00", "000-000", "A-A")):
            problems.append((f"{where}.code", "must not match '-' (it joins a code to its parent's)"))
            bad = True
        if not isinstance(office, str) or not office:
            problems.append((f"{where}.office", "is required: the office that takes charge at this level"))
            bad = True
        spans = {}
        for key in ("acknowledge", "act"):
            spans[key] = parse_span(row.get(key))
            if spans[key] is None:
                problems.append((f"{where}.{key}", span_problem(row.get(key)) or "must be a duration"))
                bad = True
        ack, act = spans["acknowledge"], spans["act"]
        if not bad and ack is not None and act is not None:
            rungs.append(Rung(str(level), str(code), str(office), ack, act))
    return () if bad else tuple(rungs)


def _regex(text: str) -> bool:
    try:
        re.compile(text)
    except re.error:
        return False
    return bool(text)


@functools.lru_cache(maxsize=64)
def _segment(pattern: str) -> re.Pattern:
    return re.compile("(?:" + pattern + ")")


def _walk(
    node, path, parent: GridNode | None, depth: int, ladder: tuple[Rung, ...], nodes: dict, problems: list
) -> None:
    """Check the node at `path`, expected at `ladder[depth]` (a grid marked `dedicated` may
    hang under any level above grids), and its children."""
    level = ladder[depth].level
    if not isinstance(node, dict):
        problems.append((path, f"a {level} node is a map with level, code and name"))
        return
    dedicated = node.get("dedicated", False)
    if not isinstance(dedicated, bool):
        problems.append((f"{path}.dedicated", "must be true or false"))
        return
    if dedicated and parent is not None and node.get("level") == ladder[0].level:
        depth, level = 0, ladder[0].level  # beside the tree, under `parent`
    elif dedicated:
        problems.append((f"{path}.dedicated", f"only a {ladder[0].level} may be dedicated"))
        return
    if node.get("level") != level:
        beside = node.get("level") == ladder[0].level and depth > 0
        why = f" (a {ladder[0].level} under a {parent.level if parent else level} is marked dedicated: true)"
        problems.append((f"{path}.level", f"expected {level!r}, got {node.get('level')!r}" + (why if beside else "")))
        return
    code, name = node.get("code"), node.get("name")
    # the parent's code, '-', then the level's own segment: compiled once per rung (re's cache
    # holds 512 patterns, and a pattern per parent would recompile at Taiyuan's 11,000 nodes)
    prefix = parent.code + "-" if parent else ""
    segment = _segment(ladder[depth].code)
    if not isinstance(code, str) or not code.startswith(prefix) or not segment.fullmatch(code, len(prefix)):
        problems.append(
            (
                f"{path}.code",
                f"{code!r} must be its parent's code followed by -{ladder[depth].code}"
                if parent
                else f"{code!r} must be the {level}'s code, {ladder[depth].code} (the six-digit division code)"
                if ladder[depth].code == _CODE["county"]
                else f"{code!r} must be the {level}'s code, {ladder[depth].code}",
            )
        )
        return
    if code in nodes:
        problems.append((f"{path}.code", f"{code} appears twice"))
    if not isinstance(name, str) or not name:
        problems.append((f"{path}.name", "is required"))
    nodes[code] = GridNode(level, code, name or "", parent.code if parent else None, dedicated)
    children = node.get("children")
    if depth == 0:
        if children:
            problems.append((f"{path}.children", f"a {level} has no children"))
        return
    if not isinstance(children, list) or not children:
        problems.append((f"{path}.children", f"a {level} needs at least one {ladder[depth - 1].level}"))
        return
    for i, child in enumerate(children):
        _walk(child, f"{path}.children[{i}]", nodes[code], depth - 1, ladder, nodes, problems)


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


def _check_route(enabled, levels: tuple[str, ...]):
    def check(values: dict) -> list[tuple[str, str]]:
        problems = [
            (k, "unknown key; a route has level, departments, alternates")
            for k in values
            if k not in ("level", "departments", "alternates")
        ]
        if values.get("level") not in levels:
            problems.append(("level", f"must be one of the ladder's levels {', '.join(levels)}"))
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
    problems = [
        (k, "unknown key; a deadline has acknowledge and resolve")
        for k in values
        if k not in ("acknowledge", "resolve")
    ]
    for key in ("acknowledge", "resolve"):  # clock time, working hours or working days
        if (why := span_problem(values.get(key))) is not None:
            problems.append((key, why))
    return problems
