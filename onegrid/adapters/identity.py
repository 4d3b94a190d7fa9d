"""People's bearer tokens: JWTs (PyJWT), from the county's OIDC provider or OneGrid's own issuer.

The embedded issuer (a county without an identity provider, and the demo) keeps everything
in the county's Redis key space:

  og:{t}:idp:keys          hash  kid -> {private (PEM), public (JWK), created, verify_until}
  og:{t}:idp:current       string  the kid that signs
  og:{t}:idp:people        hash  subject -> {role, scope, name, added_at}
  og:{t}:idp:revoked:jti   hash  jti -> revoked at (a token revoked by itself)
  og:{t}:idp:revoked:sub   hash  subject -> revoked at (every token issued before it)

Rotating the key signs with a new one at once; the old public key stays in the JWKS (and
verifies) until the longest token it could have signed expires. Revocation is checked on
every request, so it takes effect immediately. A county with its own provider names it in
its manifest (`identity:` issuer, audience, jwks_url); keys come from its JWKS (PyJWKClient,
cached), the role and scope from two claims.
"""

from __future__ import annotations

import json
import time
import uuid

import jwt
import redis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from onegrid.adapters.redis.replies import text
from onegrid.domain.access import Principal, check_scope
from onegrid.kernel.tenant import Tenant

ALGORITHM = "ES256"
AUDIENCE = "onegrid"
MAX_TTL = 12 * 3600  # the longest token the embedded issuer signs (a working day and a half)
DEFAULT_TTL = 8 * 3600
JWKS_COOLDOWN = 5.0  # seconds between refetches of a county provider's keys for an unknown kid
ISSUER_BASE = "https://onegrid.invalid/idp/"  # + tenant id: one issuer per county


class Unauthenticated(Exception):
    """The token is missing, malformed, expired, not for us, or revoked."""


def embedded_issuer(tenant_id: str) -> str:
    return ISSUER_BASE + tenant_id


class EmbeddedIssuer:
    """One county's people, keys and tokens."""

    def __init__(self, client: redis.Redis, tenant: Tenant):
        self.r, self.tenant = client, tenant
        self.issuer = embedded_issuer(tenant.id)
        self.k = f"og:{{{tenant.id}}}:idp:"

    # -- keys ------------------------------------------------------------------------------
    def rotate_key(self) -> str:
        """A new signing key; the old ones stay verifiable for MAX_TTL, older ones are dropped."""
        now = time.time()
        private = ec.generate_private_key(ec.SECP256R1())
        kid = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime(now))}-{uuid.uuid4().hex[:8]}"
        jwk = json.loads(ECAlgorithm.to_jwk(private.public_key()))
        jwk.update(kid=kid, use="sig", alg=ALGORITHM)
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        current = _opt(self.r.get(self.k + "current"))
        pipe = self.r.pipeline()
        for old_kid, raw in self.r.hgetall(self.k + "keys").items():
            key = json.loads(raw)
            if key.get("verify_until") and key["verify_until"] < now:
                pipe.hdel(self.k + "keys", old_kid)
            elif text(old_kid) == current:
                key["verify_until"] = now + MAX_TTL
                pipe.hset(self.k + "keys", old_kid, json.dumps(key))
        pipe.hset(self.k + "keys", kid, json.dumps({"private": pem, "public": jwk, "created": now}))
        pipe.set(self.k + "current", kid)
        pipe.execute()
        return kid

    def _keys(self) -> dict[str, dict]:
        return {text(kid): json.loads(raw) for kid, raw in self.r.hgetall(self.k + "keys").items()}

    def jwks(self) -> dict:
        now = time.time()
        return {
            "keys": [
                k["public"] for k in self._keys().values() if not k.get("verify_until") or k["verify_until"] >= now
            ]
        }

    def openid_configuration(self, base_url: str) -> dict:
        return {
            "issuer": self.issuer,
            "jwks_uri": base_url.rstrip("/") + "/.well-known/jwks.json",
            "id_token_signing_alg_values_supported": [ALGORITHM],
            "subject_types_supported": ["public"],
            "response_types_supported": ["id_token"],
            "claims_supported": ["sub", "role", "scope", "name", "tenant", "jti", "iat", "exp"],
        }

    # -- people ----------------------------------------------------------------------------
    def add(self, subject: str, role: str, scope: str = "", name: str = "") -> dict:
        problem = check_scope(self.tenant, role, scope)
        if problem:
            raise ValueError(problem)
        if not subject or len(subject) > 64 or not subject.replace("-", "").replace("_", "").isalnum():
            raise ValueError("a person's id is 1-64 letters, digits, - and _")
        person = {"role": role, "scope": scope, "name": name, "added_at": time.time()}
        self.r.hset(self.k + "people", subject, json.dumps(person))
        return {"subject": subject, **person}

    def people(self) -> list[dict]:
        rows = [{"subject": text(s), **json.loads(v)} for s, v in self.r.hgetall(self.k + "people").items()]
        revoked = {text(s): float(at) for s, at in self.r.hgetall(self.k + "revoked:sub").items()}
        return sorted(
            ({**p, "revoked": revoked.get(p["subject"], 0) >= p["added_at"]} for p in rows), key=lambda p: p["subject"]
        )

    def person(self, subject: str) -> dict | None:
        raw = self.r.hget(self.k + "people", subject)
        return json.loads(raw) if raw else None

    def token(self, subject: str, ttl: int = DEFAULT_TTL, audience: str = AUDIENCE) -> str:
        """A signed token for a person on record (a revoked person gets one again only when added anew)."""
        person = self.person(subject)
        if person is None:
            raise LookupError(f"no person {subject!r} in {self.tenant.id}; `onegrid people add` first")
        if not 0 < ttl <= MAX_TTL:
            raise ValueError(f"a token lives 1 to {MAX_TTL} seconds")
        kid = _opt(self.r.get(self.k + "current")) or self.rotate_key()
        key = self._keys()[kid]
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": audience,
            "sub": subject,
            "tenant": self.tenant.id,
            "role": person["role"],
            "scope": person["scope"],
            "name": person["name"],
            "iat": now,
            "nbf": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, key["private"], algorithm=ALGORITHM, headers={"kid": kid})

    def revoke(self, subject: str | None = None, jti: str | None = None) -> None:
        """Every token of `subject` issued up to now, or the one token `jti`; the person stays
        on record (a later `add` gives them tokens again)."""
        now = time.time()
        if subject:
            self.r.hset(self.k + "revoked:sub", subject, now)
        if jti:
            self.r.hset(self.k + "revoked:jti", jti, now)

    # -- verification ----------------------------------------------------------------------
    def verify(self, token: str) -> Principal:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"not a JWT: {exc}") from None
        key = self._keys().get(str(kid)) if kid else None
        if key is None or (key.get("verify_until") and key["verify_until"] < time.time()):
            raise Unauthenticated("signed with a key this county's issuer does not have (wrong county, or retired)")
        claims = _decode(token, ECAlgorithm.from_jwk(json.dumps(key["public"])), self.issuer, AUDIENCE)
        if claims.get("tenant") != self.tenant.id:
            raise Unauthenticated(f"a token for tenant {claims.get('tenant')!r}, not {self.tenant.id}")
        pipe = self.r.pipeline()
        pipe.hget(self.k + "revoked:jti", str(claims.get("jti")))
        pipe.hget(self.k + "revoked:sub", str(claims["sub"]))
        by_jti, by_sub = pipe.execute()
        if by_jti is not None or (by_sub is not None and float(by_sub) >= float(claims["iat"])):
            raise Unauthenticated("this token has been revoked")
        return Principal(
            str(claims["sub"]),
            str(claims.get("role", "")),
            str(claims.get("scope") or ""),
            str(claims.get("name") or ""),
        )


def _opt(raw) -> str:
    return text(raw) if raw is not None else ""


def _decode(token: str, key, issuer: str, audience: str) -> dict:
    try:
        return jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM, "RS256", "PS256", "EdDSA"],
            audience=audience,
            issuer=issuer,
            leeway=30,
            options={"require": ["exp", "iat", "sub", "iss", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("the token has expired") from None
    except jwt.InvalidAudienceError:
        raise Unauthenticated(f"the token is not for this audience ({audience})") from None
    except jwt.InvalidIssuerError:
        raise Unauthenticated(f"the token is not from this county's issuer ({issuer})") from None
    except jwt.InvalidSignatureError:
        raise Unauthenticated("the token's signature does not verify") from None
    except jwt.PyJWTError as exc:
        raise Unauthenticated(f"invalid token: {exc}") from None


class ExternalIssuer:
    """A county's own OIDC provider: keys from its JWKS (cached by PyJWKClient)."""

    def __init__(self, client: redis.Redis, tenant: Tenant):
        assert tenant.identity is not None
        self.idp, self.tenant, self.r = tenant.identity, tenant, client
        # The JWK set is cached for 5 minutes, so a key the provider withdraws stops verifying
        # within that (no per-kid cache: PyJWT's never expires, a withdrawn key would verify
        # until the process restarts). A token naming a kid not in the cached set refetches
        # at most once per JWKS_COOLDOWN: a rotated key is picked up within seconds, and
        # tokens with made-up kids cannot make every request a fetch from the provider.
        self.jwks_client = jwt.PyJWKClient(
            self.idp.jwks_url, cache_keys=False, lifespan=300, timeout=5, cooldown_duration=JWKS_COOLDOWN
        )
        self.k = f"og:{{{tenant.id}}}:idp:"

    def verify(self, token: str) -> Principal:
        try:
            key = self.jwks_client.get_signing_key_from_jwt(token).key
        except jwt.PyJWKClientConnectionError as exc:
            raise Unauthenticated(f"the identity provider's keys could not be fetched: {exc}") from None
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"no key of the identity provider verifies this token: {exc}") from None
        claims = _decode(token, key, self.idp.issuer, self.idp.audience)
        if self.r.hget(self.k + "revoked:jti", str(claims.get("jti"))) is not None:
            raise Unauthenticated("this token has been revoked")
        role, scope = str(claims.get(self.idp.role_claim) or ""), str(claims.get(self.idp.scope_claim) or "")
        problem = check_scope(self.tenant, role, scope)
        if problem:
            raise Unauthenticated(f"the token's role and scope do not fit this county: {problem}")
        return Principal(str(claims["sub"]), role, scope, str(claims.get("name") or ""))


def issuer_of(client: redis.Redis, tenant: Tenant) -> EmbeddedIssuer | ExternalIssuer:
    return ExternalIssuer(client, tenant) if tenant.identity else EmbeddedIssuer(client, tenant)
