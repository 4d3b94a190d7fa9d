"""/metrics on a port of its own (METRICS_ADDRESS, as the Kubernetes Deployments set it): a
real service serves the OneGrid families there and refuses /metrics on its HTTP port, the
one an Ingress routes to; the HTTP routes are unchanged."""

from __future__ import annotations

import pytest
import requests

from tests.conftest import County, free_port_base
from tests.support import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def county(tmp_path_factory):
    port = free_port_base(1) + 1
    c = County(
        tmp_path_factory.mktemp("metrics-port"), services=("intake",), env={"METRICS_ADDRESS": f"127.0.0.1:{port}"}
    )
    c.services.start()
    c.metrics_url = f"http://127.0.0.1:{port}/metrics"
    yield c
    c.close()


def test_metrics_are_on_the_metrics_port_and_not_on_the_http_port(county):
    text = wait_until(lambda: requests.get(county.metrics_url, timeout=5).text, what="the metrics port")
    assert "onegrid_" in text and "# TYPE" in text
    http = requests.get(county.services.url("intake") + "/metrics", timeout=5)
    assert http.status_code == 404 and http.json()["error"] == "not_here"
    assert requests.get(county.services.url("intake") + "/health", timeout=5).status_code == 200
