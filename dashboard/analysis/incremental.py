"""Keep cycles, per-user outcomes and signatures up to date as batches of exchanges arrive."""
from __future__ import annotations

from sqlalchemy.engine import Connection


class BatchAnalyzer:
    """Called by the loader inside each batch's transaction.

    `before_insert` may add columns to the exchange rows (cycle_id, sig_id); `after_insert`
    sees the rows with their new `id`. Both only touch what the batch touches.
    """

    def before_insert(self, conn: Connection, rows: list[dict]) -> None:
        pass

    def after_insert(self, conn: Connection, rows: list[dict]) -> None:
        pass
