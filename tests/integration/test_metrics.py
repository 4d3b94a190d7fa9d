"""Every service serves Prometheus /metrics with the OneGrid families, and labels stay
bounded: no case, work order or event id ever becomes a label value."""

import re

import pytest
import requests

from tests.support import publish, wait_until

pytestmark = pytest.mark.integration
FAMILIES = {
    "intake": [
        "onegrid_intake_events_received_total",
        "onegrid_cases_registered_total",
        "onegrid_intake_quarantined_total",
        "onegrid_handler_duration_seconds_bucket",
    ],
    "routing": ["onegrid_work_orders_dispatched_total", "onegrid_handler_duration_seconds_bucket"],
    "departments": ["onegrid_work_order_actions_total"],
}


def test_metrics_after_traffic(county):
    sim = county.simulator(seed=41)
    planned = sim.plan(30, bad_every=5)
    publish(county.uri, planned)
    wait_until(lambda: county.store.stats().get("quarantined", 0) >= 6, what="traffic processed")
    wo = wait_until(lambda: county.store.department_queue("market_regulation")[1], what="a work order")[0]
    county.http.post(
        f"{county.services.url('departments')}/departments/market_regulation/work-orders/{wo['id']}/accept",
        json={"actor": "a"},
        timeout=5,
    ).raise_for_status()
    for service, families in FAMILIES.items():

        def scrape(service=service, families=families):
            # a handler's duration is observed just after it returns: poll, do not race it
            text = requests.get(county.services.url(service) + "/metrics", timeout=5).text
            return all(re.search(rf"^{f}{{", text, re.M) for f in families) and text

        text = wait_until(scrape, timeout=15, what=f"{service}'s metric families")
        labels = re.findall(r'="([^"]*)"', text)
        assert not [v for v in labels if re.match(r"^(c-|w-|sim-)[0-9a-f]", v)], f"{service} leaks ids as labels"
    text = requests.get(county.services.url("intake") + "/metrics", timeout=5).text
    quarantined = [line for line in text.splitlines() if line.startswith("onegrid_intake_quarantined_total{")]
    assert any(
        'reason="schema_violation"' in line and f'tenant="{county.id}"' in line and line.endswith(" 1.0")
        for line in quarantined
    ), quarantined
