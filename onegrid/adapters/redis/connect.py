"""The one way OneGrid makes a Redis client: on REDIS_URL, or, when REDIS_SENTINELS is set,
on whichever Redis the Sentinels name as the primary of REDIS_MASTER_NAME, so the services
follow a failover. REDIS_URL then still gives the database, user and password."""

from __future__ import annotations

from urllib.parse import unquote, urlparse

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from onegrid.kernel import settings

SENTINEL_TIMEOUT_S = 1.0  # a Sentinel that does not answer in a second is skipped for the next
# a data connection's reads: well over a WAIT for the replicas (REDIS_WAIT_MS) and a loaded
# node's slow answer, yet a primary that hangs (or vanished without a reset) fails the handler
# in seconds, and the failure policy retries it against whichever primary the Sentinels name
DATA_TIMEOUT_S = 10.0


def credentials(url: str) -> dict:
    """The database, user and password REDIS_URL names (its host is the Sentinels' business)."""
    parts = urlparse(url)
    found: dict = {"db": int(parts.path.lstrip("/") or 0)}
    if parts.username:
        found["username"] = unquote(parts.username)
    if parts.password:
        found["password"] = unquote(parts.password)
    return found


def client(url: str, decode_responses: bool = False, max_connections: int = 64) -> redis.Redis:
    """A client on its own pool. Without Sentinels a blocking pool: a burst of workers waits for a
    connection, never fails. With Sentinels, redis-py's master pool: every new connection asks the
    Sentinels where the primary is, and a connection to a demoted one (READONLY) is dropped with
    a ConnectionError, so the failure policy retries the message against the new primary."""
    sentinels = settings.redis_sentinels()
    if not sentinels:
        pool = redis.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=10, decode_responses=decode_responses
        )
        return redis.Redis(connection_pool=pool)
    auth = credentials(url)
    # the Sentinels share the data password (the rendered sentinel.conf sets the same one)
    # the keyword arguments outside sentinel_kwargs are the data connections': the Sentinels'
    # one-second timeout there made every WAIT or slow answer near a second a TimeoutError
    watch = Sentinel(
        list(sentinels),
        socket_timeout=DATA_TIMEOUT_S,
        socket_connect_timeout=DATA_TIMEOUT_S,
        socket_keepalive=True,
        sentinel_kwargs={
            "socket_timeout": SENTINEL_TIMEOUT_S,
            "socket_connect_timeout": SENTINEL_TIMEOUT_S,
            "password": auth.get("password"),
        },
    )
    return watch.master_for(
        settings.redis_master_name(), decode_responses=decode_responses, max_connections=max_connections * 4, **auth
    )


def probe_client(url: str, timeout: float) -> redis.Redis:
    """Readiness's own client: it answers within `timeout` or fails, never retries. With
    Sentinels it is on the primary they name, the one the handlers use: REDIS_URL's host is
    then only a node of the set, a replica or, after a failover, a dead old primary."""
    quick = {"socket_timeout": timeout, "socket_connect_timeout": timeout, "retry": Retry(NoBackoff(), 0)}
    sentinels = settings.redis_sentinels()
    if not sentinels:
        return redis.Redis.from_url(url, max_connections=4, **quick)
    auth = credentials(url)
    asking = {"socket_timeout": timeout, "socket_connect_timeout": timeout, "password": auth.get("password")}
    watch = Sentinel(list(sentinels), sentinel_kwargs=asking, **quick)
    return watch.master_for(settings.redis_master_name(), max_connections=4, **auth)
