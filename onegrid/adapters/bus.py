"""Publishing on a tenant's bus with publisher confirms: a publish returns once the broker
has taken responsibility, and `mandatory` turns "no queue bound" into an error, not a loss."""
from __future__ import annotations

import json
from urllib.parse import quote, unquote, urlparse

from nameko.amqp.publish import Publisher

from onegrid import envelope as ce
from onegrid.adapters import topology


def amqp_uri(base: str, tenant: str) -> str:
    """The tenant's vhost on the broker at `base` (e.g. amqp://guest:guest@127.0.0.1:5672/)."""
    return base.rstrip("/") + "/" + quote(tenant, safe="")


def vhost_of(uri: str) -> str:
    return unquote(urlparse(uri).path.lstrip("/")) or "/"


class Bus:
    def __init__(self, uri: str):
        self.uri = uri
        self._publisher = Publisher(uri, use_confirms=True, mandatory=True, serializer=None)

    def publish(self, env: ce.Envelope, data, exchange=topology.EVENTS, routing_key: str | None = None,
                mandatory: bool = True) -> None:
        body = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
        self.publish_raw(body, env.headers(), ce.JSON, exchange, routing_key or env.type, mandatory)

    def publish_raw(self, body: bytes, headers: dict, content_type: str | None, exchange, routing_key: str,
                    mandatory: bool = True) -> None:
        self._publisher.publish(body, exchange=exchange, routing_key=routing_key, headers=headers,
                                content_type=content_type or ce.JSON, content_encoding="binary",
                                mandatory=mandatory, retry=True)
