"""The RabbitMQ management HTTP API: vhosts (one per tenant) and permissions."""
from __future__ import annotations

import os
from urllib.parse import quote, urlparse

import requests


class Management:
    def __init__(self, url: str | None = None):
        url = url or os.environ.get("RABBITMQ_MANAGEMENT_URL", "http://guest:guest@127.0.0.1:15672")
        parsed = urlparse(url)
        self.base = f"{parsed.scheme}://{parsed.hostname}:{parsed.port or 15672}/api"
        self.auth = (parsed.username or "guest", parsed.password or "guest")
        self.user = self.auth[0]

    def _call(self, method: str, path: str, **kw):
        resp = requests.request(method, self.base + path, auth=self.auth, timeout=10, **kw)
        if resp.status_code >= 400 and not (method == "DELETE" and resp.status_code == 404):
            raise RuntimeError(f"RabbitMQ management {method} {path}: {resp.status_code} {resp.text[:200]}")
        return resp.json() if resp.content and resp.headers.get("content-type", "").startswith("application/json") else None

    def ensure_vhost(self, vhost: str, description: str = "") -> bool:
        """Create the vhost if missing and let the management user in; True if it was created."""
        existed = requests.get(f"{self.base}/vhosts/{quote(vhost, safe='')}", auth=self.auth, timeout=10).ok
        if not existed:
            self._call("PUT", f"/vhosts/{quote(vhost, safe='')}", json={"description": description})
        self._call("PUT", f"/permissions/{quote(vhost, safe='')}/{quote(self.user, safe='')}",
                   json={"configure": ".*", "write": ".*", "read": ".*"})
        return not existed

    def delete_vhost(self, vhost: str) -> None:
        self._call("DELETE", f"/vhosts/{quote(vhost, safe='')}")

    def queues(self, vhost: str) -> list[dict]:
        return self._call("GET", f"/queues/{quote(vhost, safe='')}") or []

    def overview(self) -> dict:
        return self._call("GET", "/overview") or {}
