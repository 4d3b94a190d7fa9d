"""The PrometheusRule: promtool accepts it and its unit tests pass (promtool test rules),
each alert says how bad it is and links a runbook that exists, and the bus alerts' queue
patterns select exactly the queues OneGrid's services consume."""

from __future__ import annotations

import re
import shutil
import subprocess

from onegrid.adapters.amqp import topology
from onegrid.kernel import topology as names
from tests.deploy.helpers import ROOT, RULE_TESTS, alerts, need, unwrapped_rules

REQUIRED = {  # what issue 6 asks the operators to be told about
    "OneGridOverdueCasesRising",
    "OneGridQuarantineGrowing",
    "OneGridDeadLetterQueueNotEmpty",
    "OneGridConsumerBacklog",
    "OneGridServiceDown",
    "OneGridHandlerErrors",
}


def _promtool(*args, cwd=None):
    return subprocess.run([need("promtool"), *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_promtool_checks_the_rules(tmp_path):
    out = _promtool("check", "rules", str(unwrapped_rules(tmp_path)))
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in out.stdout


def test_promtool_unit_tests_pass(tmp_path):
    unwrapped_rules(tmp_path)
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    out = _promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert out.returncode == 0 and "SUCCESS" in out.stdout, out.stdout + out.stderr


def test_every_alert_is_unit_tested_and_has_severity_summary_and_runbook():
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text()))
    runbooks = (ROOT / "docs" / "runbooks.md").read_text(encoding="utf-8")
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
        for h in re.findall(r"^#+ (.+)$", runbooks, re.M)
    }
    names = {a["alert"] for a in alerts()}
    assert names >= REQUIRED
    for a in alerts():
        assert a["alert"] in tested, f"{a['alert']} has no promtool test"
        assert a["labels"]["severity"] in ("warning", "critical"), a["alert"]
        assert a["annotations"]["summary"] and a["annotations"]["description"], a["alert"]
        path, _, anchor = a["annotations"]["runbook_url"].partition("#")
        assert path == "docs/runbooks.md" and anchor in anchors, f"{a['alert']}: no runbook section #{anchor}"


def _queue_matcher(alert: str) -> re.Pattern:
    expr = next(a["expr"] for a in alerts() if a["alert"] == alert)
    negative = re.search(r'queue!~"((?:[^"\\]|\\.)*)"', expr)
    pattern = negative[1].encode().decode("unicode_escape")  # the PromQL string literal's value
    return re.compile(pattern)


def test_consumer_alerts_watch_every_consumed_queue_and_nothing_else():
    tiers = [f"{q}.retry.{d}ms" for q in topology.CONSUMED for d in (1000, 30000)]
    for alert in ("OneGridConsumerBacklog", "OneGridQueueNotConsumed"):
        excluded = _queue_matcher(alert)  # PromQL regexes are anchored at both ends
        for queue in topology.CONSUMED:
            assert not excluded.fullmatch(queue), f"{alert} ignores consumed queue {queue}"
        streams = [names.HISTORY_INTAKE, names.HISTORY_LIFECYCLE]  # the broker's log: nobody drains it
        for queue in [f"{q}.dlq" for q in topology.CONSUMED] + tiers + ["workorders.health"] + streams:
            assert excluded.fullmatch(queue), f"{alert} watches {queue}, which nobody is meant to drain"
