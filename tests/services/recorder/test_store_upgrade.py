"""A store made before an event gained a field still records: opening it adds the missing column
(real chDB engine), and the rows recorded before read it as NULL."""

from __future__ import annotations

from pathlib import Path

from schemas import events as ev
from services.recorder.core import BY_TABLE, upgrades
from services.recorder.store import ChdbStore
from tests.samples import SAMPLES


def test_opening_an_older_store_adds_the_columns_it_lacks(tmp_path: Path) -> None:
    spec = BY_TABLE["order_events"]
    store = ChdbStore(tmp_path / "chdb")
    try:
        store.insert(spec, [(*spec.rows(SAMPLES[ev.OrderFilled])[0], "orders.events", 0, 0)])
        for column in ("amount", "mark_price"):  # as a store made before FundingSettled has it
            store.query(f"ALTER TABLE hean.order_events DROP COLUMN {column}")
    finally:
        store.close()
    reopened = ChdbStore(tmp_path / "chdb")
    try:
        reopened.insert(spec, [(*spec.rows(SAMPLES[ev.FundingSettled])[0], "orders.events", 0, 1)])
        rows = reopened.query("SELECT type, toString(amount), toString(mark_price) FROM hean.order_events "
                              "ORDER BY _offset")
        assert rows == [["order.fill", None, None], ["account.funding", "-0.065", "65000"]]
        assert upgrades("hean", {"order_events": {"id"}}) and not upgrades("hean", {}), "only tables that exist"
    finally:
        reopened.close()
