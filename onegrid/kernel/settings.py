"""Where things are and how the bus is shaped: the only reader of the environment in onegrid/
and services/. Read each time (tests and testcontainers set it), defaulting to the local
services; a variable's default lives here and nowhere else."""

import os

from onegrid.kernel import topology

QUEUE_TYPES = ("quorum", "classic")
# the channel endpoints a deployment may override over the tenant manifest's (NOTIFY_<name>)
NOTIFY_OVERRIDES = ("WEBHOOK_URL", "SMS_URL", "SMTP_HOST", "SMTP_PORT", "HOTLINE_URL")


def amqp_base() -> str:
    return os.environ.get("ONEGRID_AMQP_BASE", "amqp://guest:guest@127.0.0.1:5672/")


def management_url() -> str:
    return os.environ.get("RABBITMQ_MANAGEMENT_URL", "http://guest:guest@127.0.0.1:15672")


def redis_url() -> str:
    return os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def contracts_dir() -> str:
    return os.environ.get("CONTRACTS_DIR", "contracts")


def time_scale() -> float:
    """Deadlines divided by this (ONEGRID_TIME_SCALE): > 1 compresses time for the demo and
    tests, so a 10-minute acknowledge deadline passes in a second at 600. 1 in production."""
    return float(os.environ.get("ONEGRID_TIME_SCALE", "1"))


def archive_after_s() -> float:
    """How long a closed case stays in its open form before supervision folds it into the
    compact archive (ONEGRID_ARCHIVE_AFTER_S, seconds; default a week). Every read answers
    either way; the archive is what keeps Redis small once cases pile up."""
    return float(os.environ.get("ONEGRID_ARCHIVE_AFTER_S", str(7 * 86400)))


def queue_type() -> str:
    """Queue type of the durable queues (ONEGRID_QUEUE_TYPE): quorum (replicated; the default)
    or classic. Set at declaration: changing it means new queues (see docs/operations.md)."""
    kind = os.environ.get("ONEGRID_QUEUE_TYPE", topology.DEFAULT_QUEUE_TYPE)
    if kind not in QUEUE_TYPES:
        raise ValueError(f"ONEGRID_QUEUE_TYPE must be quorum or classic, not {kind!r}")
    return kind


def outage_retry_s() -> float:
    """How long a message failing for an outage (Redis or the broker unreachable, stalled or
    loading, no replica taking a write) is retried at the last tier's pace once its tiers are
    spent, counted from its first failure, before it is dead-lettered (OUTAGE_RETRY_S)."""
    return float(os.environ.get("OUTAGE_RETRY_S", "600"))


def retry_delays_ms() -> tuple[int, ...]:
    """Backoff before each retry of a failed message (RETRY_DELAYS_MS, milliseconds, comma
    separated); after the last, the dead-letter queue."""
    raw = os.environ.get("RETRY_DELAYS_MS")
    if raw is None:
        return topology.DEFAULT_RETRY_DELAYS_MS
    return tuple(int(x) for x in raw.split(",") if x.strip())


def nameko_config() -> str:
    """The nameko config file `onegrid serve` runs a service with (ONEGRID_CONFIG)."""
    return os.environ.get("ONEGRID_CONFIG", "config.yml")


def notify_override(name: str) -> str | None:
    """A deployment's override of a notification channel's endpoint in the tenant manifest:
    NOTIFY_WEBHOOK_URL, NOTIFY_SMS_URL, NOTIFY_SMTP_HOST, NOTIFY_SMTP_PORT or NOTIFY_HOTLINE_URL (`name` is the part
    after NOTIFY_); None when not set."""
    if name not in NOTIFY_OVERRIDES:
        raise KeyError(f"no notification override {name!r}; one of {', '.join(NOTIFY_OVERRIDES)}")
    return os.environ.get(f"NOTIFY_{name}")


def secret(variable: str) -> str | None:
    """The value of a variable a tenant manifest names for a secret (a webhook's signing key, an
    SMTP user or password, an SMS gateway's token): a manifest says which variable, never the
    value. None when not set."""
    return os.environ.get(variable)


def metrics_address() -> tuple[str, int] | None:
    """METRICS_ADDRESS (`host:port`): /metrics on a port of its own, which no Ingress routes
    (Kubernetes sets 0.0.0.0:9100); unset, /metrics is served on the HTTP port as before."""
    raw = os.environ.get("METRICS_ADDRESS", "").strip()
    if not raw:
        return None
    host, _, port = raw.rpartition(":")
    if not port.isdigit():
        raise ValueError(f"METRICS_ADDRESS must be host:port, not {raw!r}")
    return host or "0.0.0.0", int(port)


def redis_sentinels() -> tuple[tuple[str, int], ...]:
    """The Sentinels that know the county's Redis primary (REDIS_SENTINELS, host:port comma
    separated). Empty: no Sentinel, REDIS_URL is the Redis."""
    raw = os.environ.get("REDIS_SENTINELS", "")
    found = []
    for item in (x.strip() for x in raw.split(",")):
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"REDIS_SENTINELS must be host:port,host:port…, not {item!r}")
        found.append((host, int(port)))
    return tuple(found)


def redis_master_name() -> str:
    """The name the Sentinels monitor the primary under (REDIS_MASTER_NAME)."""
    return os.environ.get("REDIS_MASTER_NAME", "onegrid")


def redis_wait_replicas() -> tuple[int, int]:
    """(replicas, milliseconds): a case-making write is acknowledged only once this many replicas
    have it, waiting at most this long (REDIS_WAIT_REPLICAS, REDIS_WAIT_MS). Replication is
    asynchronous, so without it a failover can lose a write the old primary acknowledged.
    0 replicas (the default, a single Redis): no wait."""
    return int(os.environ.get("REDIS_WAIT_REPLICAS", "0")), int(os.environ.get("REDIS_WAIT_MS", "2000"))


def evidence_store() -> dict:
    """Where the command-centre page keeps evidence photos: an S3-compatible bucket
    (ONEGRID_EVIDENCE_S3_ENDPOINT, ONEGRID_EVIDENCE_BUCKET, credentials in AWS_ACCESS_KEY_ID /
    AWS_SECRET_ACCESS_KEY as boto3 reads them), else a local directory (ONEGRID_EVIDENCE_DIR)."""
    return {
        "s3_endpoint": os.environ.get("ONEGRID_EVIDENCE_S3_ENDPOINT", ""),
        "bucket": os.environ.get("ONEGRID_EVIDENCE_BUCKET", "onegrid-evidence"),
        "local_dir": os.environ.get("ONEGRID_EVIDENCE_DIR", "run/evidence"),
    }


def map_tiles() -> str:
    """A county's own tile server for the page's map (ONEGRID_MAP_TILES, a Leaflet URL template
    such as https://tiles.county.example/{z}/{x}/{y}.png); empty: no tiles, the grids alone."""
    return os.environ.get("ONEGRID_MAP_TILES", "")
