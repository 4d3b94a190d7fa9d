"""The Open311 door's use cases: a citizen's request published as a CloudEvent of its own
contract (governance.open311_request_received) into onegrid.intake, where intake judges it as
every event (placing it by its point in the county's grids); and the requests read back as
Open311 service requests.

The case id is known before intake runs (it is a hash of the event's identity), so the answer
waits a moment for the case and gives its service_request_id, or the token to ask again with.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from onegrid.app.ports import CaseReader, Clock, GridLocator, Publisher
from onegrid.contracts import Registry
from onegrid.domain import open311 as o
from onegrid.domain.cases import case_id
from onegrid.domain.geo import Outside, place
from onegrid.domain.intake import identity
from onegrid.kernel import envelope as ce
from onegrid.kernel import topology
from onegrid.kernel.tenant import Tenant

WAIT_FOR_CASE = 3.0  # seconds POST requests waits for intake before answering with a token
DEFAULT_DAYS = 90  # GET requests without dates: the last 90 days (the spec's default)
MAX_LISTED = 1000


class ClientKeys(Protocol):
    def verify(self, api_key: str) -> str | None: ...


class RequestIndex(Protocol):
    def add(self, token: str, epoch: float) -> None: ...

    def known(self, token: str) -> bool: ...

    def between(self, start: float, end: float, limit: int) -> list[str]: ...


@dataclass(frozen=True)
class Door:
    tenant: Tenant
    registry: Registry
    cases: CaseReader
    clients: ClientKeys
    index: RequestIndex
    bus: Publisher
    clock: Clock
    locator: GridLocator | None = None  # to tell a citizen at once that the point is not in the county

    @property
    def source(self) -> str:
        return f"/{self.tenant.id}/open311"

    def case_of(self, token: str) -> str:
        return case_id(identity(o.DEPARTMENT, self.source, token))

    def client(self, api_key: str | None) -> str:
        """The client application the key is issued to: 401 without one, 403 for a bad one."""
        if not api_key:
            raise o.Open311Error(401, "api_key was not provided (a form field, or Authorization: Bearer <api_key>)")
        client = self.clients.verify(api_key)
        if client is None:
            raise o.Open311Error(403, "api_key is invalid or revoked")
        return client

    def submit(self, form: Mapping[str, str], client: str) -> list[dict]:
        """POST requests: checked, published, and answered with the id (or a token)."""
        sub = o.submission(form, self.registry.categories, self.tenant)
        geography = self.tenant.geography
        if sub.lat is not None and sub.lon is not None and geography and self.locator:
            # the same lookup intake makes (which still places the event): a point outside the
            # county is the citizen's to correct, so they are told now rather than never
            where = place(sub.lat, sub.lon, geography.crs, self.locator.covering, self.tenant.id)
            if isinstance(where, Outside):
                raise o.Open311Error(400, where.detail.replace(self.tenant.id, self.tenant.name_zh))
        token = secrets.token_hex(16)
        env = ce.new(
            tenant=self.tenant.id,
            department=o.DEPARTMENT,
            type=o.EVENT,
            source=self.source,
            subject=sub.grid,
            id=token,
        )
        self.index.add(token, self.clock.now())
        self.bus.publish(env, sub.data(client, self.clock.now_iso()), topology.INTAKE, o.EVENT)
        named = form.get("email") or form.get("first_name") or form.get("last_name")
        notice = "姓名和邮箱不予保存 Names and email are not kept." if named else None
        deadline = time.monotonic() + WAIT_FOR_CASE
        while time.monotonic() < deadline:
            if self.cases.case(self.case_of(token)) is not None:
                return [{"service_request_id": self.case_of(token), "service_notice": notice, "account_id": None}]
            time.sleep(0.1)
        return [{"token": token, "service_notice": notice}]

    def token(self, token: str) -> list[dict]:
        if not self.index.known(token):
            raise o.Open311Error(404, f"token {token[:64]!r} not found")
        found = self.cases.case(self.case_of(token))
        return [{"service_request_id": found["id"] if found else None, "token": token}]

    def request(self, request_id: str) -> list[dict]:
        case = self.cases.case(request_id) if len(request_id) <= 64 else None
        if case is None or case.get("event_type") != o.EVENT:
            raise o.Open311Error(404, f"service_request_id {request_id[:64]!r} not found")
        return [self._view(case)]

    def requests(self, args: Mapping[str, str]) -> list[dict]:
        q = o.query(args, self.registry.categories)
        if q.ids:  # overrides every other argument (the spec)
            found = [self.cases.case(i) for i in q.ids if len(i) <= 64]
            return [self._view(c) for c in found if c is not None and c.get("event_type") == o.EVENT]
        end = q.end if q.end is not None else self.clock.now()
        start = q.start if q.start is not None else end - DEFAULT_DAYS * 86400
        out = []
        for token in self.index.between(start, end, MAX_LISTED):
            case = self.cases.case(self.case_of(token))
            if case is not None:
                view = self._view(case)
                if o.matches(view, q):
                    out.append(view)
        return out

    def _view(self, case: dict) -> dict:
        names = {d: (self.registry.departments.get(d) or {}).get("name_zh", d) for d in self.tenant.departments}
        return o.request_view(case, self.cases.work_orders_of(case["id"]), names, self.registry.categories)
