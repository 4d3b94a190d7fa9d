"""The dashboards parse, and every query in them and in the alert rules names a metric the
running services really export (a scrape after real traffic), a metric of RabbitMQ's
Prometheus plugin, or one of the case-lifecycle metrics listed as pending in FUTURE_METRICS."""

from __future__ import annotations

import json
import re
import warnings

import pytest

from tests.deploy.helpers import (
    DASHBOARDS,
    EXTERNAL_METRICS,
    FUTURE_METRICS,
    alerts,
    dashboard_queries,
    exported_names,
    metric_names,
    selectors,
)

pytestmark = pytest.mark.e2e
TARGET_LABELS = {"namespace", "job", "instance", "pod", "service"}  # added by the scrape (ServiceMonitor)


@pytest.fixture(scope="module")
def exported(scrapes) -> set[str]:
    names = set()
    for text in scrapes.values():
        names |= exported_names(text)
    return names


@pytest.fixture(scope="module")
def labels_of(scrapes) -> dict[str, set[str]]:
    seen: dict[str, set[str]] = {}
    for text in scrapes.values():
        for name, body in re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}", text, re.M):
            seen.setdefault(name, set()).update(re.findall(r'(\w+)="', body))
    return seen


def _queries() -> list[tuple[str, str]]:
    found = [(f"alert {a['alert']}", a["expr"]) for a in alerts()]
    for path in DASHBOARDS:
        board = json.loads(path.read_text(encoding="utf-8"))
        found += [(f"{path.name}: {q[:60]}", q) for q in dashboard_queries(board)]
    return found


def test_every_service_exports_onegrid_metrics_after_traffic(scrapes):
    for name, text in scrapes.items():
        assert "# TYPE onegrid_handler_duration_seconds histogram" in text, name
        assert "process_resident_memory_bytes" in text, name
    assert re.search(r'^onegrid_intake_events_received_total\{.*outcome="registered"', scrapes["intake"], re.M)
    assert re.search(r"^onegrid_intake_quarantined_total\{", scrapes["intake"], re.M)
    assert re.search(r"^onegrid_work_orders_dispatched_total\{", scrapes["routing"], re.M)


def test_dashboards_are_grafana_dashboards():
    assert {p.name for p in DASHBOARDS} == {"command-centre.json", "operations.json"}
    for path in DASHBOARDS:
        board = json.loads(path.read_text(encoding="utf-8"))
        assert board["uid"] and board["title"] and board["schemaVersion"] >= 36, path.name
        variables = {v["name"] for v in board["templating"]["list"]}
        assert {"datasource", "tenant"} <= variables, path.name
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), f"{path.name}: panel ids repeat"
        for panel in (p for p in board["panels"] if p["type"] != "row"):
            assert panel["targets"], f"{path.name}: {panel['title']} has no query"
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            for target in panel["targets"]:
                assert "$tenant" in target["expr"], f"{path.name}: {panel['title']} is not scoped to the county"
            assert panel["gridPos"]["x"] >= 0 and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24


def test_command_centre_and_operations_show_what_the_issue_asks(exported):
    def metrics(name):
        return set().union(
            *(
                metric_names(q)
                for q in dashboard_queries(json.loads(next(p for p in DASHBOARDS if p.name == name).read_text()))
            )
        )

    assert {
        "onegrid_intake_events_received_total",
        "rabbitmq_queue_messages_ready",
        "onegrid_cases_overdue",
        "onegrid_cases_closed_total",
        "onegrid_cases_closed_on_time_total",
        "onegrid_department_cases_closed_total",
        "onegrid_department_cases_closed_on_time_total",
        "onegrid_grid_colour",
    } <= metrics("command-centre.json")
    assert {
        "onegrid_handler_duration_seconds_bucket",
        "onegrid_handler_duration_seconds_count",
        "onegrid_handler_retries_total",
        "rabbitmq_queue_messages_ready",
    } <= metrics("operations.json")


def test_every_query_names_a_metric_that_exists(exported):
    unknown = {}
    for where, expr in _queries():
        names = metric_names(expr)
        assert names, f"{where}: names no metric"
        missing = names - exported - FUTURE_METRICS - EXTERNAL_METRICS
        if missing:
            unknown[where] = sorted(missing)
    assert not unknown, f"queries name metrics nothing exports: {unknown}"
    arrived = sorted(FUTURE_METRICS & exported)
    if arrived:
        warnings.warn(f"now exported, no longer pending: {arrived} (move them out of FUTURE_METRICS)", stacklevel=2)


def test_label_names_in_queries_exist_on_the_metrics(exported, labels_of):
    for where, expr in _queries():
        grouped: set[str] = set()
        available: set[str] = set(TARGET_LABELS)
        for metric, labels in selectors(expr):
            if metric is None:
                grouped = labels
                continue
            if metric in labels_of:
                available |= labels_of[metric]
                assert labels <= labels_of[metric] | TARGET_LABELS, (
                    f"{where}: {metric} has no label {sorted(labels - labels_of[metric] - TARGET_LABELS)}"
                )
            else:
                available = None  # a pending or external metric: its labels are known only by contract
                break
        if available is not None:
            assert grouped <= available, f"{where}: groups by {sorted(grouped - available)}, which no series has"


def _family(name: str) -> str:
    for suffix in ("_bucket", "_count", "_sum", "_created", "_total"):
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def test_every_exported_onegrid_metric_is_on_a_dashboard_or_in_an_alert(exported):
    """A metric no panel or alert reads is a metric no one looks at (issue 12 counted twelve)."""
    read = {_family(n) for _, expr in _queries() for n in metric_names(expr)}
    unread = sorted({_family(n) for n in exported if n.startswith("onegrid_")} - read)
    assert not unread, f"exported, but on no dashboard and in no alert: {unread}"


def test_the_check_would_catch_a_misspelt_metric(exported):
    expr = 'sum by (tenant) (rate(onegrid_intake_event_received_total{tenant="$tenant"}[5m]))'
    assert metric_names(expr) - exported - FUTURE_METRICS - EXTERNAL_METRICS == {"onegrid_intake_event_received_total"}
