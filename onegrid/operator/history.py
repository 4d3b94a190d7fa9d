"""The operator's side of the bus's history: reading a county's streams, a scratch county to
replay them into, and a contracts tree with a proposed department contract for what-if.
The use cases are in onegrid.app.history and onegrid.app.whatif."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import yaml

from onegrid.adapters.amqp.bus import Bus
from onegrid.adapters.amqp.history import StreamReader
from onegrid.app.registry import load
from onegrid.contracts import ContractsInvalid, Problem, Registry
from onegrid.domain.intake import RawEvent, first_transport, principal
from onegrid.kernel import settings
from onegrid.kernel.tenant import Tenant
from onegrid.operator import ops
from onegrid.operator.ops import REPLAYED_FROM, ROUTING_KEY, USER_ID


def reader(tenant_id: str) -> StreamReader:
    """The county's history streams, read as the operator."""
    return StreamReader(ops.uri(tenant_id))


class IntakeSender:
    """A county's intake queue, reached through the default exchange with the department's
    identity in the headers, as `onegrid quarantine replay` does: intake judges the event as
    that department's, marked `replay (from <first transport>)`."""

    def __init__(self, tenant_id: str):
        self.tenant_id, self.bus = tenant_id, Bus(ops.uri(tenant_id))

    def send(self, raw: RawEvent, department: str) -> None:
        headers = dict(raw.headers)
        headers[ROUTING_KEY] = raw.routing_key or ""
        headers[USER_ID] = principal(self.tenant_id, department)
        headers[REPLAYED_FROM] = first_transport(raw.transport)
        self.bus.publish_raw(raw.body, headers, raw.content_type, "", "intake.events", mandatory=True)

    def close(self) -> None:
        self.bus.close()


def scratch_county(base: Tenant, scratch_id: str, contracts_dir: str, dest: str | Path) -> tuple[Tenant, Path]:
    """County `scratch_id`: `base`'s manifest under another id, in a copy of the contracts at
    `dest`, onboarded (its own vhost, users and Redis key space) unless it is already. Its
    services run with CONTRACTS_DIR=<dest> and TENANT=<scratch_id>."""
    root = ops.clone_tenant(contracts_dir, base.id, scratch_id, dest)
    tenant = ops.tenant(scratch_id, str(root))
    ops.onboard(tenant)
    return tenant, root


def with_department(contracts_dir: str, department_file: str) -> Registry:
    """The registry with one department's contract file replaced by a proposed one (the same
    format as contracts/departments/<department>.yaml), checked as `contracts check` would."""
    path = Path(department_file)
    if not path.is_file():
        raise ContractsInvalid([Problem(department_file, "$", "no such file")])
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    department = doc.get("department") if isinstance(doc, dict) else None
    if not isinstance(department, str):
        raise ContractsInvalid([Problem(department_file, "department", "a department contract names its department")])
    with tempfile.TemporaryDirectory(prefix="onegrid-whatif-") as tmp:
        root = Path(tmp) / "contracts"
        shutil.copytree(contracts_dir or settings.contracts_dir(), root)
        shutil.copyfile(path, root / "departments" / f"{department}.yaml")
        registry, problems = load(root)
    if problems:
        raise ContractsInvalid(problems)
    return registry
