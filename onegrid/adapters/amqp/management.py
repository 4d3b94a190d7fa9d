"""The RabbitMQ management HTTP API: vhosts (one per tenant), users, permissions, topic
permissions, limits, policies, and what is on the bus (queues, exchanges, bindings,
connections). Passwords go to the broker in the request body and nowhere else: an error
names the method and path, never the body."""

from __future__ import annotations

import time
from urllib.parse import quote, urlparse

import requests

from onegrid.kernel import settings


def _q(name: str) -> str:
    return quote(name, safe="")


class Management:
    def __init__(self, url: str | None = None):
        url = url or settings.management_url()
        parsed = urlparse(url)
        self.base = f"{parsed.scheme}://{parsed.hostname}:{parsed.port or 15672}/api"
        self.auth = (parsed.username or "guest", parsed.password or "guest")
        self.user = self.auth[0]
        self.http = requests.Session()

    def _call(self, method: str, path: str, timeout: float = 10, **kw):
        resp = self.http.request(method, self.base + path, auth=self.auth, timeout=timeout, **kw)
        if resp.status_code >= 400 and not (method == "DELETE" and resp.status_code == 404):
            raise RuntimeError(f"RabbitMQ management {method} {path}: {resp.status_code} {resp.text[:200]}")
        return (
            resp.json()
            if resp.content and resp.headers.get("content-type", "").startswith("application/json")
            else None
        )

    def _get(self, path: str, default=None):
        """GET, with `default` for a 404 (a vhost or user that does not exist)."""
        resp = self.http.get(self.base + path, auth=self.auth, timeout=10)
        if resp.status_code == 404:
            return default
        if resp.status_code >= 400:
            raise RuntimeError(f"RabbitMQ management GET {path}: {resp.status_code} {resp.text[:200]}")
        return resp.json()

    # -- vhosts --------------------------------------------------------------------------
    def vhosts(self) -> list[dict]:
        return self._call("GET", "/vhosts") or []

    def vhost(self, vhost: str) -> dict | None:
        return self._get(f"/vhosts/{_q(vhost)}")

    def ensure_vhost(self, vhost: str, description: str = "") -> bool:
        """Create the vhost if missing and let the management user in; True if it was created."""
        existed = self.vhost(vhost) is not None
        if not existed:
            self._call("PUT", f"/vhosts/{_q(vhost)}", json={"description": description})
        self._call(
            "PUT", f"/permissions/{_q(vhost)}/{_q(self.user)}", json={"configure": ".*", "write": ".*", "read": ".*"}
        )
        return not existed

    def put_vhost(self, vhost: str, description: str = "") -> None:
        self._call("PUT", f"/vhosts/{_q(vhost)}", json={"description": description})

    def delete_vhost(self, vhost: str, wait_s: float = 600) -> None:
        """Delete and wait until it is gone. The broker stops every queue first and deletes
        vhosts one at a time, so on a busy machine this outlasts the management API's own
        60 s request limit: it closes the connection and the deletion goes on; watch it."""
        try:
            self._call("DELETE", f"/vhosts/{_q(vhost)}", timeout=60)
            return
        except (requests.ConnectionError, requests.Timeout):
            pass
        deadline = time.monotonic() + wait_s
        while self.vhost(vhost) is not None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"RabbitMQ is still deleting vhost {vhost} after {wait_s:.0f}s")
            time.sleep(2)

    def vhost_limits(self, vhost: str) -> dict:
        found = self._get(f"/vhost-limits/{_q(vhost)}", default=[]) or []
        return dict(found[0]["value"]) if found else {}

    def set_vhost_limit(self, vhost: str, name: str, value: int) -> None:
        self._call("PUT", f"/vhost-limits/{_q(vhost)}/{_q(name)}", json={"value": value})

    def clear_vhost_limit(self, vhost: str, name: str) -> None:
        self._call("DELETE", f"/vhost-limits/{_q(vhost)}/{_q(name)}")

    # -- users ---------------------------------------------------------------------------
    def users(self) -> list[dict]:
        return self._call("GET", "/users") or []

    def get_user(self, name: str) -> dict | None:
        return self._get(f"/users/{_q(name)}")

    def put_user(self, name: str, *, password: str | None = None, tags: str = "", no_password: bool = False) -> None:
        """Create or update a user. Without a password (and without `no_password`) an
        existing user keeps the one it has; `no_password` leaves it unable to log in."""
        body: dict = {"tags": tags}
        existing = None if password is not None or no_password else self.get_user(name)
        if password is not None:
            body["password"] = password
        elif existing is None:
            body["password_hash"] = ""
        else:
            body["password_hash"] = existing["password_hash"]
            body["hashing_algorithm"] = existing.get("hashing_algorithm", "rabbit_password_hashing_sha256")
        self._call("PUT", f"/users/{_q(name)}", json=body)

    def delete_user(self, name: str) -> None:
        self._call("DELETE", f"/users/{_q(name)}")

    def permissions(self, vhost: str) -> dict[str, dict]:
        """user -> {configure, write, read} in `vhost`."""
        found = self._get(f"/vhosts/{_q(vhost)}/permissions", default=[]) or []
        return {p["user"]: {k: p[k] for k in ("configure", "write", "read")} for p in found}

    def set_permissions(self, vhost: str, user: str, configure: str, write: str, read: str) -> None:
        self._call(
            "PUT", f"/permissions/{_q(vhost)}/{_q(user)}", json={"configure": configure, "write": write, "read": read}
        )

    def clear_permissions(self, vhost: str, user: str) -> None:
        self._call("DELETE", f"/permissions/{_q(vhost)}/{_q(user)}")

    def topic_permissions(self, vhost: str) -> dict[str, dict[str, dict]]:
        """user -> exchange -> {write, read} in `vhost`."""
        found = self._get(f"/vhosts/{_q(vhost)}/topic-permissions", default=[]) or []
        out: dict[str, dict[str, dict]] = {}
        for p in found:
            out.setdefault(p["user"], {})[p["exchange"]] = {"write": p["write"], "read": p["read"]}
        return out

    def set_topic_permissions(self, vhost: str, user: str, exchange: str, write: str, read: str) -> None:
        self._call(
            "PUT",
            f"/topic-permissions/{_q(vhost)}/{_q(user)}",
            json={"exchange": exchange, "write": write, "read": read},
        )

    def clear_topic_permissions(self, vhost: str, user: str) -> None:
        self._call("DELETE", f"/topic-permissions/{_q(vhost)}/{_q(user)}")

    def user_limits(self) -> dict[str, dict]:
        """user -> {limit: value}, for every user with a limit."""
        return {u["user"]: dict(u["value"]) for u in self._get("/user-limits", default=[]) or []}

    def set_user_limit(self, user: str, name: str, value: int) -> None:
        self._call("PUT", f"/user-limits/{_q(user)}/{_q(name)}", json={"value": value})

    # -- policies ------------------------------------------------------------------------
    def policies(self, vhost: str) -> dict[str, dict]:
        found = self._get(f"/policies/{_q(vhost)}", default=[]) or []
        return {p["name"]: {k: p[k] for k in ("pattern", "apply-to", "definition", "priority")} for p in found}

    def put_policy(self, vhost: str, name: str, policy: dict) -> None:
        self._call("PUT", f"/policies/{_q(vhost)}/{_q(name)}", json=policy)

    def delete_policy(self, vhost: str, name: str) -> None:
        self._call("DELETE", f"/policies/{_q(vhost)}/{_q(name)}")

    # -- what is on the bus --------------------------------------------------------------
    def queues(self, vhost: str) -> list[dict]:
        return self._get(f"/queues/{_q(vhost)}", default=[]) or []

    def exchanges(self, vhost: str) -> list[dict]:
        return self._get(f"/exchanges/{_q(vhost)}", default=[]) or []

    def bindings(self, vhost: str) -> list[dict]:
        return self._get(f"/bindings/{_q(vhost)}", default=[]) or []

    def connections(self, vhost: str | None = None) -> list[dict]:
        path = f"/vhosts/{_q(vhost)}/connections" if vhost else "/connections"
        return self._get(path, default=[]) or []

    def close_connections(self, user: str, reason: str) -> int:
        """Close every connection of `user` (after a rotation or a revocation)."""
        closed = 0
        for conn in self._get(f"/connections/username/{_q(user)}", default=[]) or []:
            self._call("DELETE", f"/connections/{_q(conn['name'])}", headers={"X-Reason": reason})
            closed += 1
        return closed

    def overview(self) -> dict:
        return self._call("GET", "/overview") or {}
