"""registry: the county's contracts as a schema registry, over HTTP.

Department integrators and onboarding read the event types and their versions, one version as
JSON Schema, the county's AsyncAPI document and how each version is used; they check an event
(`POST /validate`: intake's verdict, nothing recorded or published) and a proposed version
(`POST /contracts/<key>/compatibility`: the findings) and a proposed manifest on the county's
history (`POST /whatif/manifest`: onegrid.app.whatif, as `onegrid whatif manifest` runs it).
A tenant admin publishes a new version or the county's manifest and retires a version no
department still sends; the services reload on the `registry.changed` event this announces, so
nothing is rebuilt or restarted.

Entrypoints only: who calls and may they (People, onegrid.domain.access), then
onegrid.app.publishing decides, records and announces.
"""

from __future__ import annotations

from marshmallow import ValidationError
from nameko.web.handlers import http

from onegrid.adapters.amqp.history import NoHistory
from onegrid.adapters.calendar import CHINA
from onegrid.adapters.nameko.httpjson import asyncapi_response, body_of, respond
from onegrid.adapters.nameko.people import People
from onegrid.adapters.nameko.providers import (
    HistoryStreams,
    Observable,
    RedisStore,
    TenantBus,
    TenantContext,
)
from onegrid.adapters.redis.registry import Published
from onegrid.app.inputs import WhatIfQuery
from onegrid.app.publishing import Change, ContractRegistry
from onegrid.domain.access import MACHINE, Principal
from onegrid.domain.intake import RawEvent
from onegrid.domain.lifecycle import TransitionRefused
from onegrid.kernel import envelope as ce
from onegrid.kernel.clock import CLOCK


class RegistryService(Observable):
    name = "registry"
    ctx = TenantContext()
    store = RedisStore()
    bus = TenantBus()
    people = People()
    history = HistoryStreams()  # the county's history streams, for what-if

    @property
    def contracts(self) -> ContractRegistry:
        published = Published(self.store.r, self.ctx.tenant.id)
        return ContractRegistry(self.ctx.tenant.id, self.ctx.root, self.ctx.registry, published, self.bus, CLOCK, CHINA)

    # -- reads ---------------------------------------------------------------------------
    @http("GET", "/contracts")
    def list_contracts(self, request):
        def run():
            self.people.authorize(request, "registry.read", "contracts")
            return {**self.contracts.contracts(), "revision": self.ctx.revision}

        return respond(run)

    @http("GET", "/contracts/<string:key>/versions/<int:version>")
    def get_version(self, request, key, version):
        def run():
            self.people.authorize(request, "registry.read", f"{key}:{version}")
            return self.contracts.version(key, version)

        return respond(run)

    @http("GET", "/contracts/<string:key>/usage")
    def get_usage(self, request, key):
        def run():
            self.people.authorize(request, "registry.read", key)
            return self.contracts.usage(key)

        return respond(run)

    @http("GET", "/manifest")
    def get_manifest(self, request):
        def run():
            self.people.authorize(request, "registry.read", "manifest")
            return self.contracts.manifest()

        return respond(run)

    @http("GET", "/asyncapi.yaml")
    def asyncapi_yaml(self, request):
        return asyncapi_response(self.ctx.tenant, self.ctx.registry, "yaml")

    @http("GET", "/asyncapi.json")
    def asyncapi_json(self, request):
        return asyncapi_response(self.ctx.tenant, self.ctx.registry, "json")

    # -- checks --------------------------------------------------------------------------
    @http("POST", "/validate")
    def validate(self, request):
        """An event as POST /events takes it (binary `ce-` headers or structured), judged."""

        def run():
            who = self.people.authorize(request, "registry.check", "validate")
            ctype = (request.content_type or "").split(";")[0].strip()
            if ctype not in (ce.JSON, ce.STRUCTURED):
                raise ValidationError(f"send one event as {ce.JSON} (binary mode) or {ce.STRUCTURED}")
            attrs = [(k.lower(), v) for k, v in request.headers.items() if k.lower().startswith(ce.HEADER_PREFIX)]
            headers = {k: ce.from_http_header(v) for k, v in attrs}
            raw = RawEvent(request.get_data(), headers, ctype or None, None, "http")
            return self.contracts.validate(raw, who.scope if who.role == MACHINE else None)

        return respond(run)

    @http("POST", "/contracts/<string:key>/compatibility")
    def compatibility(self, request, key):
        def run():
            self.people.authorize(request, "registry.check", key)
            return self.contracts.compatibility(key, body_of(request))

        return respond(run)

    @http("POST", "/whatif/manifest")
    def whatif_manifest(self, request):
        """A proposed manifest (as PUT /manifest takes it) tried on the county's history: the
        current and proposed figures side by side. Nothing is published or changed."""

        def run():
            self.people.authorize(request, "registry.whatif", "manifest")
            query = WhatIfQuery().load({k: request.args[k] for k in ("days", "top") if k in request.args})
            try:
                result = self.contracts.whatif_manifest(body_of(request), self.history, query["days"])
            except NoHistory as missing:  # the county's streams, or this service's right to read them
                raise TransitionRefused(str(missing)) from None
            return {"tenant": self.ctx.tenant.id, "days": query["days"], **result.as_dict(query["top"])}

        return respond(run)

    # -- changes -------------------------------------------------------------------------
    @http("POST", "/contracts/<string:key>/versions")
    def publish_version(self, request, key):
        def run():
            who = self.people.authorize(request, "registry.publish", key)
            return self._changed(
                who, "registry.publish", self.contracts.publish_version(key, body_of(request), who.subject)
            )

        return respond(run)

    @http("PUT", "/manifest")
    def publish_manifest(self, request):
        def run():
            who = self.people.authorize(request, "registry.publish", "manifest")
            return self._changed(
                who, "registry.publish", self.contracts.publish_manifest(body_of(request), who.subject)
            )

        return respond(run)

    @http("POST", "/contracts/<string:key>/versions/<int:version>/retire")
    def retire(self, request, key, version):
        def run():
            who = self.people.authorize(request, "registry.retire", f"{key}:{version}")
            return self._changed(who, "registry.retire", self.contracts.retire(key, version, who.subject))

        return respond(run)

    def _changed(self, who: Principal, action: str, change: Change) -> dict:
        """Audited, and this service's own registry current at once."""
        target = change.detail.get("key", change.detail.get("tenant", ""))
        version = change.detail.get("version")
        self.people.audit.append(
            who.subject,
            who.role,
            action,
            f"{target}:{version}" if version else target,
            change.outcome,
            f"revision {change.revision}",
        )
        self.ctx.refresh(force=True)
        return change.as_dict()
