"""Candles over the deduplicated trades: right on a known session, unchanged by a second insert."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

from schemas.events import TradeReceived
from services.recorder.core import BY_TABLE
from services.recorder.store import ChdbStore
from services.recorder.synthetic import session

SECOND = 10**9


def expected_candles(trades: list[TradeReceived], width_ns: int) -> dict[tuple[str, int], tuple[Any, ...]]:
    """(symbol, bucket start ns) → (open, high, low, close, volume, trades), folded in Python."""
    buckets: dict[tuple[str, int], list[TradeReceived]] = defaultdict(list)
    for t in sorted(trades, key=lambda t: (t.ts_event, t.trade_id)):
        buckets[t.symbol, t.ts_event // width_ns * width_ns].append(t)
    return {k: (v[0].price, max(t.price for t in v), min(t.price for t in v), v[-1].price,
                sum((t.qty for t in v), Decimal(0)), len(v)) for k, v in buckets.items()}


def candles(store: ChdbStore, view: str) -> dict[tuple[str, int], tuple[Any, ...]]:
    rows = store.query(f"SELECT symbol, toUnixTimestamp64Nano(toDateTime64(bucket, 9)), toString(open), "
                       f"toString(high), toString(low), toString(close), toString(volume), trades, vwap "
                       f"FROM hean.{view} ORDER BY symbol, bucket")
    for row in rows:
        assert Decimal(row[4]) - Decimal("1e-9") <= Decimal(row[8]) <= Decimal(row[3]) + Decimal("1e-9"), row
    return {(r[0], int(r[1])): (*map(Decimal, r[2:7]), int(r[7])) for r in rows}


def test_candles_match_the_trades_and_ignore_a_second_insert(tmp_path: Path) -> None:
    trades = [e for _, e in session(1500)["md.trades"]]
    spec = BY_TABLE["trades"]
    rows = [(*spec.rows(t)[0], "md.trades", 0, i) for i, t in enumerate(trades)]
    store = ChdbStore(tmp_path / "chdb")
    try:
        store.insert(spec, rows)
        once = {view: candles(store, view) for view in ("candles_1s", "candles_1m")}
        assert once["candles_1s"] == expected_candles(trades, SECOND)
        assert once["candles_1m"] == expected_candles(trades, 60 * SECOND)
        store.insert(spec, rows)  # the same trades again: a replay into the table, or a manual re-insert
        [[count]] = store.query("SELECT count() FROM hean.trades")
        assert int(count) == 2 * len(trades)
        assert {view: candles(store, view) for view in once} == once
    finally:
        store.close()
