"""Where things are: read from the environment each time (tests and testcontainers set it),
defaulting to the local services."""
import os


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
