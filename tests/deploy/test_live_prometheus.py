"""A real Prometheus (Debian's) on loopback scrapes the running county's services, with the
alert rules loaded: every rule evaluates without error against the real series, and the
series, labels and joins the rules depend on are really there. Targets are labelled as the
Prometheus Operator labels them (job = the Service, namespace = onegrid-<county>)."""

from __future__ import annotations

import re
import socket
import subprocess
import time

import pytest
import requests
import yaml

from tests.deploy.helpers import FUTURE_METRICS, alerts, need, selectors, unwrapped_rules
from tests.support import publish, wait_until

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def prometheus(deployed, tmp_path_factory):
    binary = need("prometheus", "the alert rules are evaluated by a real Prometheus")
    home = tmp_path_factory.mktemp("prometheus")
    rules = unwrapped_rules(home)
    namespace = f"onegrid-{deployed.county.id}"
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules)],
        "scrape_configs": [
            {
                "job_name": f"onegrid-{name}",
                "metrics_path": "/metrics",
                "static_configs": [
                    {"targets": [deployed.url(name)[len("http://") :]], "labels": {"namespace": namespace}}
                ],
            }
            for name in deployed.services
        ],
    }
    (home / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    port = _free_port()
    log = open(home / "prometheus.log", "wb")  # noqa: SIM115 - the log outlives this block: Prometheus writes it until the fixture stops it
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={home / 'prometheus.yml'}",
            f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: proc.poll() is None and _ok(f"{url}/-/ready"), what="prometheus ready", timeout=30)
        wait_until(
            lambda: (
                all(t["health"] == "up" for t in _api(url, "targets")["activeTargets"])
                and len(_api(url, "targets")["activeTargets"]) == len(deployed.services)
            ),
            what="every service scraped",
            timeout=30,
        )
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).ok
    except requests.RequestException:
        return False


def _api(url: str, path: str, **params):
    body = requests.get(f"{url}/api/v1/{path}", params=params, timeout=5).json()
    assert body["status"] == "success", body
    return body["data"]


def _query(url: str, expr: str) -> list[dict]:
    return _api(url, "query", query=expr)["result"]


@pytest.fixture(scope="module")
def scraped_traffic(deployed, prometheus, traffic):
    """Traffic after Prometheus' first scrapes, so counters rise between samples (rate > 0)."""
    county = deployed.county
    before = county.store.stats().get("quarantined", 0)
    planned = county.simulator(seed=83).plan(20, bad_every=4)
    publish(county.uri, planned)
    bad = sum(1 for p in planned if p.expect != "case")
    wait_until(lambda: county.store.stats().get("quarantined", 0) >= before + bad, what="traffic handled")
    wait_until(
        lambda: _query(prometheus, f'sum(onegrid_intake_quarantined_total{{tenant="{county.id}"}}) >= {before + bad}'),
        what="the traffic scraped",
        timeout=15,
    )
    time.sleep(2.5)  # two more scrapes and rule evaluations
    return planned


def test_every_rule_evaluates_against_real_series(prometheus, scraped_traffic):
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 1))  # RFC 3339, UTC, to the second

    def evaluated_since():
        groups = _api(prometheus, "rules")["groups"]
        rules = [r for g in groups for r in g["rules"]]
        return rules if rules and all(r["lastEvaluation"][:19] >= since for r in rules) else None

    rules = {r["name"]: r for r in wait_until(evaluated_since, what="the rules evaluated again", timeout=15)}
    assert set(rules) == {a["alert"] for a in alerts()}
    for name, rule in rules.items():
        assert rule["health"] == "ok" and not rule.get("lastError"), (name, rule.get("lastError"))
    firing = {r["name"] for r in rules.values() if r["state"] == "firing"}
    assert "OneGridServiceDown" not in firing, "every service is up"


def test_rules_read_series_and_labels_that_exist(prometheus, scraped_traffic):
    for alert in alerts():
        grouped, available, checked = set(), set(), False
        for metric, labels in selectors(alert["expr"]):
            if metric is None:
                grouped = labels
                continue
            if metric in FUTURE_METRICS or metric.startswith(("rabbitmq_", "redis_")):
                available = None  # RabbitMQ's or redis_exporter's: not on this Prometheus
                break
            series = _api(prometheus, "series", **{"match[]": metric})
            if not series:  # declared by the services but nothing counted yet (e.g. no dead letters)
                family = re.sub(r"_(total|bucket|sum|count)$", "", metric)  # a counter's or histogram's family
                known = _api(prometheus, "metadata")
                assert metric in known or family in known, f"{alert['alert']}: Prometheus never saw {metric}"
                available = None
                break
            names = set().union(*(s.keys() for s in series))
            assert labels <= names, f"{alert['alert']}: {metric} has no label {sorted(labels - names)}"
            available |= names
            checked = True
        if available is not None and checked:
            assert grouped <= available, f"{alert['alert']}: groups by {sorted(grouped - available)}"


def test_the_joins_in_the_rules_match_real_series(deployed, prometheus, scraped_traffic):
    county = deployed.county
    # quarantine share, by tenant and department: both sides of the division line up
    share = _query(
        prometheus,
        """
        sum by (tenant, department) (rate(onegrid_intake_quarantined_total[15m]))
      / sum by (tenant, department) (rate(onegrid_intake_events_received_total[15m]))""",
    )
    mine = [float(s["value"][1]) for s in share if s["metric"]["tenant"] == county.id]
    assert any(0 < v <= 1 for v in mine), f"no department's quarantine share is seen: {share}"
    assert all(v != v or 0 <= v <= 1 for v in mine), mine  # NaN: nothing received in the window
    # handler error ratio: the denominator carries namespace from the target, service and handler
    calls = _query(
        prometheus, "sum by (namespace, service, handler) (rate(onegrid_handler_duration_seconds_count[5m]))"
    )
    handlers = {
        (s["metric"]["service"], s["metric"]["handler"])
        for s in calls
        if s["metric"].get("namespace") == f"onegrid-{county.id}"
    }
    assert ("intake", "on_department_event") in handlers and ("routing", "on_case_registered") in handlers
    slow = _query(
        prometheus,
        "histogram_quantile(0.99, sum by (namespace, service, handler, le) "
        "(rate(onegrid_handler_duration_seconds_bucket[10m])))",
    )
    assert any(s["metric"].get("service") == "intake" for s in slow)
    up = _query(prometheus, 'up{job=~"onegrid-.+"}')
    assert {s["metric"]["job"] for s in up if s["value"][1] == "1"} == {f"onegrid-{n}" for n in deployed.services}
