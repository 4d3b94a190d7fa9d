"""Notify: which messages a lifecycle event calls for (件件有回音), their text, and when to
try again. Pure: the clock and the random source are arguments; sending is in
onegrid/adapters/notify_channels.py, the outbox in onegrid/adapters/notifications.py.
"""
from __future__ import annotations

import hashlib
import random
import re
import string
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from onegrid.domain.scoring import Event, epoch

CHANNELS = ("webhook", "email", "sms")
ROLES = ("reporter", "grid_worker", "department", "leader")
KINDS = {  # kind -> e-mail subject
    "receipt": "受理回执", "merged": "合并办理告知", "dispatch": "派单通知", "overdue": "超期督办",
    "overdue_leader": "超期督办抄送", "resolution": "办理结果告知", "satisfaction": "满意度回访",
    "closed": "办结告知", "rejected": "不予受理告知"}
TEMPLATES = {
    "receipt": "【{tenant_name}】您反映的“{summary}”已受理，编号 {case_id}。我们将尽快处理，结果会及时告知您。",
    "merged": "【{tenant_name}】您反映的“{summary}”与已受理的事项（编号 {primary_id}）为同一问题，已合并办理，结果将一并告知您。",
    "dispatch": "【{tenant_name}】新派单 {case_id}：{category_name}（{severity_name}），{grid_name}：{summary}。"
                "请于 {ack_due} 前签收，{resolve_due} 前办结。",
    "overdue": "【督办】{case_id}（{category_name}，{grid_name}）{reason_name}，请立即处理：{summary}",
    "overdue_leader": "【督办抄送】{unit_name}承办的 {case_id}（{category_name}，{grid_name}）{reason_name}：{summary}",
    "resolution": "【{tenant_name}】您反映的“{summary}”已处理完毕，并经网格员现场核实。{note}",
    "satisfaction": "【{tenant_name}】请对“{summary}”（编号 {case_id}）的处理结果评价：回复 1 满意，2 不满意。",
    "closed": "【{tenant_name}】您反映的“{summary}”（编号 {case_id}）已办结：{outcome_name}。{note}",
    "rejected": "【{tenant_name}】您反映的“{summary}”（编号 {case_id}）经核查不属于平台受理范围。{note}",
}
FIELDS = {"tenant_name", "case_id", "summary", "category_name", "severity_name", "grid", "grid_name",
          "community_name", "unit_name", "level_name", "reason_name", "outcome_name", "primary_id", "note",
          "ack_due", "resolve_due", "recipient_name"}
ROUTES = {"reporter": ("sms", "webhook"), "grid_worker": ("webhook",), "department": ("webhook", "email"),
          "leader": ("email", "webhook")}
SEVERITY_ZH = {"minor": "琐事", "general": "一般", "major": "重大", "critical": "紧急"}
LEVEL_ZH = {"grid": "网格", "community": "社区", "street": "街道", "county": "县区"}
REASON_ZH = {"overdue_acknowledge": "超时未签收", "overdue_resolve": "超时未办结"}
OUTCOME_ZH = {"fixed": "问题已解决", "not_fixed": "问题未能解决，已终结"}
_CHANNEL_KEYS = {"webhook": {"enabled", "url", "secret_env", "timeout_s"},
                 "email": {"enabled", "host", "port", "sender", "starttls", "username_env", "password_env",
                           "timeout_s"},
                 "sms": {"enabled", "url", "account", "token_env", "timeout_s"}}
_SECTION = {"timezone", "templates", "channels", "routes", "contacts", "delivery", "rate_limit"}
DELIVERY = {"max_attempts": 5, "base_delay_s": 2.0, "max_delay_s": 300.0, "jitter": 0.5, "retention_days": 30,
            "concurrency": 20}
RATE_LIMIT = {"per_recipient": 30, "window_s": 60.0}
_OFFSET = re.compile(r"^([+-])([01][0-9]|2[0-3]):([0-5][0-9])$")


@dataclass(frozen=True)
class Config:
    tz: timezone
    templates: dict
    channels: dict  # enabled channel -> its settings
    routes: dict
    contacts: dict
    delivery: dict
    rate_limit: dict


def template_fields(template: str) -> list[str]:
    """The placeholders of a template; ValueError for anything but plain {name}s."""
    names = []
    for _, name, spec, conv in string.Formatter().parse(template):
        if name is None:
            continue
        if not name.isidentifier() or spec or conv:
            raise ValueError(f"placeholder {{{name}}} must be a plain {{name}}")
        names.append(name)
    return names


def check_manifest(doc: dict) -> list[tuple[str, str]]:
    """Every (path, reason) problem in a manifest's `notify:` section (absent: defaults)."""
    sec = (doc or {}).get("notify")
    if sec is None:
        return []
    if not isinstance(sec, dict):
        return [("notify", "must be a map")]
    problems = [(f"notify.{k}", f"unknown key; one of {', '.join(sorted(_SECTION))}") for k in sec if k not in _SECTION]
    if "timezone" in sec and not (isinstance(sec["timezone"], str) and _OFFSET.match(sec["timezone"])):
        problems.append(("notify.timezone", "must be a UTC offset like +08:00"))
    for kind, text in (sec.get("templates") or {}).items():
        where = f"notify.templates.{kind}"
        if kind not in KINDS:
            problems.append((where, f"unknown kind; one of {', '.join(KINDS)}"))
            continue
        try:
            unknown = sorted(set(template_fields(text)) - FIELDS) if isinstance(text, str) and text else ["(empty)"]
        except ValueError as exc:
            problems.append((where, str(exc)))
            continue
        if unknown:
            problems.append((where, f"unknown placeholders {unknown}; known: {', '.join(sorted(FIELDS))}"))
    for name, ch in (sec.get("channels") or {}).items():
        where = f"notify.channels.{name}"
        if name not in CHANNELS or not isinstance(ch, dict):
            problems.append((where, f"a channel is one of {', '.join(CHANNELS)}, with a map of settings"))
            continue
        problems += [(f"{where}.{k}", "unknown setting") for k in ch if k not in _CHANNEL_KEYS[name]]
        if ch.get("enabled", True):
            required = {"webhook": ("url", "secret_env"), "email": ("host", "port", "sender"), "sms": ("url",)}[name]
            problems += [(f"{where}.{k}", "is required") for k in required if not ch.get(k)]
            if name != "email" and ch.get("url") and not str(ch["url"]).startswith(("http://", "https://")):
                problems.append((f"{where}.url", "must be an http(s) URL"))
    for role, channels in (sec.get("routes") or {}).items():
        if role not in ROLES or not isinstance(channels, list) or set(channels) - set(CHANNELS):
            problems.append((f"notify.routes.{role}", f"a role ({', '.join(ROLES)}) with a list of channels"))
    for key, value in (sec.get("contacts") or {}).items():
        if key not in ("department_email", "leader_email", "community_leader_email", "emails"):
            problems.append((f"notify.contacts.{key}", "unknown contact setting"))
    for key, value in (sec.get("delivery") or {}).items():
        at_least_one = key in ("max_attempts", "concurrency")
        if key not in DELIVERY or not _num(value) or value < 0 or (at_least_one and value < 1):
            problems.append((f"notify.delivery.{key}", f"one of {', '.join(DELIVERY)}, a number (attempts >= 1)"))
    jitter = (sec.get("delivery") or {}).get("jitter", 0)
    if _num(jitter) and jitter > 1:
        problems.append(("notify.delivery.jitter", "a fraction between 0 and 1"))
    for key, value in (sec.get("rate_limit") or {}).items():
        if key not in RATE_LIMIT or not _num(value) or value <= 0:
            problems.append((f"notify.rate_limit.{key}", "per_recipient or window_s, a number > 0"))
    return problems


def parse_config(doc: dict) -> Config:
    problems = check_manifest(doc)
    if problems:
        raise ValueError("; ".join(f"{p}: {r}" for p, r in problems))
    sec = (doc or {}).get("notify") or {}
    sign, hh, mm = _OFFSET.match(sec.get("timezone", "+08:00")).groups()
    tz = timezone(timedelta(hours=int(hh), minutes=int(mm)) * (-1 if sign == "-" else 1))
    channels = {k: v for k, v in (sec.get("channels") or {}).items() if v.get("enabled", True)}
    routes = {**ROUTES, **{r: tuple(c) for r, c in (sec.get("routes") or {}).items()}}
    return Config(tz, {**TEMPLATES, **(sec.get("templates") or {})}, channels, routes, dict(sec.get("contacts") or {}),
                  {**DELIVERY, **(sec.get("delivery") or {})}, {**RATE_LIMIT, **(sec.get("rate_limit") or {})})


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# -- which notifications an event calls for ------------------------------------------------
@dataclass(frozen=True)
class Recipient:
    role: str
    id: str
    name: str = ""
    phone: str | None = None
    unit: str = ""  # the department or grid whose email/leader it is


@dataclass(frozen=True)
class Notification:
    key: str  # idempotency key: ce-id + kind + recipient + channel
    kind: str
    channel: str
    recipient: Recipient
    address: str
    subject: str
    text: str
    case_id: str
    event_id: str
    event_type: str


@dataclass
class Names:
    """What the templates call things: from the registry and the tenant's grid tree."""
    tenant_name: str = ""
    categories: dict = field(default_factory=dict)
    departments: dict = field(default_factory=dict)
    nodes: dict = field(default_factory=dict)  # code -> (name, parent code)


def plan(event: Event, cfg: Config, names: Names) -> list[Notification]:
    d = event.data
    reporter = d.get("reporter") or {}
    to_reporter = Recipient("reporter", str(reporter.get("id", "")), reporter.get("kind", ""), reporter.get("phone"))
    wo = d.get("work_order") or {}
    wanted: list[tuple[str, Recipient, dict]] = []
    if event.type == "case.registered":
        wanted = [("receipt", to_reporter, wo)]
    elif event.type == "case.merged":
        wanted = [("merged", to_reporter, wo)]
    elif event.type == "case.dispatched":
        parts = d.get("work_orders") or ([wo] if wo else [])
        wanted = [("dispatch", _handler(w, d, names), w) for w in parts
                  if w.get("status", "dispatched") == "dispatched"]
    elif event.type == "case.supervised":
        open_parts = ("dispatched", "accepted", "extension_requested")
        parts = [wo] if wo else [w for w in d.get("work_orders") or [] if w.get("status") in open_parts]
        for w in parts or [{"department": "governance", "level": d.get("level")}]:
            handler = _handler(w, d, names)
            wanted += [("overdue", handler, {**w, "_unit": handler.unit}),
                       ("overdue_leader", _leader(handler, d, names), {**w, "_unit": handler.unit})]
    elif event.type == "case.verified":
        wanted = [("resolution", to_reporter, wo), ("satisfaction", to_reporter, wo)]
    elif event.type == "case.closed" and d.get("outcome") == "not_fixed":
        wanted = [("closed", to_reporter, wo)]
    elif event.type == "case.rejected":
        wanted = [("rejected", to_reporter, wo)]
    out, seen = [], set()
    for kind, rcpt, part in wanted:
        if rcpt.role == "reporter" and not rcpt.id:
            continue
        values = _values(d, part, rcpt, names, cfg)
        for channel in cfg.routes.get(rcpt.role, ()):
            address = _address(channel, rcpt, cfg)
            key = idempotency_key(event.id, kind, rcpt, channel)
            if channel not in cfg.channels or not address or key in seen:
                continue
            seen.add(key)
            out.append(Notification(key, kind, channel, rcpt, address, f"[OneGrid] {KINDS[kind]} {d.get('id', '')}",
                                    render(cfg.templates[kind], values), d.get("id", ""), event.id, event.type))
    return out


def idempotency_key(event_id: str, kind: str, recipient: Recipient, channel: str) -> str:
    raw = f"{event_id}|{kind}|{recipient.role}:{recipient.id}|{channel}"
    return "n-" + hashlib.sha256(raw.encode()).hexdigest()[:24]


def _handler(wo: dict, d: dict, names: Names) -> Recipient:
    """Who handles a part: the grid worker when it is handled in the grid, else the department."""
    if (wo.get("level") or d.get("level")) == "grid" and d.get("grid"):
        return Recipient("grid_worker", f"grid:{d['grid']}", names.nodes.get(d["grid"], ("",))[0], unit=d["grid"])
    dept = wo.get("department") or "governance"
    return Recipient("department", dept, names.departments.get(dept, dept), unit=dept)


def _leader(handler: Recipient, d: dict, names: Names) -> Recipient:
    """A department's leader; for a grid, its community's leader (社区书记)."""
    if handler.role == "grid_worker":
        community = names.nodes.get(handler.unit, ("", ""))[1] or handler.unit
        return Recipient("leader", f"community:{community}", names.nodes.get(community, ("",))[0], unit=community)
    return Recipient("leader", f"{handler.unit}:leader", f"{handler.name}负责人", unit=handler.unit)


def _address(channel: str, r: Recipient, cfg: Config) -> str | None:
    if channel == "webhook":
        return f"{r.role}:{r.id}"
    if channel == "sms":
        return r.phone
    explicit = (cfg.contacts.get("emails") or {}).get(r.id)
    if explicit:
        return explicit
    pattern = {"department": "department_email", "leader": "leader_email"}.get(r.role)
    if r.role == "leader" and r.id.startswith("community:"):
        pattern = "community_leader_email"
    return cfg.contacts[pattern].replace("{unit}", r.unit) if pattern and cfg.contacts.get(pattern) else None


def _values(d: dict, wo: dict, r: Recipient, names: Names, cfg: Config) -> dict:
    grid = d.get("grid", "")
    grid_name, community = names.nodes.get(grid, ("", ""))
    step = d.get("step") or {}
    return {
        "tenant_name": names.tenant_name, "case_id": d.get("id", ""), "summary": d.get("summary", ""),
        "category_name": names.categories.get(d.get("category"), d.get("category", "")),
        "severity_name": SEVERITY_ZH.get(d.get("severity"), d.get("severity", "")), "grid": grid,
        "grid_name": grid_name or grid, "community_name": names.nodes.get(community, ("",))[0],
        "unit_name": _unit_name(wo.get("_unit") or r.unit, names),
        "level_name": LEVEL_ZH.get(d.get("level"), d.get("level", "")),
        "reason_name": REASON_ZH.get(d.get("reason"), d.get("reason", "") or ""),
        "outcome_name": OUTCOME_ZH.get(d.get("outcome"), d.get("outcome", "") or ""),
        "primary_id": d.get("primary_id", ""), "note": d.get("note") or step.get("note") or "",
        "ack_due": local_time(wo.get("ack_due"), cfg.tz), "resolve_due": local_time(wo.get("resolve_due"), cfg.tz),
        "recipient_name": r.name}


def _unit_name(unit: str, names: Names) -> str:
    return names.departments.get(unit) or names.nodes.get(unit, (unit,))[0]


def local_time(value, tz: timezone) -> str:
    ts = epoch(value) if value not in (None, "") else None
    return datetime.fromtimestamp(ts, tz).strftime("%m-%d %H:%M") if ts is not None else "—"


class _Blank(dict):
    def __missing__(self, key):
        return ""


def render(template: str, values: dict) -> str:
    """Fill a template's {name}s; a value the event lacks renders empty, never the braces."""
    return string.Formatter().vformat(template, (), _Blank({k: "" if v is None else v for k, v in values.items()}))


# -- when to try again ---------------------------------------------------------------------
def backoff(attempt: int, base: float, cap: float, jitter: float, rng: random.Random | None = None) -> float:
    """Delay before retry `attempt` (1 = after the first failure): base x 2^(attempt-1),
    capped, then shortened by up to `jitter` of itself at random, so retries spread out:
    within [d x (1 - jitter), d] for d = min(cap, base x 2^(attempt-1))."""
    delay = min(cap, base * (2 ** max(0, attempt - 1)))
    return delay * (1 - jitter * (rng or random).random())


def rate_decision(recent: list[float], now: float, limit: int, window: float) -> float | None:
    """None when one more message to this recipient fits the limit (`limit` per sliding
    `window` seconds, `recent` the times of earlier ones); else when it will fit."""
    inside = sorted(t for t in recent if t > now - window)
    if len(inside) < limit:
        return None
    return inside[len(inside) - int(limit)] + window
