"""A batch's writes that nothing in the batch reads back, kept and written in one round trip
when the batch is done (before its announcements are published): the receipts intake records
for `GET /events/<id>` and the contract-version uses it counts. Everything else goes to the
store at once. Used by the batch handlers (onegrid/adapters/nameko/batch.py); if the batch
fails before the flush nothing of these is written, and the one-by-one retry writes them."""

from __future__ import annotations

from typing import Any


class KeptReceipts:
    """A Store whose record_receipt waits for flush() (Store.record_receipts)."""

    def __init__(self, store: Any):
        self.store = store
        self.kept: list[tuple[str, str, dict]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def record_receipt(self, department: str, event_id: str, receipt: dict) -> None:
        self.kept.append((department, event_id, receipt))

    def flush(self) -> None:
        kept, self.kept = self.kept, []
        if kept:
            self.store.record_receipts(kept)


class KeptUses:
    """The Usage port whose record_use waits for flush() (Published.record_uses)."""

    def __init__(self, usage: Any):
        self.usage = usage
        self.kept: list[tuple[str, str, int, float]] = []

    def record_use(self, department: str, key: str, version: int, at: float) -> None:
        self.kept.append((department, key, version, at))

    def flush(self) -> None:
        kept, self.kept = self.kept, []
        if kept and self.usage is not None:
            self.usage.record_uses(kept)
