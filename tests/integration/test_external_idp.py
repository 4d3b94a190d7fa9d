"""A county that signs its people in with its own OIDC provider (the manifest's `identity:`),
on the running services: the provider is a small HTTP server on loopback (plain http, which
the manifest allows for loopback hosts only) serving its discovery document and its JWKS, with
RSA keys made here with cryptography. Its tokens with the right issuer, audience and role
claims are let in; wrong audience, wrong issuer, expired, an unknown key id or a foreign
signature are 401; a role that does not fit is 403; a key the provider rotates to is picked
up without restarting anything."""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from onegrid.adapters.identity import JWKS_COOLDOWN
from onegrid.domain import access
from tests.conftest import County
from tests.support import wait_until

pytestmark = pytest.mark.integration
AUDIENCE = "onegrid-test"


class Provider:
    """The county's identity provider: a discovery document, a JWKS, and the keys that sign."""

    def __init__(self):
        self.keys: dict[str, rsa.RSAPrivateKey] = {}
        self.fetches = {"jwks": 0, "discovery": 0}
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                if self.path == "/.well-known/openid-configuration":
                    provider.fetches["discovery"] += 1
                    body = {
                        "issuer": provider.issuer,
                        "jwks_uri": provider.jwks_url,
                        "id_token_signing_alg_values_supported": ["RS256"],
                    }
                elif self.path == "/jwks.json":
                    provider.fetches["jwks"] += 1
                    body = provider.jwks()
                else:
                    self.send_error(404)
                    return
                raw = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.issuer, self.jwks_url = self.base, self.base + "/jwks.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def rotate(self) -> str:
        """A new signing key, published at once (older ones stay published)."""
        kid = f"k-{uuid.uuid4().hex[:8]}"
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return kid

    def jwks(self) -> dict:
        out = []
        for kid, key in self.keys.items():
            jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
            out.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": out}

    def token(self, kid: str, key=None, ttl: int = 600, **claims) -> str:
        now = int(time.time())
        body = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": "op-0001",
            "onegrid_role": access.OPERATOR,
            "iat": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
            **claims,
        }
        return jwt.encode(body, key or self.keys[kid], algorithm="RS256", headers={"kid": kid})

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def provider():
    p = Provider()
    p.rotate()
    yield p
    p.close()


@pytest.fixture(scope="module")
def county(tmp_path_factory, provider):
    # the operator connects the county the way docs/onboarding.md says: from the provider's discovery
    conf = requests.get(provider.base + "/.well-known/openid-configuration", timeout=5).json()
    c = County(
        tmp_path_factory.mktemp("idp"),
        services=("supervision",),
        manifest={"identity": {"issuer": conf["issuer"], "audience": AUDIENCE, "jwks_url": conf["jwks_uri"]}},
    )
    assert c.tenant.identity is not None and c.tenant.identity.jwks_url == provider.jwks_url
    c.services.start()
    yield c
    c.close()


def _cases(county, token: str | None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(f"{county.services.url('supervision')}/cases", params={"limit": 1}, headers=headers, timeout=10)


def test_the_providers_tokens_are_let_in_by_their_role(county, provider):
    kid = next(iter(provider.keys))
    r = _cases(county, provider.token(kid))
    assert r.status_code == 200 and "cases" in r.json(), r.text
    assert provider.fetches["jwks"] >= 1  # the keys came from the provider, not from OneGrid's own issuer
    # the role comes from the provider's claim: a citizen does not list the county's cases
    r = _cases(county, provider.token(kid, sub="citizen-1", onegrid_role=access.CITIZEN))
    assert r.status_code == 403 and "citizen" in r.json()["error"], r.text
    # a role and scope that do not fit the county are not a person of it
    r = _cases(county, provider.token(kid, onegrid_role=access.GRID_WORKER, onegrid_scope="no-such-grid"))
    assert r.status_code == 401 and "do not fit" in r.json()["detail"], r.text
    assert _cases(county, None).status_code == 401


def test_bad_tokens_from_or_posing_as_the_provider_are_refused(county, provider):
    kid = next(iter(provider.keys))
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for name, token, says in [
        ("wrong audience", provider.token(kid, aud="somebody-else"), "audience"),
        ("wrong issuer", provider.token(kid, iss="https://evil.example"), "issuer"),
        ("expired", provider.token(kid, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600), "expired"),
        ("unknown kid", provider.token("k-nobody", key=stranger), "no key"),
        ("foreign signature", provider.token(kid, key=stranger), "signature"),
    ]:
        r = _cases(county, token)
        assert r.status_code == 401, (name, r.text)
        assert r.json()["error"] == "invalid_token" and says in r.json()["detail"], (name, r.json())


def test_a_key_the_provider_rotates_to_is_picked_up(county, provider):
    old = next(iter(provider.keys))
    assert _cases(county, provider.token(old)).status_code == 200
    fetched = provider.fetches["jwks"]
    new = provider.rotate()  # the provider signs with a new key and publishes it
    # an unknown kid makes the service fetch the JWKS again, at most once per cooldown (the
    # previous test's unknown kid may have just used it): accepted within the cooldown
    started = time.monotonic()
    r = wait_until(
        lambda: (r := _cases(county, provider.token(new))).status_code == 200 and r,
        timeout=JWKS_COOLDOWN + 5,
        interval=0.5,
        what="the rotated key accepted",
    )
    assert "cases" in r.json() and time.monotonic() - started <= JWKS_COOLDOWN + 5
    assert provider.fetches["jwks"] > fetched
    assert _cases(county, provider.token(old)).status_code == 200  # the old key is still published
