"""Telling a department what became of its event (onegrid.domain.receipts): intake tells it
accepted or quarantined, routing tells it merged."""

from __future__ import annotations

from onegrid.app.ports import CaseStore, Publisher
from onegrid.domain.receipts import Receipt
from onegrid.kernel import envelope as ce
from onegrid.kernel import topology


def tell(store: CaseStore, bus: Publisher, tenant: str, service: str, receipt: Receipt) -> None:
    """Recorded before published (with a publisher confirm), so a receipt read on the queue can
    be read over HTTP too; the same receipt again has the same id (a consumer dedups on it)."""
    told = receipt.as_dict()
    if receipt.event_id:
        store.record_receipt(receipt.department, receipt.event_id, told)
    env = ce.new(
        tenant=tenant,
        department=receipt.department,
        type=receipt.type,
        source=f"/{tenant}/{service}",
        subject=receipt.subject,
        id=receipt.id,
    )
    bus.publish(env, told, exchange=topology.RECEIPTS, routing_key=receipt.department)
