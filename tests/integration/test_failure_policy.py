"""The failure policy on a real broker: a handler that keeps failing is retried with backoff,
then dead-lettered with its error, and replays once the fault is gone."""

import pytest
import requests

from onegrid.cli.main import main as cli
from onegrid.domain.cases import case_id
from onegrid.operator import ops
from sim.runner import ServiceSet
from tests.conftest import County, free_port_base
from tests.support import publish, queue_depth, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def broken_county(tmp_path):
    # intake whose Redis is unreachable: every handler call raises; an outage is retried past
    # the tiers (100, 300 ms) for OUTAGE_RETRY_S, counted from the first failure
    c = County(tmp_path, services=("intake",), env={"REDIS_URL": "redis://127.0.0.1:1/0", "OUTAGE_RETRY_S": "2"})
    c.services.ready_path = "/livez"  # never ready without its Redis (rightly): alive is what it can be
    c.services.start()
    yield c
    c.close()


def test_failing_handler_is_retried_then_dead_lettered_then_replayed(broken_county, tmp_path):
    county = broken_county
    p = county.simulator(seed=21).good()
    publish(county.uri, [p])
    wait_until(lambda: queue_depth(county.uri, "intake.events.dlq") == 1, what="dead letter", timeout=30)
    assert queue_depth(county.uri, "intake.events") == 0

    held = ops.dead_letters(county.id, queue="intake.events")
    # first try + two retries (RETRY_DELAYS_MS=100,300), then every 300 ms for the outage's 2 s
    assert len(held) == 1 and held[0]["attempts"] > 3
    assert "Error" in held[0]["error"] and "6379" not in held[0]["error"] or "Connection" in held[0]["error"]
    assert queue_depth(county.uri, "intake.events.dlq") == 1  # listing keeps them

    scrape = requests.get(county.services.url("intake") + "/metrics", timeout=5).text
    retries = float(held[0]["attempts"]) - 1
    assert f'onegrid_handler_retries_total{{queue="intake.events",tenant="{county.id}"}} {retries}' in scrape
    assert f'onegrid_handler_dead_lettered_total{{queue="intake.events",tenant="{county.id}"}} 1.0' in scrape

    # the fault is fixed: intake (and routing) come back with a working Redis
    county.services.stop()
    healthy = ServiceSet(
        county.id,
        county.uri,
        port_base=free_port_base(),
        log_dir=tmp_path / "logs2",
        env={"CONTRACTS_DIR": str(county.contracts)},
        services=("intake", "routing"),
    )
    healthy.start()
    try:
        assert cli(["--dir", str(county.contracts), "dlq", "replay", county.id, "--queue", "intake.events"]) == 0
        cid = case_id(f"{p.department}|{p.headers['ce-source']}|{p.event_id}")
        case = wait_until(
            lambda: (c := county.store.case(cid)) and c["status"] == "dispatched" and c, what="case after replay"
        )
        assert case["event_id"] == p.event_id and queue_depth(county.uri, "intake.events.dlq") == 0
    finally:
        healthy.stop()
