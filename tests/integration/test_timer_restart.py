"""Durable timers: set, then every service killed and Redis (append-only on) restarted;
the timer still fires, once."""

import json
import shutil
import subprocess
import time

import pytest

from onegrid.domain.cases import case_id
from tests.conftest import County, free_port_base
from tests.support import publish, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def private_redis(tmp_path, monkeypatch):
    """A Redis of this test's own with append-only persistence, so restarting it loses nothing."""
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed: cannot run a private Redis with persistence")
    port = free_port_base(1) + 1
    data = tmp_path / "redis"
    data.mkdir()
    cmd = [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--save",
        "",
        "--dir",
        str(data),
        "--daemonize",
        "no",
    ]

    def start():
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(
            lambda: (
                subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout.strip() == b"PONG"
            ),
            what="private redis",
        )
        return proc

    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{port}/0")
    state = {"proc": start()}

    def restart():
        state["proc"].terminate()
        state["proc"].wait(10)
        state["proc"] = start()

    yield restart
    state["proc"].terminate()
    state["proc"].wait(10)


def test_timers_survive_killed_services_and_a_redis_restart_and_fire_once(tmp_path, private_redis):
    county = County(tmp_path, services=("intake", "routing", "supervision"), env={"ONEGRID_TIME_SCALE": "3600"})
    try:
        county.services.start()
        sim = county.simulator(seed=61)
        p = next(
            x
            for x in iter(sim.good, None)
            if json.loads(x.body)["severity"] == "general" and x.department != "governance" and x.category != "other"
        )
        publish(county.uri, [p])
        cid = case_id(f"{p.department}|{p.headers['ce-source']}|{p.event_id}")
        case = wait_until(lambda: (c := county.store.case(cid)) and c["status"] == "dispatched" and c, what="dispatch")
        wo = county.store.work_orders_of(cid)[0]
        due = county.store.timers.due_at(f"acknowledge|{wo['id']}")
        assert due is not None and due > time.time()  # armed, not yet due (2 s at this scale)

        for name in list(county.services.procs):  # kill -9 every service, then restart Redis
            county.services.kill(name)
        private_redis()
        assert county.store.timers.due_at(f"acknowledge|{wo['id']}") == due  # the timer survived
        time.sleep(max(0.0, due - time.time()) + 0.5)  # it falls due while nothing runs
        county.services.start()

        wait_until(lambda: county.store.case(cid)["level"] != case["level"], timeout=10, what="the late firing")
        time.sleep(0.5)
        supervised = [s for s in county.store.timeline(cid) if s["action"] == "supervise"]
        escalated = [s for s in county.store.timeline(cid) if s["action"] == "escalate"]
        assert len(supervised) == len(escalated) == 1, county.store.timeline(cid)  # once, not twice
        assert escalated[0]["note"] == "overdue_acknowledge"
    finally:
        county.close()
