"""What `onegrid tenant onboard` hands over, on the real RabbitMQ and Redis: with
`--k8s-secrets` every Secret the rendered Kubernetes resources read (notify's webhook signing
key among them, made once), and on a manifest that does not check the same clean
`file: path: reason` list as `onegrid contracts check`, exit code 2, nothing changed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from onegrid.cli.main import main as cli
from onegrid.domain.open311 import clients_of as open311_clients
from onegrid.operator import k8s, ops
from tests.conftest import make_tenant_contracts

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def county(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("handover")
    root, tid = make_tenant_contracts(tmp, "suining-jincheng")
    try:
        yield tmp, root, tid
    finally:
        ops.offboard(tid, delete_data=True, force=True)


def _referenced(node, out: set[str]) -> set[str]:
    """Every Secret a rendered resource names: envFrom secretRef, env secretKeyRef, a secret
    volume, a topology operator's importCredentialsSecret, KEDA's secretTargetRef."""
    if isinstance(node, dict):
        for key in ("secretRef", "secretKeyRef", "importCredentialsSecret"):
            if isinstance(node.get(key), dict):
                out.add(node[key]["name"])
        if isinstance(node.get("secret"), dict) and "secretName" in node["secret"]:
            out.add(node["secret"]["secretName"])
        for ref in node.get("secretTargetRef") or []:
            out.add(ref["name"])
        for value in node.values():
            _referenced(value, out)
    elif isinstance(node, list):
        for value in node:
            _referenced(value, out)
    return out


def test_onboard_writes_every_secret_the_rendered_resources_read(county, capsys):
    tmp, root, tid = county
    secrets_dir = tmp / "secrets"
    assert cli(["--dir", str(root), "tenant", "onboard", tid, "--k8s-secrets", str(secrets_dir)]) == 0
    written = {p.stem: yaml.safe_load(p.read_text(encoding="utf-8")) for p in secrets_dir.glob("*.yaml")}

    t, _ = ops.manifest(tid, str(root))
    rendered = k8s.render([t], [tid], tmp / "deploy")
    workloads: set[str] = set()
    everything: set[str] = set()
    for text in rendered.files.values():
        for doc in yaml.safe_load_all(text):
            if not doc:
                continue
            _referenced(doc, everything)
            if doc["kind"] == "Deployment":
                _referenced(doc, workloads)
    departments = {f"bus-user-dept-{d.replace('_', '-')}" for d in t.departments}  # handed to the departments
    clients = {f"open311-client-{c}" for c in open311_clients(t.source)}  # handed to the client applications
    assert workloads <= set(written), f"read but never written: {workloads - set(written)}"
    assert set(written) == everything | departments | clients
    assert "onegrid-notify" in workloads

    notify = written["onegrid-notify"]
    assert notify["metadata"]["namespace"] == k8s.namespace(tid)
    signing = notify["stringData"]["ONEGRID_WEBHOOK_SECRET"]
    assert len(signing) >= 32
    for ch in k8s.notify_channels(t):  # the providers' (SMTP, SMS) are there too, to fill in by hand
        assert set(ch["env"]) <= set(notify["stringData"])

    # made once: a second onboarding leaves it (and every other credential) alone
    capsys.readouterr()
    assert cli(["--dir", str(root), "tenant", "onboard", tid, "--k8s-secrets", str(secrets_dir)]) == 0
    assert "no changes" in capsys.readouterr().out
    again = yaml.safe_load((secrets_dir / "onegrid-notify.yaml").read_text(encoding="utf-8"))
    assert again["stringData"]["ONEGRID_WEBHOOK_SECRET"] == signing


def _break(root: Path, tid: str, edit) -> Path:
    manifest = root / "tenants" / f"{tid}.yaml"
    doc = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    edit(doc)
    manifest.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return manifest


def _drop_department(doc, dept="petitions"):
    doc["departments"].remove(dept)


def _drop_grid_under_routing(doc):
    doc["routing"][0]["category"] = "no_such_category"


def _drop_governance(doc):
    doc["departments"].remove("governance")


def _duplicate_grid_code(doc):
    street = doc["grid_tree"]["children"][0]
    street["children"].append(dict(street["children"][0]))


def _bad_deadline(doc):
    doc["deadlines"][0]["resolve_hours"] = -1


@pytest.mark.parametrize(
    "edit, expected",
    [
        (_drop_department, "routing["),
        (_drop_grid_under_routing, "routing[0].category"),
        (_drop_governance, "departments"),
        (_duplicate_grid_code, "grid_tree"),
        (_bad_deadline, "deadlines[0]"),
        (lambda doc: doc["notify"]["channels"]["webhook"].pop("secret_env"), "notify"),
    ],
    ids=[
        "department-routing-uses",
        "unknown-category",
        "no-command-centre",
        "duplicate-grid",
        "bad-deadline",
        "webhook-without-secret",
    ],
)
@pytest.mark.parametrize("by", ["id", "path"])
def test_a_manifest_that_does_not_check_is_refused_cleanly(tmp_path, capsys, edit, expected, by):
    root, tid = make_tenant_contracts(tmp_path, "suining-jincheng")
    manifest = _break(root, tid, edit)
    ref = tid if by == "id" else str(manifest)
    assert cli(["--dir", str(root), "tenant", "onboard", ref, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines[-1].endswith("problem(s) in the contracts; nothing was changed")
    assert any(
        line.startswith(f"{Path(root.name) / 'tenants' / manifest.name}: {expected}")
        or line.startswith(f"{manifest}: {expected}")
        for line in lines
    ), err


@pytest.mark.parametrize(
    "args",
    [
        ["tenant", "onboard", "no-such-county", "--dry-run"],
        ["tenant", "onboard", "contracts/tenants/no-such-county.yaml", "--dry-run"],
        ["tenant", "status", "no-such-county"],
    ],
)
def test_an_unknown_county_is_refused_cleanly(tmp_path, capsys, args):
    assert cli(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "no-such-county" in err


@pytest.mark.parametrize(
    "args",
    [
        ["stats", "{t}"],
        ["quarantine", "list", "{t}"],
        ["quarantine", "replay", "{t}", "--all"],
        ["notify", "parked", "{t}"],
        ["tenant", "status", "{t}"],
    ],
)
def test_every_command_that_reads_redis_refuses_a_countys_redis_user(county, monkeypatch, args):
    tmp, root, tid = county
    t, _ = ops.manifest(tid, str(root))
    creds = ops.onboard(t)["credentials"]  # the county's Redis user exists since the first test; make it if not
    url = next((c.values["url"] for c in creds if c.kind == "redis"), None)
    if url is None:
        url = ops.rotate(t, "redis")[0].values["url"]
    monkeypatch.setenv("REDIS_URL", url)
    with pytest.raises(SystemExit) as refused:
        cli(["--dir", str(root), *[a.format(t=tid) for a in args]])
    assert "may not manage ACL users" in str(refused.value.code)
