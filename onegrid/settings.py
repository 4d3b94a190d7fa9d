"""Where things are, from the environment, defaulting to the local services."""
import os

AMQP_BASE = os.environ.get("ONEGRID_AMQP_BASE", "amqp://guest:guest@127.0.0.1:5672/")
MANAGEMENT_URL = os.environ.get("RABBITMQ_MANAGEMENT_URL", "http://guest:guest@127.0.0.1:15672")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
CONTRACTS_DIR = os.environ.get("CONTRACTS_DIR", "contracts")
