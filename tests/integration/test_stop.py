"""Every service stops soon after SIGTERM, as `nameko run` in a pod or a ServiceSet stops it.

nameko's SIGTERM handler only schedules the stop; a service that served HTTP only and had no
request in flight slept on in eventlet's hub until its next timer (open311, registry, console:
seconds, or until something came in), and `make chaos` gave up on open311 after 30 s. The
services now set a signal wakeup fd (onegrid/adapters/nameko/wake.py). The Sentinel-backed
case is the one that hung for good: with REDIS_SENTINELS nothing else wakes those services."""

import signal
import subprocess
import time

import pytest

from onegrid.catalogue import SERVICES
from tests.conftest import County

pytestmark = pytest.mark.integration

STOP_SECONDS = 10  # was 30 s and more for an idle HTTP-only service; a stop takes well under 2 s
IDLE_SECONDS = 3  # long enough for the hub to settle into its longest sleep
HTTP_ONLY = ("open311", "registry", "console")


def _stop_each(county: County) -> dict[str, str]:
    """SIGTERM to every process, one at a time; what became of each."""
    outcome = {}
    for name, proc in county.services.procs.items():
        proc.send_signal(signal.SIGTERM)
        try:
            outcome[name] = f"exit {proc.wait(STOP_SECONDS)}"
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            outcome[name] = f"still running {STOP_SECONDS}s after SIGTERM"
    return outcome


def test_every_service_stops_on_sigterm(tmp_path):
    # notify wants its webhook's secret and address (nothing is sent: no case is made)
    env = {"ONEGRID_WEBHOOK_SECRET": "s3cret", "NOTIFY_WEBHOOK_URL": "http://127.0.0.1:9/hook"}
    county = County(tmp_path, services=tuple(SERVICES), env=env)
    try:
        county.services.start()
        time.sleep(IDLE_SECONDS)
        assert _stop_each(county) == {name: "exit 0" for name in SERVICES}
    finally:
        county.close()


def test_http_only_services_on_sentinels_stop_on_sigterm(tmp_path, sentinel_set):
    county = County(tmp_path, services=HTTP_ONLY)
    try:
        county.services.start()
        time.sleep(IDLE_SECONDS)
        assert _stop_each(county) == {name: "exit 0" for name in HTTP_ONLY}
    finally:
        county.close()
