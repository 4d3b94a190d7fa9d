"""The Open311 GeoReport v2 door's rules: the county's categories as service definitions, a
citizen's form checked into a submission, a case as a service request, and the spec's
error arrays. Pure: services/open311 reads the transport, onegrid.app.open311 publishes.

What the door keeps of a citizen: the phone (when it is a mobile number, to call them back)
and an account or device id as the reporter id. first_name, last_name and email are not
stored (personal data the case does not need); the answer says so in its service_notice.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree as ET

from onegrid.domain.lifecycle import TERMINAL_CASE
from onegrid.kernel.tenant import SEVERITIES, Tenant
from onegrid.kernel.topology import DOORS

DEPARTMENT, EVENT_TYPE = DOORS["open311"]
EVENT = f"{DEPARTMENT}.{EVENT_TYPE}"  # the CloudEvents type and routing key of a request
FORMATS = ("json", "xml")
CLIENT_ID = re.compile(r"^[a-z][a-z0-9-]{1,39}$")
PHONE = re.compile(r"^1[3-9][0-9]{9}$")
REPORTER = re.compile(r"[^A-Za-z0-9_.@:-]")
SEVERITY_NAMES = {"minor": "琐事 minor", "general": "小事 general", "major": "大事 major", "critical": "急事 critical"}
MAX_DESCRIPTION = 480  # the case summary holds 500: room for nothing else to be cut
MAX_IDS = 100  # service_request_id values in one GET requests


class Open311Error(Exception):
    """An answer in the spec's error array: [{"code": <HTTP status>, "description": ...}]."""

    def __init__(self, code: int, description: str, retry_after: int | None = None):
        super().__init__(description)
        self.code, self.description = code, description
        self.retry_after = retry_after  # seconds, for a 429 or a 503

    def body(self) -> list[dict]:
        return [{"code": self.code, "description": self.description}]


ATTRIBUTES = [
    {
        "variable": True,
        "code": "severity",
        "datatype": "singlevaluelist",
        "required": False,
        "datatype_description": "Leave it out when unsure: the command centre judges it (default general).",
        "order": 1,
        "description": "How serious is it? 严重程度",
        "values": [{"key": s, "name": SEVERITY_NAMES[s]} for s in SEVERITIES],
    },
    {
        "variable": True,
        "code": "callback_required",
        "datatype": "singlevaluelist",
        "required": False,
        "datatype_description": None,
        "order": 2,
        "description": "Do you want to be told the outcome? 是否需要回复",
        "values": [{"key": "yes", "name": "是 yes"}, {"key": "no", "name": "否 no"}],
    },
]


def check_manifest(doc: Mapping) -> list[tuple[str, str]]:
    """The manifest's `open311: {clients: [...]}`: the client applications onboarding issues
    an api_key for (optional; `onegrid open311 add-client` issues more)."""
    raw = doc.get("open311")
    if raw is None:
        return []
    if not isinstance(raw, dict) or set(raw) - {"clients"}:
        return [("open311", "must be a map with `clients`: the client applications' ids")]
    clients = raw.get("clients") or []
    if not isinstance(clients, list):
        return [("open311.clients", "must be a list of client ids")]
    problems = [
        (f"open311.clients[{i}]", f"{c!r} must match ^[a-z][a-z0-9-]{{1,39}}$")
        for i, c in enumerate(clients)
        if not isinstance(c, str) or not CLIENT_ID.match(c)
    ]
    if len(set(map(str, clients))) != len(clients):
        problems.append(("open311.clients", "lists a client twice"))
    return problems


def clients_of(manifest: Mapping) -> list[str]:
    raw = manifest.get("open311")
    return list(raw.get("clients") or []) if isinstance(raw, dict) else []


def services(categories: Mapping[str, dict]) -> list[dict]:
    """GET services: every case category the county takes, as an Open311 service."""
    return [
        {
            "service_code": cid,
            "service_name": cat.get("name_zh") or cid,
            "description": cat.get("name") or cid,
            "metadata": True,
            "type": "realtime",
            "keywords": cid.replace("_", ","),
            "group": "OneGrid",
        }
        for cid, cat in sorted(categories.items())
    ]


def definition(code: str, categories: Mapping[str, dict]) -> dict:
    if code not in categories:
        raise Open311Error(404, f"service_code {code[:64]!r} not found; GET services.json lists them")
    return {"service_code": code, "attributes": ATTRIBUTES}


@dataclass(frozen=True)
class Submission:
    """A checked POST requests: what the event carries."""

    category: str
    summary: str
    severity: str
    reporter_id: str
    lat: float | None = None  # WGS84, with lon; or the office of the unit the address names
    lon: float | None = None
    grid: str | None = None  # the grid the address names, when it names one
    address: str | None = None
    media_url: str | None = None
    phone: str | None = None
    callback: bool | None = None

    def data(self, client: str, occurred_at: str) -> dict:
        """The event's data under the open311_request_received contract."""
        out: dict[str, Any] = {
            "category": self.category,
            "severity": self.severity,
            "summary": self.summary,
            "occurred_at": occurred_at,
            "reporter": {"kind": "citizen", "id": self.reporter_id},
            "client": client,
        }
        if self.phone:
            out["reporter"]["phone"] = self.phone
        if self.grid:
            out["grid"] = self.grid
        if self.lat is not None and self.lon is not None:
            out["location"] = {"lat": self.lat, "lon": self.lon}
        if self.address:
            out["address_string"] = self.address
        if self.media_url:
            out["media_url"] = self.media_url
            out["evidence_urls"] = [self.media_url]
        if self.callback is not None:
            out["callback_required"] = self.callback
        return out


def submission(form: Mapping[str, str], categories: Mapping[str, dict], tenant: Tenant) -> Submission:
    """The form of POST requests checked; Open311Error (400, 404) says what is wrong."""
    code = (form.get("service_code") or "").strip()
    if not code:
        raise Open311Error(400, "service_code was not provided")
    if code not in categories:
        raise Open311Error(404, f"service_code {code[:64]!r} not found; GET services.json lists them")
    lat, lon = _position(form.get("lat"), form.get("long"))
    address = (form.get("address_string") or "").strip() or None
    if address is not None and len(address) > 250:
        raise Open311Error(400, "address_string is longer than 250 characters")
    grid = None
    if lat is None:
        if address is None:
            raise Open311Error(400, "a location is required: lat and long (WGS84), or address_string")
        grid, lat, lon = _by_address(address, tenant)
    description = (form.get("description") or "").strip()
    if len(description) > MAX_DESCRIPTION:
        raise Open311Error(400, f"description is longer than {MAX_DESCRIPTION} characters")
    name = categories[code].get("name_zh") or code
    summary = description if len(description) >= 4 else f"{name}：{description or '市民经Open311反映'}"
    media = (form.get("media_url") or "").strip() or None
    if media is not None and (len(media) > 500 or not re.match(r"^https?://[^\s/]+\S*$", media)):
        raise Open311Error(400, "media_url must be an http(s) URL of at most 500 characters")
    phone = (form.get("phone") or "").strip() or None
    if phone is not None and not PHONE.match(phone):
        raise Open311Error(400, "phone must be a mobile number: 11 digits starting 13-19")
    severity = form.get("attribute[severity]") or "general"
    if severity not in SEVERITIES:
        raise Open311Error(400, f"attribute[severity] must be one of {', '.join(SEVERITIES)}")
    callback = form.get("attribute[callback_required]")
    if callback not in (None, "yes", "no"):
        raise Open311Error(400, "attribute[callback_required] must be yes or no")
    who = REPORTER.sub("", form.get("account_id") or form.get("device_id") or "")[:56]
    return Submission(
        category=code,
        summary=summary[:500],
        severity=severity,
        reporter_id=f"open311:{who or 'anonymous'}",
        lat=lat,
        lon=lon,
        grid=grid,
        address=address,
        media_url=media,
        phone=phone,
        callback=None if callback is None else callback == "yes",
    )


def _position(lat_text, lon_text) -> tuple[float | None, float | None]:
    if lat_text in (None, "") and lon_text in (None, ""):
        return None, None
    if lat_text in (None, "") or lon_text in (None, ""):
        raise Open311Error(400, "lat and long go together")
    try:
        lat, lon = float(lat_text), float(lon_text)
    except (TypeError, ValueError):
        raise Open311Error(400, "lat and long must be decimal degrees (WGS84)") from None
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        raise Open311Error(400, "lat must be within -90..90 and long within -180..180")
    return lat, lon


def _by_address(address: str, tenant: Tenant) -> tuple[str | None, float | None, float | None]:
    """No geocoder: the grid, community or street whose name the address contains (the most
    precise, then the longest name). A grid is the grid; a community or street is its office's
    place, which intake then places in one of its grids."""
    named = [n for n in tenant.nodes.values() if n.level != tenant.top and n.name and n.name in address]
    if not named:
        raise Open311Error(
            400, f"address_string names no street, community or grid of {tenant.name_zh}; send lat and long"
        )
    best = min(named, key=lambda n: (tenant.levels.index(n.level), -len(n.name)))
    if best.level == "grid":
        return best.code, None, None
    office = tenant.geography.offices.get(best.code) if tenant.geography else None
    if office is None:
        raise Open311Error(400, f"{best.name} has no office on the county's map; send lat and long")
    return None, office.lat, office.lon


def status(case: Mapping) -> str:
    return "closed" if case.get("status") in TERMINAL_CASE else "open"


_NOTES = {
    "registered": "已受理，正在分派 Received, being routed",
    "dispatched": "已派遣至责任部门 Dispatched to the responsible departments",
    "in_progress": "处置中 Being handled",
    "resolved": "已处置，待核查 Resolved, awaiting verification",
    "verified": "已核查，待回访 Verified on site, awaiting your word",
    "reopened": "重新办理 Reopened",
    "closed": "已办结 Closed",
    "rejected": "不予受理 Rejected",
    "merged": "与同一事项合并办理 Merged with a report of the same matter",
}


def request_view(case: Mapping, work_orders: Sequence[Mapping], names: Mapping[str, str], categories) -> dict:
    """A case as GET requests shows it: no reporter data."""
    raw_data, raw_location = case.get("data"), case.get("location")
    data: dict = raw_data if isinstance(raw_data, dict) else {}
    location: dict = raw_location if isinstance(raw_location, dict) else {}
    notes = _NOTES.get(str(case.get("status")), str(case.get("status")))
    if case.get("status") == "closed" and case.get("outcome") == "not_fixed":
        notes = "已办结（未解决） Closed, not fixed"
    if case.get("rejected_reason"):
        notes += f": {case['rejected_reason']}"
    if case.get("merged_into"):
        notes += f" ({case['merged_into']})"
    departments = [names.get(str(w.get("department")), str(w.get("department"))) for w in work_orders]
    dues = [float(w["resolve_due"]) for w in work_orders if w.get("resolve_due") and w.get("status") != "cancelled"]
    keys = ("received_at", "dispatched_at", "resolved_at", "verified_at", "closed_at")
    stamps = [str(case[k]) for k in keys if case.get(k)]
    category = str(case.get("category"))
    return {
        "service_request_id": case["id"],
        "status": status(case),
        "status_notes": notes,
        "service_name": (categories.get(category) or {}).get("name_zh", category),
        "service_code": category,
        "description": case.get("summary"),
        "agency_responsible": "、".join(dict.fromkeys(departments)) or names.get(DEPARTMENT, DEPARTMENT),
        "service_notice": None,
        "requested_datetime": case.get("received_at"),
        "updated_datetime": max(stamps) if stamps else case.get("received_at"),
        "expected_datetime": _iso(max(dues)) if dues and status(case) == "open" else None,
        "address": data.get("address_string"),
        "address_id": None,
        "zipcode": None,
        "lat": location.get("lat"),
        "long": location.get("lon"),
        "media_url": data.get("media_url"),
    }


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Query:
    """GET requests' filters, checked."""

    ids: tuple[str, ...] = ()
    codes: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    start: float | None = None
    end: float | None = None


def query(args: Mapping[str, str], categories: Mapping[str, dict]) -> Query:
    ids = tuple(i.strip() for i in (args.get("service_request_id") or "").split(",") if i.strip())
    if len(ids) > MAX_IDS:
        raise Open311Error(400, f"at most {MAX_IDS} service_request_id values at once")
    codes = tuple(c.strip() for c in (args.get("service_code") or "").split(",") if c.strip())
    unknown = [c for c in codes if c not in categories]
    if unknown:
        raise Open311Error(400, f"service_code {unknown[0][:64]!r} not found")
    statuses = tuple(s.strip() for s in (args.get("status") or "").split(",") if s.strip())
    if any(s not in ("open", "closed") for s in statuses):
        raise Open311Error(400, "status must be open, closed, or both comma-separated")
    start, end = _when(args.get("start_date"), "start_date"), _when(args.get("end_date"), "end_date")
    if start is not None and end is not None and end < start:
        raise Open311Error(400, "end_date is before start_date")
    if start is not None and end is not None and end - start > 90 * 86400:
        raise Open311Error(400, "start_date and end_date may not span more than 90 days")
    return Query(ids, codes, statuses, start, end)


def _when(text: str | None, name: str) -> float | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise Open311Error(400, f"{name} must be a w3 datetime with its zone, e.g. 2026-01-01T00:00:00Z") from None
    if when.tzinfo is None:
        raise Open311Error(400, f"{name} needs its zone (Z or an offset)")
    return when.timestamp()


def matches(view: dict, q: Query) -> bool:
    return (not q.codes or view["service_code"] in q.codes) and (not q.statuses or view["status"] in q.statuses)


# -- XML: the spec's required format --------------------------------------------------------

_ITEM = {"services": "service", "service_requests": "request", "errors": "error", "attributes": "attribute"}
_ITEM["values"] = "value"


def to_xml(root: str, value) -> bytes:
    """`value` (a list of dicts, or a dict) as the spec's XML: lists under their plural tag."""
    element = ET.Element(root)
    _fill(element, root, value)
    # the spec wants the declaration with encoding="UTF-8" (ElementTree's own uses single quotes)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(element, encoding="unicode").encode()


def _fill(element: ET.Element, tag: str, value) -> None:
    if isinstance(value, list):
        for item in value:
            _fill(ET.SubElement(element, _ITEM.get(tag, "item")), _ITEM.get(tag, "item"), item)
    elif isinstance(value, dict):
        for key, sub in value.items():
            _fill(ET.SubElement(element, key), key, sub)
    elif value is None:
        return
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    else:
        element.text = str(value)
