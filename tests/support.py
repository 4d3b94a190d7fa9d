"""Helpers shared by the integration and end-to-end tests."""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace
from urllib.parse import urlsplit

import requests
from kombu import Connection


def wait_until(predicate, timeout: float = 20, interval: float = 0.1, what: str = "condition"):
    """Poll until `predicate()` is truthy; returns its value or fails naming what it waited for."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def report(county, seed: int, summary: str, location, reporter: dict, minutes: int = 0, grid=None) -> str:
    """A grid report of an illegal business (published by governance, with its category), at
    `minutes` past 08:00 on a fixed day: two of them with close words are a likely duplicate
    (docs/duplicates.md). Its case id."""
    from onegrid.domain.cases import case_id

    sim = county.simulator(seed=seed)
    while (p := sim.good()).category != "illegal_business" or p.department != "governance":
        pass
    data = json.loads(p.body)
    data.update(summary=summary, reporter=reporter, grid=grid or county.tenant.grids()[0].code)
    data["occurred_at"] = f"2026-12-01T08:{minutes:02d}:00+08:00"
    data.pop("location", None)
    if location:
        data["location"] = location
    p = replace(p, body=json.dumps(data, ensure_ascii=False).encode())
    publish(county.uri, [p])
    return case_id(f"{p.department}|{p.headers['ce-source']}|{p.event_id}")


def publish(uri: str, planned, exchange: str = "onegrid.intake") -> None:
    """Publish planned events with confirms, exactly as a department system would."""
    with Connection(uri, transport_options={"confirm_publish": True}) as conn:
        producer = conn.Producer()
        for p in planned:
            producer.publish(
                p.body,
                exchange=exchange,
                routing_key=p.routing_key,
                headers=p.headers,
                content_type=p.content_type,
                content_encoding="binary",
                delivery_mode=2,
                mandatory=True,
            )


def drain(uri: str, queue: str, limit: int = 10_000, timeout: float = 2.0) -> list:
    """Take every message now in `queue` (acked): (headers, body) pairs."""
    out = []
    with Connection(uri) as conn:
        channel = conn.channel()
        deadline = time.monotonic() + timeout
        while len(out) < limit and time.monotonic() < deadline:
            msg = channel.basic_get(queue, no_ack=True)
            if msg is None:
                if out:
                    break
                time.sleep(0.05)
                continue
            out.append((dict(msg.headers or {}), msg.body))
    return out


def queue_depth(uri: str, queue: str) -> int:
    with Connection(uri) as conn:
        channel = conn.channel()
        _, count, _ = channel.queue_declare(queue, passive=True)
        return count


def person_id(role: str, scope: str = "") -> str:
    """The subject the tests give a person of `role` (and `scope`)."""
    return f"test-{role.replace('_', '-')}" + (f"-{scope}" if scope else "")


def bearer(client, tenant, role: str, scope: str = "", subject: str | None = None) -> dict:
    """The Authorization header of a person of `role` (and `scope`), added to the county's
    embedded issuer and signed in: every people-facing route takes one."""
    from onegrid.adapters.identity import EmbeddedIssuer

    issuer = EmbeddedIssuer(client, tenant)
    subject = subject or person_id(role, scope)
    issuer.add(subject, role, scope)
    return {"Authorization": f"Bearer {issuer.token(subject)}"}


def department_bearer(tenant, department: str) -> dict:
    """The Authorization header of a department's system: a new HTTP token (the old one stops)."""
    from onegrid.operator import ops

    token = ops.rotate(tenant, department, token_only=True)[0].values["http-token"]
    return {"Authorization": f"Bearer {token}"}


class SignedIn(requests.Session):
    """HTTP as the person who fits each route (the tests that are not about access): a
    department's staff on its work orders, a supervisor on score adjustments, the auditor on
    the audit, the command centre's operator everywhere else. Each is signed in once with
    the county's embedded issuer; a request that brings its own Authorization keeps it."""

    WORK_ORDERS = re.compile(r"/departments/([^/?]+)/work-orders")

    def __init__(self, client, tenant):
        super().__init__()
        self.client, self.tenant, self.badges = client, tenant, {}

    def who(self, url: str) -> tuple[str, str]:
        from onegrid.domain import access

        path = urlsplit(url).path
        if (m := self.WORK_ORDERS.search(path)) and m.group(1) in self.tenant.departments:
            return access.DEPARTMENT_STAFF, m.group(1)
        if path.startswith("/scoring/adjustments"):
            return access.SUPERVISOR, ""
        if path.startswith("/audit") or path.endswith("/timeline/verify"):
            return access.AUDITOR, ""
        return access.OPERATOR, ""

    def subject(self, url: str) -> str:
        """Who a request to `url` is made as."""
        return person_id(*self.who(url))

    def request(self, method, url, *args, headers=None, **kwargs):
        headers = dict(headers or {})
        if not any(k.lower() == "authorization" for k in headers):
            role = self.who(url)
            if role not in self.badges:
                self.badges[role] = bearer(self.client, self.tenant, *role)
            headers.update(self.badges[role])
        return super().request(method, url, *args, headers=headers, **kwargs)


def closed_over_http(county, seed: int) -> tuple[str, dict]:
    """A case of the simulator's (`seed`) taken from report to closure over HTTP: accepted and
    resolved with evidence by its department, verified, the citizen satisfied; its outbox
    announced. (the case id, its one work order)"""
    from onegrid.domain.cases import case_id

    sim = county.simulator(seed=seed)
    p = next(p for p in iter(sim.good, None) if p.department != "governance")
    publish(county.uri, [p])
    cid = case_id(f"{p.department}|{p.headers['ce-source']}|{p.event_id}")
    wait_until(lambda: (c := county.store.case(cid)) and c["status"] == "dispatched", what="dispatch")
    [wo] = county.store.work_orders_of(cid)
    dep, sup = county.services.url("departments"), county.services.url("supervision")
    base = f"{dep}/departments/{wo['department']}/work-orders/{wo['id']}"
    county.http.post(f"{base}/accept", json={"actor": "duty"}, timeout=5).raise_for_status()
    evidence = {"actor": "duty", "note": "done", "evidence_urls": ["https://evidence.onegrid.invalid/after.jpg"]}
    county.http.post(f"{base}/resolve", json=evidence, timeout=5).raise_for_status()
    county.http.post(f"{sup}/cases/{cid}/verify", json={"actor": "gw-1"}, timeout=5).raise_for_status()
    r = county.http.post(f"{sup}/cases/{cid}/satisfied", json={"actor": "citizen"}, timeout=5)
    assert r.json()["case"]["status"] == "closed", r.text
    wait_until(lambda: not county.store.r.hlen(county.store.key("outbox")), what="outbox announced")
    return cid, wo
