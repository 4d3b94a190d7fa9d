"""open311: the Open311 GeoReport v2 door for citizens' apps and the 12345 system.

  GET  /open311/v2/services.{json|xml}              the county's categories as services
  GET  /open311/v2/services/{code}.{json|xml}       a service's attributes
  POST /open311/v2/requests.{json|xml}              a request (form-encoded, with the client's api_key)
  GET  /open311/v2/tokens/{token}.{json|xml}        the request id a token became
  GET  /open311/v2/requests.{json|xml}              requests taken through this door (filters of the spec)
  GET  /open311/v2/requests/{id}.{json|xml}         one of them

A point outside every grid of the county is refused at once (400, the same lookup intake makes).
Each request is published as a CloudEvent (governance.open311_request_received) into
onegrid.intake with this service's broker user as user_id, and intake judges it as every event
(placing it in the county's grids by its point). Errors are the spec's arrays of code and
description. The reads are public, as the spec has them; only the door's own requests are
shown, never a reporter's phone or id. docs/open311.md has the walk-through.

Entrypoints only: onegrid.app.open311 decides and publishes, onegrid.domain.open311 has the rules.
"""

from __future__ import annotations

import json
import time

from nameko.web.handlers import http
from werkzeug.wrappers import Response

from onegrid.adapters.amqp.bus import BusBlocked
from onegrid.adapters.nameko.providers import Observable, RedisStore, TenantBus, TenantContext
from onegrid.adapters.redis.auth import RateLimiter, retry_after
from onegrid.adapters.redis.open311 import Clients, Requests
from onegrid.app.open311 import Door
from onegrid.domain import open311 as o
from onegrid.kernel import metrics
from onegrid.kernel.clock import CLOCK

BASE = "/open311/v2"
PUBLISH_TIMEOUT = 5.0  # seconds a request waits for the broker's confirm
ROOTS = {"services": "services", "requests": "service_requests", "tokens": "tokens", "definition": "service_definition"}


class Open311Service(Observable):
    name = "open311"
    ctx = TenantContext()
    store = RedisStore()
    bus = TenantBus(vouch=True)

    def _door(self) -> Door:
        tenant = self.ctx.tenant
        r = self.store.r
        clients, index = Clients(r, tenant.id), Requests(r, tenant.id)
        bus = self.bus.bounded(PUBLISH_TIMEOUT)  # a broker alarm: 503, never a hung citizen
        return Door(tenant, self.ctx.registry, self.store, clients, index, bus, CLOCK, self.ctx.locator)

    @http("GET", BASE + "/services.<string:fmt>")
    def services(self, request, fmt):
        return self._answer("services", fmt, request, lambda: o.services(self.ctx.registry.categories))

    @http("GET", BASE + "/services/<string:service_code>.<string:fmt>")
    def service_definition(self, request, service_code, fmt):
        return self._answer(
            "definition", fmt, request, lambda: o.definition(service_code, self.ctx.registry.categories)
        )

    @http("POST", BASE + "/requests.<string:fmt>")
    def post_request(self, request, fmt):
        def run():
            door = self._door()
            client = door.client(_api_key(request))
            tenant = self.ctx.tenant  # each client as a department on POST /events: a token bucket
            allowed, wait = RateLimiter(self.store.r, tenant.id).take(
                f"open311.{client}", 1, tenant.rate_per_department, tenant.burst_per_department
            )
            if not allowed:
                seconds = retry_after(wait)
                raise o.Open311Error(429, f"{client} sends too fast: try again in {seconds} s", seconds)
            return door.submit(request.form.to_dict(), client)

        return self._answer("requests", fmt, request, run)

    @http("GET", BASE + "/tokens/<string:token>.<string:fmt>")
    def token(self, request, token, fmt):
        return self._answer("tokens", fmt, request, lambda: self._door().token(token))

    @http("GET", BASE + "/requests.<string:fmt>")
    def get_requests(self, request, fmt):
        return self._answer("requests", fmt, request, lambda: self._door().requests(request.args.to_dict()))

    @http("GET", BASE + "/requests/<string:request_id>.<string:fmt>")
    def get_request(self, request, request_id, fmt):
        return self._answer("requests", fmt, request, lambda: self._door().request(request_id))

    def _answer(self, what: str, fmt: str, request, run) -> Response:
        started = time.perf_counter()
        xml = fmt == "xml"
        headers: dict[str, str] = {}
        try:
            if fmt not in o.FORMATS:
                raise o.Open311Error(404, f"format {fmt[:16]!r} not served; use .json or .xml")
            jurisdiction = request.args.get("jurisdiction_id")
            if jurisdiction not in (None, "", self.ctx.tenant.id):
                raise o.Open311Error(404, f"jurisdiction_id {jurisdiction[:64]!r} is not {self.ctx.tenant.id}")
            status, payload, root = 200, run(), ROOTS[what]
            if what == "requests" and request.method == "POST":
                status = 201
        except o.Open311Error as exc:
            status, payload, root = exc.code, exc.body(), "errors"
            if exc.code == 401:
                headers["WWW-Authenticate"] = 'Bearer realm="open311", error="invalid_request"'
            if exc.retry_after is not None:
                headers["Retry-After"] = str(exc.retry_after)
        except BusBlocked as exc:
            status, payload, root = 503, o.Open311Error(503, f"the bus is busy, try again: {exc}").body(), "errors"
            headers["Retry-After"] = "5"
        metrics.HANDLER_SECONDS.labels(self.name, what, str(status)).observe(time.perf_counter() - started)
        if xml:
            return Response(o.to_xml(root, payload), status=status, headers=headers, mimetype="text/xml")
        body = json.dumps(payload, ensure_ascii=False)
        return Response(body, status=status, headers=headers, mimetype="application/json")


def _api_key(request) -> str | None:
    """The spec's `api_key` form field (or query argument), or `Authorization: Bearer <api_key>`."""
    key = request.form.get("api_key") or request.args.get("api_key")
    if key:
        return key
    scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
