"""Notify: which messages a lifecycle event calls for (件件有回音), their text, and when to
try again. Pure: the clock and the random source are arguments; sending is in
onegrid/adapters/channels/notify_channels.py, the outbox in onegrid/adapters/channels/notifications.py.
"""

from __future__ import annotations

import hashlib
import random
import re
import string
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from onegrid.contracts.registry import Registry
from onegrid.domain.lifecycle import OPEN_WORK_ORDER
from onegrid.domain.onsite import reported_on_site, settled_on_site
from onegrid.domain.scoring import Event, epoch
from onegrid.kernel.tenant import COMMAND_CENTRE, Tenant

CHANNELS = ("webhook", "email", "sms")
ROLES = ("reporter", "grid_worker", "department", "leader", "office")  # office: a level's office (ladder)
KINDS = {  # kind -> e-mail subject
    "receipt": "受理回执",
    "on_site": "现场解决登记",
    "on_site_check": "现场解决抽查",
    "merged": "合并办理告知",
    "dispatch": "派单通知",
    "overdue": "超期督办",
    "overdue_leader": "超期督办抄送",
    "overdue_office": "超期督办（本级）",
    "escalated": "升级督办单",
    "escalated_below": "升级告知",
    "resolution": "办理结果告知",
    "satisfaction": "满意度回访",
    "closed": "办结告知",
    "merged_outcome": "合并办理结果告知",
    "rejected": "不予受理告知",
    "reply_ask": "评价回复确认",  # a bare "1" with several questions open: which one? (onegrid/domain/replies.py)
    "hotline_answer": "12345 工单答复",  # the 12345 system told each step of a case it sent
}
TEMPLATES = {
    "receipt": "【{tenant_name}】您反映的“{summary}”已受理，编号 {case_id}。我们将尽快处理，结果会及时告知您。",
    "on_site": "【{tenant_name}】您上报的“{summary}”已登记为现场解决（编号 {case_id}），不再派单；事后可能抽查核实。",
    "on_site_check": "【抽查】{grid_name}网格员现场解决的 {case_id}（{category_name}）被抽中核查，"
    "请到现场核实是否解决：{summary}",
    "merged": "【{tenant_name}】您反映的“{summary}”与已受理的事项（编号 {primary_id}）为同一问题，"
    "已合并办理，结果将一并告知您。",
    "dispatch": "【{tenant_name}】新派单 {case_id}：{category_name}（{severity_name}），{grid_name}：{summary}。"
    "请于 {ack_due} 前签收，{resolve_due} 前办结。",
    "overdue": "【督办】{case_id}（{category_name}，{grid_name}）{reason_name}，请立即处理：{summary}",
    "overdue_leader": "【督办抄送】{unit_name}承办的 {case_id}（{category_name}，{grid_name}）{reason_name}：{summary}",
    "overdue_office": "【督办】{level_name}{unit_name}：{case_id}（{category_name}，{grid_name}）{reason_name}，"
    "请本级立即处理：{summary}",
    "escalated": "【升级督办】{case_id}（{category_name}，{grid_name}）已升级至{unit_name}{office_name}，"
    "原因：{reason_name}。请于 {item_due} 前签收并处置：{summary}",
    "escalated_below": "【升级告知】{case_id}（{category_name}，{grid_name}）已升级至{level_name}"
    "（{office_name}）办理，原因：{reason_name}。",
    "resolution": "【{tenant_name}】您反映的“{summary}”已处理完毕，并经网格员现场核实。{note}",
    "satisfaction": "【{tenant_name}】请对“{summary}”（编号 {case_id}）的处理结果评价：回复 1 满意，2 不满意。"
    "如有多件待评价，请加代码 {reply_code}，如“1 {reply_code}”。",
    "closed": "【{tenant_name}】您反映的“{summary}”（编号 {case_id}）已办结：{outcome_name}。{note}",
    "rejected": "【{tenant_name}】您反映的“{summary}”（编号 {case_id}）经核查不属于平台受理范围。{note}",
    "merged_outcome": "【{tenant_name}】您反映的“{summary}”已与事项（编号 {primary_id}）合并办理，"
    "现已办结：{outcome_name}。{note}",
    "reply_ask": "{note}",  # its text is the open questions' list (replies.ask_again_text)
    "hotline_answer": "12345 工单 {ticket_no}（编号 {case_id}）：{step_name}。{outcome_name}{note}",
}
FIELDS = {
    "tenant_name",
    "case_id",
    "summary",
    "category_name",
    "severity_name",
    "grid",
    "grid_name",
    "community_name",
    "unit_name",
    "level_name",
    "reason_name",
    "outcome_name",
    "primary_id",
    "note",
    "ack_due",
    "resolve_due",
    "recipient_name",
    "reply_code",
    "ticket_no",
    "step_name",
    "office_name",
    "item_due",
}
ROUTES = {
    "reporter": ("sms", "webhook"),
    "grid_worker": ("webhook",),
    "department": ("webhook", "email"),
    "leader": ("email", "webhook"),
    "office": ("webhook", "email"),
}
SEVERITY_ZH = {"minor": "琐事", "general": "一般", "major": "重大", "critical": "紧急"}
LEVEL_ZH = {"grid": "网格", "community": "社区", "street": "街道", "county": "县区", "district": "区", "city": "市"}
REASON_ZH = {
    "overdue_acknowledge": "超时未签收",
    "overdue_resolve": "超时未办结",
    "office_unacknowledged": "上级督办单超时未签收",
    "office_did_not_act": "上级督办单超时未处置",
    "whistle": "吹哨升级",
    "reopen_limit": "多次不满意",
}
OUTCOME_ZH = {"fixed": "问题已解决", "not_fixed": "问题未能解决，已终结"}
# the steps of a case the 12345 system is answered at: lifecycle event -> step
HOTLINE_STEPS = {
    "case.registered": "accepted",
    "case.dispatched": "dispatched",
    "case.resolved": "resolved",
    "case.reopened": "reopened",
    "case.closed": "closed",
    "case.rejected": "rejected",
    "case.merged": "merged",
}
STEP_ZH = {
    "accepted": "已受理",
    "dispatched": "已派单",
    "resolved": "已办理完毕",
    "reopened": "重新办理",
    "closed": "已办结",
    "rejected": "不予受理",
    "merged": "与同一问题合并办理",
}
_CHANNEL_KEYS = {
    "webhook": {"enabled", "url", "secret_env", "timeout_s"},
    "email": {"enabled", "host", "port", "sender", "starttls", "username_env", "password_env", "timeout_s"},
    "sms": {"enabled", "url", "account", "token_env", "timeout_s", "inbound_secret_env", "inbound_tolerance_s"},
    "hotline": {"enabled", "url", "secret_env", "timeout_s"},  # answers to the 12345 system (no route's channel)
}
_SECTION = {"timezone", "templates", "channels", "routes", "contacts", "delivery", "rate_limit"}
DELIVERY = {
    "max_attempts": 5,
    "base_delay_s": 2.0,
    "max_delay_s": 300.0,
    "jitter": 0.5,
    "retention_days": 30,
    "concurrency": 20,
}
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
    inbound: dict = field(default_factory=dict)  # SMS replies: {secret_env, tolerance_s}; {} when not received


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
        if name not in _CHANNEL_KEYS or not isinstance(ch, dict):
            problems.append((where, f"a channel is one of {', '.join(_CHANNEL_KEYS)}, with a map of settings"))
            continue
        problems += [(f"{where}.{k}", "unknown setting") for k in ch if k not in _CHANNEL_KEYS[name]]
        tolerance = ch.get("inbound_tolerance_s", 300)  # replies are received whether SMS goes out or not
        if name == "sms" and not (_num(tolerance) and tolerance > 0):
            problems.append((f"{where}.inbound_tolerance_s", "seconds, a number > 0"))
        if ch.get("enabled", True):
            required = {
                "webhook": ("url", "secret_env"),
                "email": ("host", "port", "sender"),
                "sms": ("url",),
                "hotline": ("url", "secret_env"),
            }[name]
            problems += [(f"{where}.{k}", "is required") for k in required if not ch.get(k)]
            if name != "email" and ch.get("url") and not str(ch["url"]).startswith(("http://", "https://")):
                problems.append((f"{where}.url", "must be an http(s) URL"))
    for role, channels in (sec.get("routes") or {}).items():
        if role not in ROLES or not isinstance(channels, list) or set(channels) - set(CHANNELS):
            problems.append((f"notify.routes.{role}", f"a role ({', '.join(ROLES)}) with a list of channels"))
    for key, _value in (sec.get("contacts") or {}).items():
        if key not in ("department_email", "leader_email", "community_leader_email", "office_email", "emails"):
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
    zone = _OFFSET.match(sec.get("timezone", "+08:00"))
    if zone is None:  # check_manifest refused it already; this says so to the type checker
        raise ValueError("notify.timezone: must be a UTC offset like +08:00")
    sign, hh, mm = zone.groups()
    tz = timezone(timedelta(hours=int(hh), minutes=int(mm)) * (-1 if sign == "-" else 1))
    channels = {k: v for k, v in (sec.get("channels") or {}).items() if v.get("enabled", True)}
    routes = {**ROUTES, **{r: tuple(c) for r, c in (sec.get("routes") or {}).items()}}
    return Config(
        tz,
        {**TEMPLATES, **(sec.get("templates") or {})},
        channels,
        routes,
        dict(sec.get("contacts") or {}),
        {**DELIVERY, **(sec.get("delivery") or {})},
        {**RATE_LIMIT, **(sec.get("rate_limit") or {})},
        _inbound((sec.get("channels") or {}).get("sms") or {}),
    )


def _inbound(sms: dict) -> dict:
    """Where the SMS gateway's pushed replies are checked from: the secret's variable and how
    old a signed timestamp may be (whether outbound SMS is enabled or not)."""
    if not sms.get("inbound_secret_env"):
        return {}
    return {"secret_env": sms["inbound_secret_env"], "tolerance_s": float(sms.get("inbound_tolerance_s", 300))}


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
    extra: dict = field(default_factory=dict, compare=False)  # channel-specific fields (a 12345 answer's ticket_no)


@dataclass
class Names:
    """What the templates call things: from the registry and the tenant's grid tree."""

    tenant_name: str = ""
    categories: dict = field(default_factory=dict)
    departments: dict = field(default_factory=dict)
    nodes: dict = field(default_factory=dict)  # code -> (name, parent code)
    offices: dict = field(default_factory=dict)  # level -> its office's name (the tenant's ladder)


def plan(event: Event, cfg: Config, names: Names) -> list[Notification]:
    d = event.data
    reporter = d.get("reporter") or {}
    to_reporter = Recipient("reporter", str(reporter.get("id", "")), reporter.get("kind", ""), reporter.get("phone"))
    wo = d.get("work_order") or {}
    wanted: list[tuple[str, Recipient, dict]] = []
    if event.type == "case.registered":  # settled on site: recorded, never promised a dispatch
        wanted = [("on_site" if reported_on_site(d) else "receipt", to_reporter, wo)]
    elif event.type == "case.resolved" and settled_on_site(d) and d.get("grid"):
        grid = Recipient("grid_worker", f"grid:{d['grid']}", names.nodes.get(d["grid"], ("",))[0], unit=d["grid"])
        wanted = [("on_site_check", _leader(grid, d, names), wo)]  # the community checks the sample
    elif event.type == "case.merged":
        wanted = [("merged", to_reporter, wo)]
    elif event.type == "case.dispatched":
        parts = d.get("work_orders") or ([wo] if wo else [])
        wanted = [
            ("dispatch", _handler(w, d, names), w) for w in parts if w.get("status", "dispatched") == "dispatched"
        ]
    elif event.type == "case.supervised" and d.get("item"):  # an office missed its item's deadline
        if d.get("unit"):
            wanted.append(("overdue_office", _office(d["unit"], names), {**wo, "_unit": d["unit"]}))
    elif event.type == "case.supervised":
        parts = [wo] if wo else [w for w in d.get("work_orders") or [] if w.get("status") in OPEN_WORK_ORDER]
        for w in parts or [{"department": COMMAND_CENTRE, "level": d.get("level")}]:
            handler = _handler(w, d, names)
            wanted += [
                ("overdue", handler, {**w, "_unit": handler.unit}),
                ("overdue_leader", _leader(handler, d, names), {**w, "_unit": handler.unit}),
            ]
        if d.get("level") not in (None, "", "grid") and d.get("unit"):  # the office now in charge
            wanted.append(("overdue_office", _office(d["unit"], names), {**wo, "_unit": d["unit"]}))
    elif event.type == "case.escalated":
        item = d.get("item") or {}
        if item.get("unit"):  # the new level's office: its escalation item
            wanted.append(("escalated", _office(item["unit"], names), {"_unit": item["unit"], "_item": item}))
        for below in d.get("told") or []:  # the grid's worker and each lower office
            unit = str(below.get("unit") or "")
            if below.get("level") == "grid":
                rcpt = Recipient("grid_worker", f"grid:{unit}", names.nodes.get(unit, ("",))[0], unit=unit)
            else:
                rcpt = _office(unit, names)
            wanted.append(("escalated_below", rcpt, {"_unit": item.get("unit", ""), "_item": item}))
    elif event.type == "case.verified":
        wanted = [("resolution", to_reporter, wo), ("satisfaction", to_reporter, wo)]
    elif event.type == "case.closed":
        if d.get("outcome") == "not_fixed":
            wanted = [("closed", to_reporter, wo)]
        wanted += [("merged_outcome", *_merged_reporter(link, d)) for link in d.get("linked") or []]
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
            out.append(
                Notification(
                    key,
                    kind,
                    channel,
                    rcpt,
                    address,
                    f"[OneGrid] {KINDS[kind]} {d.get('id', '')}",
                    render(cfg.templates[kind], values),
                    d.get("id", ""),
                    event.id,
                    event.type,
                )
            )
    return out


def plan_two_way(event: Event, cfg: Config, names: Names) -> list[Notification]:
    """Beside `plan`: the answers to the 12345 system for a case it sent (one per step, carrying
    its ticket_no, on the `hotline` channel), and the outcome to a reporter who asked for a call
    back (`callback_required: true`) where `plan` tells them nothing (a case closed fixed), by SMS
    whatever the reporter's routes say."""
    d = event.data
    data = d.get("data") or {}
    out = []
    step = HOTLINE_STEPS.get(event.type)
    ticket = data.get("ticket_no")
    if step and ticket and "hotline" in cfg.channels:
        rcpt = Recipient("hotline", "12345", "12345 政务服务便民热线")
        verdict = d.get("satisfied") if event.type in ("case.closed", "case.reopened") else None
        extra = {"ticket_no": str(ticket), "step": step, "outcome": d.get("outcome") or ""}
        extra["satisfied"] = "" if verdict is None else ("true" if verdict else "false")
        out.append(_one(event, cfg, names, "hotline_answer", "hotline", rcpt, str(ticket), {"_step": step}, extra))
    reporter = d.get("reporter") or {}
    wants_call = data.get("callback_required") is True and event.type == "case.closed"
    if wants_call and d.get("outcome") != "not_fixed" and reporter.get("phone") and "sms" in cfg.channels:
        rcpt = Recipient("reporter", str(reporter.get("id", "")), reporter.get("kind", ""), reporter.get("phone"))
        out.append(_one(event, cfg, names, "closed", "sms", rcpt, str(reporter["phone"]), {}))
    return out


def plan_reply_ask(message_key: str, case_id: str, phone: str, text: str, cfg: Config) -> Notification | None:
    """The SMS back to a reply that named no question among several (replies.ask_again_text),
    once per received message; None when SMS is not a channel of this county."""
    if "sms" not in cfg.channels:
        return None
    rcpt = Recipient("reporter", "sms-reply", "", phone)
    key = idempotency_key(message_key, "reply_ask", rcpt, "sms")
    subject = f"[OneGrid] {KINDS['reply_ask']}"
    body = render(cfg.templates["reply_ask"], {"note": text})
    return Notification(key, "reply_ask", "sms", rcpt, phone, subject, body, case_id, message_key, "sms.reply")


def _one(
    event: Event,
    cfg: Config,
    names: Names,
    kind: str,
    channel: str,
    rcpt: Recipient,
    address: str,
    part: dict,
    extra: dict | None = None,
) -> Notification:
    d = event.data
    return Notification(
        idempotency_key(event.id, kind, rcpt, channel),
        kind,
        channel,
        rcpt,
        address,
        f"[OneGrid] {KINDS[kind]} {d.get('id', '')}",
        render(cfg.templates[kind], _values(d, part, rcpt, names, cfg)),
        d.get("id", ""),
        event.id,
        event.type,
        extra or {},
    )


def idempotency_key(event_id: str, kind: str, recipient: Recipient, channel: str) -> str:
    raw = f"{event_id}|{kind}|{recipient.role}:{recipient.id}|{channel}"
    return "n-" + hashlib.sha256(raw.encode()).hexdigest()[:24]


def _handler(wo: dict, d: dict, names: Names) -> Recipient:
    """Who handles a part: the grid worker when it is handled in the grid, else the department."""
    if (wo.get("level") or d.get("level")) == "grid" and d.get("grid"):
        return Recipient("grid_worker", f"grid:{d['grid']}", names.nodes.get(d["grid"], ("",))[0], unit=d["grid"])
    dept = wo.get("department") or COMMAND_CENTRE
    return Recipient("department", dept, names.departments.get(dept, dept), unit=dept)


def _merged_reporter(link: dict, d: dict) -> tuple[Recipient, dict]:
    """The reporter of a duplicate merged into this case (still linked: an un-merged one is not),
    told in the words of their own report."""
    r = link.get("reporter") or {}
    part = {"_summary": link.get("summary") or d.get("summary", ""), "_primary_id": d.get("id", "")}
    return Recipient("reporter", str(r.get("id", "")), r.get("kind", ""), r.get("phone")), part


def _office(unit: str, names: Names) -> Recipient:
    """The office of a unit of the tree (社区居委会, 街道办 ...): an addressee like a department."""
    return Recipient("office", f"office:{unit}", names.nodes.get(unit, (unit,))[0], unit=unit)


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
    pattern = {"department": "department_email", "leader": "leader_email", "office": "office_email"}.get(r.role)
    if r.role == "leader" and r.id.startswith("community:"):
        pattern = "community_leader_email"
    return cfg.contacts[pattern].replace("{unit}", r.unit) if pattern and cfg.contacts.get(pattern) else None


def _values(d: dict, wo: dict, r: Recipient, names: Names, cfg: Config) -> dict:
    grid = d.get("grid", "")
    grid_name, community = names.nodes.get(grid, ("", ""))
    step = d.get("step") or {}
    return {
        "tenant_name": names.tenant_name,
        "case_id": d.get("id", ""),
        "summary": wo.get("_summary") or d.get("summary", ""),
        "category_name": names.categories.get(d.get("category"), d.get("category", "")),
        "severity_name": _zh(SEVERITY_ZH, d.get("severity", "")),
        "grid": grid,
        "grid_name": grid_name or grid,
        "community_name": names.nodes.get(community, ("",))[0],
        "unit_name": _unit_name(wo.get("_unit") or r.unit, names),
        "level_name": _zh(LEVEL_ZH, (wo.get("_item") or {}).get("level") or d.get("level", "")),
        "office_name": (wo.get("_item") or {}).get("office") or names.offices.get(d.get("level"), ""),
        "item_due": local_time((wo.get("_item") or {}).get("due"), cfg.tz),
        "reason_name": _zh(REASON_ZH, d.get("reason") or ""),
        "outcome_name": _zh(OUTCOME_ZH, d.get("outcome") or ""),
        "primary_id": wo.get("_primary_id") or d.get("primary_id", ""),
        "note": d.get("note") or step.get("note") or "",
        "ack_due": local_time(wo.get("ack_due"), cfg.tz),
        "resolve_due": local_time(wo.get("resolve_due"), cfg.tz),
        "recipient_name": r.name,
        "reply_code": d.get("id", "")[-4:].upper(),  # replies.short_code: a reply names its question by it
        "ticket_no": (d.get("data") or {}).get("ticket_no", ""),
        "step_name": _zh(STEP_ZH, wo.get("_step", "")),
    }


def _zh(table: dict[str, str], value):
    """The Chinese name of a code, or the value itself when it has none (or is no code)."""
    return table.get(value, value) if isinstance(value, str) else value


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


def names_of(tenant: Tenant, registry: Registry) -> Names:
    """What the templates call things, from the contracts registry and the tenant's grid tree."""
    return Names(
        tenant.name_zh,
        {k: c.get("name_zh", k) for k, c in registry.categories.items()},
        {k: d.get("name_zh", k) for k, d in registry.departments.items()},
        {c: (n.name, n.parent) for c, n in tenant.nodes.items()},
        {r.level: r.office for r in tenant.ladder},
    )


def lease_of(cfg: Config) -> float:
    """How long a claimed notification is the claimer's: longer than any attempt can take."""
    timeouts = [float(c.get("timeout_s", 10)) for c in cfg.channels.values()] or [10.0]
    return max(timeouts) * 2 + 10
