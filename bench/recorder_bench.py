"""Recorder storage and candle figures on 1M synthetic trades in chDB: bytes per trade row (after a
merge, from system.columns) and the cost of the candle views, which deduplicate at query time.

Run: .venv/bin/python -m bench.recorder_bench [rows]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from services.recorder.core import BY_TABLE
from services.recorder.store import ChdbStore
from services.tally.feed import synthetic_trades


def measure(n: int = 1_000_000) -> dict[str, float]:
    """Insert n trades, merge to one part per day, and time the candle queries (best of 3)."""
    spec = BY_TABLE["trades"]
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = ChdbStore(Path(tmp) / "chdb")
        try:
            rows = [(*spec.rows(t)[0], "md.trades", i % 6, i) for i, t in enumerate(synthetic_trades(n, seed=3))]
            started = time.perf_counter()
            for i in range(0, n, 200_000):
                store.insert(spec, rows[i:i + 200_000])
            figures["insert_rows_per_second"] = n / (time.perf_counter() - started)
            store.query("OPTIMIZE TABLE hean.trades FINAL")
            [[compressed, uncompressed]] = store.query(
                "SELECT sum(data_compressed_bytes), sum(data_uncompressed_bytes) FROM system.columns "
                "WHERE database = 'hean' AND table = 'trades'")
            figures["bytes_per_trade_row"] = int(compressed) / n
            figures["uncompressed_bytes_per_trade_row"] = int(uncompressed) / n
            for name, sql in (("candles_1m_all_symbols_seconds", "SELECT count() FROM (SELECT * FROM hean.candles_1m)"),
                              ("candles_1s_all_symbols_seconds", "SELECT count() FROM (SELECT * FROM hean.candles_1s)"),
                              ("candles_1m_one_symbol_seconds",
                               "SELECT count() FROM (SELECT * FROM hean.candles_1m WHERE symbol = 'BTCUSDT')"),
                              ("raw_1m_no_dedup_seconds",
                               "SELECT count() FROM (SELECT symbol, toStartOfMinute(ts_event) m, sum(qty) "
                               "FROM hean.trades GROUP BY symbol, m)")):
                best = float("inf")
                for _ in range(3):
                    started = time.perf_counter()
                    store.query(sql)
                    best = min(best, time.perf_counter() - started)
                figures[name] = best
            per_column = store.query("SELECT name, data_compressed_bytes FROM system.columns WHERE database = 'hean' "
                                     "AND table = 'trades' ORDER BY data_compressed_bytes DESC")
            for name, size in per_column:
                figures[f"bytes_per_row.{name}"] = int(size) / n
        finally:
            store.close()
    return figures


if __name__ == "__main__":
    for key, value in measure(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000).items():
        print(f"{key:45} {value:,.4f}")
