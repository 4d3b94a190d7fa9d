"""Shared by the deployment tests: where the manifests and tools are, PromQL metric-name
extraction, and a stand-in for the Messaging Topology Operator that applies the rendered
topology resources to a real RabbitMQ through its management API."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, unquote, urlparse

import pytest
import requests
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "k8s"
MONITORING = DEPLOY / "platform" / "monitoring"
RULES = MONITORING / "onegrid-alerts.yaml"
RULE_TESTS = MONITORING / "tests" / "onegrid-alerts.test.yaml"
DASHBOARDS = sorted((MONITORING / "dashboards").glob("*.json"))
CRDS = ROOT.parent / "shared" / "k8s-crds"
KUBERNETES_VERSION = "1.32.0"

# Metrics a query may name before any service exports them (none now: issues 3 and 4 landed).
# Any other unknown name fails the dashboard and rule checks.
FUTURE_METRICS: set[str] = set()  # every metric the dashboards and rules name is exported now
# Not exported by OneGrid: RabbitMQ's rabbitmq_prometheus plugin (per-object metrics, labels
# vhost and queue) and the series Prometheus itself makes for every target.
EXTERNAL_METRICS = {
    "rabbitmq_queue_messages",
    "rabbitmq_queue_messages_ready",
    "rabbitmq_queue_messages_unacked",
    "rabbitmq_queue_consumers",
    "rabbitmq_alarms_memory_used_watermark",
    "rabbitmq_alarms_free_disk_space_watermark",
    "up",
    # oliver006/redis_exporter beside each county's Redis (deploy/k8s/base/redis.yaml); names
    # checked against the exporter run on a real Redis's INFO
    "redis_memory_used_bytes",
    "redis_memory_max_bytes",
    "redis_aof_last_bgrewrite_status",
    "redis_aof_last_write_status",
    "redis_connected_slaves",
}


def tool(name: str) -> str | None:
    """The venv's copy first (kubectl, kubernetes-validate come from the `test` extra)."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else shutil.which(name)


def need(name: str, why: str = "") -> str:
    path = tool(name)
    if path is None:
        how = {
            "promtool": "Debian's prometheus package (scripts/ensure-tools.sh, run by `make test`)",
            "prometheus": "Debian's prometheus package (scripts/ensure-tools.sh, run by `make test`)",
        }.get(name, "pip install -e '.[test]'")
        pytest.skip(f"{name} is not installed ({how}){': ' + why if why else ''}")
    return path


def kustomize(folder: Path) -> list[dict]:
    out = subprocess.run([need("kubectl"), "kustomize", str(folder)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"kubectl kustomize {folder}: {out.stderr}"
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def overlays() -> list[Path]:
    return sorted(p for p in (DEPLOY / "overlays").iterdir() if (p / "kustomization.yaml").exists())


def prometheus_rule() -> dict:
    return yaml.safe_load(RULES.read_text(encoding="utf-8"))


def unwrapped_rules(dest: Path) -> Path:
    """The PrometheusRule's groups as a plain Prometheus rule file (what promtool reads)."""
    path = dest / "onegrid-alerts.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": prometheus_rule()["spec"]["groups"]}, sort_keys=False), encoding="utf-8")
    return path


def alerts() -> list[dict]:
    return [r for g in prometheus_rule()["spec"]["groups"] for r in g["rules"] if "alert" in r]


def dashboard_queries(board: dict) -> list[str]:
    """Every PromQL expression in a Grafana dashboard: panel targets (rows nest panels) and
    templating queries (label_values(metric{…}, label) yields its metric selector)."""
    found = []

    def walk(panels):
        for p in panels:
            found.extend(t["expr"] for t in p.get("targets", []) if t.get("expr"))
            walk(p.get("panels", []))

    walk(board.get("panels", []))
    for var in board.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        q = var.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        m = re.fullmatch(r"\s*label_values\((?:(.+),\s*)?(\w+)\)\s*", q or "")
        if m:
            if m[1]:
                found.append(m[1])
        elif q:
            found.append(q)
    return found


# -- PromQL, just enough to find the metrics a query names ----------------------------------
_KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
    "atan2",
}


def _strip(expr: str) -> str:
    expr = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)  # strings
    expr = re.sub(r"\$\{?\w+\}?", "", expr)  # Grafana variables ($__range, $tenant)
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges and subqueries
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\boffset\s+\S+", " ", expr)
    return expr


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """(metric name, label names in its matchers) for every vector selector in `expr`,
    plus the label names the expression groups by (as metric None)."""
    out = []
    grouping = set()
    for m in re.finditer(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", expr):
        grouping |= {x.strip() for x in m[1].split(",") if x.strip()}
    cleaned = re.sub(r"\$\{?\w+\}?", "", re.sub(r"\[[^\]]*\]", "", expr))
    cleaned = re.sub(r'"(?:[^"\\]|\\.)*"', '""', cleaned)  # string arguments (label_replace's) name no metric
    cleaned = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", cleaned)
    for m in re.finditer(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*(\{(?:[^{}\"]|\"(?:[^\"\\]|\\.)*\")*\})?", cleaned):
        name, matchers = m[1], m[2]
        if not name and not matchers:
            continue
        rest = cleaned[m.end() :].lstrip()
        if name and (rest.startswith("(") or name in _KEYWORDS or re.fullmatch(r"[0-9.eE+-]+", name)):
            continue
        labels = set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", matchers or ""))
        out.append((name, labels))
    out.append((None, grouping - {"le"} if "histogram_quantile" in expr else grouping))
    return out


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (or a Grafana query) reads."""
    expr = re.sub(r"\{(?:[^{}\"]|\"(?:[^\"\\]|\\.)*\")*\}", " ", _strip(expr))
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        name = m.group(0)
        following = expr[m.end() :].lstrip()
        if following.startswith("(") or name in _KEYWORDS:
            continue
        before = expr[: m.start()]
        if re.search(r"[0-9.]$", before) or re.fullmatch(r"[eE]", name):
            continue
        names.add(name)
    return names


def exported_names(scrape: str) -> set[str]:
    """Every sample name a /metrics page can carry: each family's declared type expanded to
    its sample names (a labelled counter with no samples yet is declared all the same)."""
    names = set()
    for line in scrape.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(maxsplit=3)
            if kind == "counter":  # declared as `x_total` (no samples yet) or `x`
                family = family.removesuffix("_total")
            names |= {
                "counter": {f"{family}_total", f"{family}_created"},
                "histogram": {f"{family}_bucket", f"{family}_count", f"{family}_sum", f"{family}_created"},
                "summary": {family, f"{family}_count", f"{family}_sum", f"{family}_created"},
                "gauge": {family},
                "info": {f"{family}_info"},
            }.get(kind, {family})
        elif line and not line.startswith("#"):
            names.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
    return names


# -- the Messaging Topology Operator, as far as the tests need it ----------------------------
class TopologyApplier:
    """Applies rendered rabbitmq.com resources to a real broker the way the operator does
    (through the management API), resolving each User's imported credentials Secret."""

    def __init__(self, management_url: str, secrets: list[dict]):
        parsed = urlparse(management_url)
        self.base = f"{parsed.scheme}://{parsed.hostname}:{parsed.port or 15672}/api"
        self.auth = (unquote(parsed.username or "guest"), unquote(parsed.password or "guest"))
        self.secrets = {s["metadata"]["name"]: s["stringData"] for s in secrets}
        self.usernames: dict[str, str] = {}  # User resource name -> username
        self.created_users: list[str] = []

    def _call(self, method: str, path: str, body=None) -> None:
        resp = requests.request(method, self.base + path, auth=self.auth, json=body, timeout=10)
        if resp.status_code >= 400:
            raise AssertionError(f"{method} {path} {json.dumps(body)[:300]}: {resp.status_code} {resp.text[:300]}")

    def apply(self, docs: list[dict]) -> None:
        order = ["Vhost", "User", "Permission", "TopicPermission", "Policy", "Exchange", "Queue", "Binding"]
        for kind in order:
            for doc in (d for d in docs if d["kind"] == kind):
                getattr(self, "_" + kind.lower())(doc["metadata"]["name"], doc["spec"])

    def _vhost(self, name, spec):
        v = q(spec["name"])
        self._call("PUT", f"/vhosts/{v}", {"tags": ",".join(spec.get("tags", []))})
        for key, limit in (("connections", "max-connections"), ("queues", "max-queues")):
            if key in spec.get("limits", {}):
                self._call("PUT", f"/vhost-limits/{v}/{limit}", {"value": spec["limits"][key]})

    def _user(self, name, spec):
        creds = self.secrets[spec["importCredentialsSecret"]["name"]]
        self.usernames[name] = creds["username"]
        self._call(
            "PUT",
            f"/users/{q(creds['username'])}",
            {"password": creds["password"], "tags": ",".join(spec.get("tags", []))},
        )
        self.created_users.append(creds["username"])
        if "connections" in spec.get("limits", {}):  # the operator sets a User's limits as user limits
            self._call(
                "PUT", f"/user-limits/{q(creds['username'])}/max-connections", {"value": spec["limits"]["connections"]}
            )

    def _username(self, spec) -> str:
        return spec.get("user") or self.usernames[spec["userReference"]["name"]]

    def _permission(self, name, spec):
        self._call("PUT", f"/permissions/{q(spec['vhost'])}/{q(self._username(spec))}", spec["permissions"])

    def _topicpermission(self, name, spec):
        self._call("PUT", f"/topic-permissions/{q(spec['vhost'])}/{q(self._username(spec))}", spec["permissions"])

    def _policy(self, name, spec):
        self._call(
            "PUT",
            f"/policies/{q(spec['vhost'])}/{q(spec['name'])}",
            {
                "pattern": spec["pattern"],
                "definition": spec["definition"],
                "priority": spec.get("priority", 0),
                "apply-to": spec.get("applyTo", "all"),
            },
        )

    def _exchange(self, name, spec):
        self._call(
            "PUT",
            f"/exchanges/{q(spec['vhost'])}/{q(spec['name'])}",
            {
                "type": spec["type"],
                "durable": spec.get("durable", False),
                "auto_delete": spec.get("autoDelete", False),
                "arguments": spec.get("arguments", {}),
            },
        )

    def _queue(self, name, spec):
        args = dict(spec.get("arguments") or {})
        if spec.get("type"):
            args["x-queue-type"] = spec["type"]  # what the operator's client does with `type`
        self._call(
            "PUT",
            f"/queues/{q(spec['vhost'])}/{q(spec['name'])}",
            {"durable": spec.get("durable", False), "auto_delete": spec.get("autoDelete", False), "arguments": args},
        )

    def _binding(self, name, spec):
        self._call(
            "POST",
            f"/bindings/{q(spec['vhost'])}/e/{q(spec['source'])}/q/{q(spec['destination'])}",
            {"routing_key": spec.get("routingKey", ""), "arguments": spec.get("arguments", {})},
        )

    def delete_users(self) -> None:
        for user in self.created_users:
            requests.delete(f"{self.base}/users/{q(user)}", auth=self.auth, timeout=10)


def q(name: str) -> str:
    return quote(name, safe="")


def local(uri: str, host: str, port: int) -> str:
    """A Secret's URI (naming the in-cluster bus) pointed at the local broker instead."""
    parsed = urlparse(uri)
    userinfo = parsed.netloc.rsplit("@", 1)[0]
    return parsed._replace(netloc=f"{userinfo}@{host}:{port}").geturl()


@contextmanager
def queue_defaults():
    """The queue type and retry tiers a deployment runs with (its ConfigMap sets neither), not
    this test run's shorter RETRY_DELAYS_MS."""
    saved = {k: os.environ.pop(k) for k in ("RETRY_DELAYS_MS", "ONEGRID_QUEUE_TYPE") if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)
