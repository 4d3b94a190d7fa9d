"""Who is calling, and may they: the People dependency of every service with people-facing
HTTP routes. A request's bearer token is a person's JWT (onegrid.adapters.identity) or a
department system's token (onegrid.adapters.redis.auth); onegrid.domain.access decides; every
refusal, and every read of personal data, goes into the county's audit stream."""

from __future__ import annotations

from nameko.extensions import DependencyProvider

from onegrid.adapters.identity import Unauthenticated, issuer_of
from onegrid.adapters.nameko.providers import TenantContext, redis_client
from onegrid.adapters.redis.audit import Audit
from onegrid.adapters.redis.auth import TOKEN_PREFIX, Forbidden, Tokens, Unauthorized
from onegrid.domain.access import (
    MACHINE,
    Principal,
    Resource,
    case_resource,
    check_case_id,
    decide,
    has_personal_data,
    redact,
)

ANYWHERE = Resource()  # a route with no case or department: the role alone decides


class People(DependencyProvider):
    def setup(self):
        self.url = self.container.config.get("REDIS_URL", "redis://127.0.0.1:6379/0")

    def start(self):
        self.ctx = next(d for d in self.container.dependencies if isinstance(d, TenantContext))
        self.client = redis_client(self.url, max_connections=16)  # follows a Sentinel failover
        self.issuer = issuer_of(self.client, self.tenant)
        self.tokens = Tokens(self.client, self.tenant.id)
        self.audit = Audit(self.client, self.tenant.id)

    def stop(self):
        self.client.close()

    @property
    def tenant(self):
        """The county as loaded now (a published manifest changes it without a restart)."""
        return self.ctx.tenant

    def get_dependency(self, worker_ctx):
        return self

    def who(self, request, action: str, target: str, session: str | None = None) -> Principal:
        """The authenticated caller; Unauthorized (audited) when there is none or it is bad.
        `session`: a browser's session cookie (the person's JWT, onegrid.adapters.web.session),
        used when the request has no Authorization header."""
        header = (request.headers.get("Authorization") or "").strip()
        if not header and session:
            header = f"Bearer {session}"
        try:
            return self._principal(header)
        except Unauthorized as exc:
            self.audit.append("-", "-", action, target, "unauthenticated", exc.detail)
            raise

    def _principal(self, header: str) -> Principal:
        # always, whatever the manifest's trust_unauthenticated_http says: that flag is about
        # machines' events (intake's POST /events), never about people reading cases
        if not header:
            raise Unauthorized("unauthenticated", "send Authorization: Bearer <token> (a person's JWT)")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or len(token) > 8192:
            raise Unauthorized("invalid_token", "the Authorization header must be `Bearer <token>`")
        if token.startswith(TOKEN_PREFIX):  # a department's system
            verdict = self.tokens.verify(token)
            if verdict.department is None:
                raise Unauthorized("invalid_token", verdict.problem or "unknown token")
            return Principal(verdict.department, MACHINE, verdict.department)
        try:
            return self.issuer.verify(token)
        except Unauthenticated as exc:
            raise Unauthorized("invalid_token", str(exc)) from None

    def allow(self, who: Principal, action: str, target: str, resource: Resource = ANYWHERE) -> Principal:
        """Forbidden (audited) unless the policy allows `who` to do `action` on `resource`."""
        decision = decide(self.tenant, who, action, resource)
        if not decision.allowed:
            self.audit.append(who.subject, who.role, action, target, "refused", decision.reason)
            raise Forbidden(decision.reason)
        return who

    def authorize(self, request, action: str, target: str, resource: Resource = ANYWHERE) -> Principal:
        return self.allow(self.who(request, action, target), action, target, resource)

    def read_case(self, request, case_id: str, load) -> dict:
        """GET /cases/<id>: who asks, the case (`load`, after its id is checked), may they, and
        what they see."""
        who = self.who(request, "case.read", case_id)
        case = load(check_case_id(case_id))
        self.allow(who, "case.read", case_id, case_resource(case))
        return self.show(who, "case.read", case)

    def show(self, who: Principal, action: str, case: dict) -> dict:
        """A case as `who` may see it; a read of personal data is audited."""
        if has_personal_data(case):  # people and department systems
            self.audit.append(who.subject, who.role, action, str(case.get("id", "")), "read", "personal data")
        return redact(who, case)

    def show_page(self, who: Principal, action: str, cases: list[dict]) -> list[dict]:
        """A listing as `who` may see it; one audit entry for the page (its personal cases' ids)."""
        personal = [str(c.get("id", "")) for c in cases if has_personal_data(c)]
        if personal:
            target = ",".join(personal[:20]) + (f",+{len(personal) - 20}" if len(personal) > 20 else "")
            self.audit.append(
                who.subject, who.role, action, target, "read", f"personal data of {len(personal)} case(s)"
            )
        return [redact(who, c) for c in cases]
