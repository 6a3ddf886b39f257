"""NautilusTrader's EMA cross example over a trades CSV, timed; prints one JSON line.

Run with bench/.venv-nautilus/bin/python (bench/backtest_bench.py does). The setup is Nautilus's own
crypto example (examples/backtest/crypto_ema_cross_ethusdt_trade_ticks.py) with its plain EMACross
strategy: Binance ETHUSDT spot from its test kit, an L1 book filled by trades, 250-tick bars
aggregated internally, EMA 10/20, trade size 0.10; logging at WARNING so neither side pays for
per-event log lines. Timed: `engine.run()` over data already added (ticks built from the CSV
beforehand, as HEAN's figure excludes reading the store).
"""

from __future__ import annotations

import json
import sys
import time
from decimal import Decimal

import pandas as pd
from nautilus_trader.adapters.binance import BINANCE_VENUE
from nautilus_trader.backtest.config import BacktestEngineConfig
from nautilus_trader.backtest.engine import BacktestEngine
from nautilus_trader.config import LoggingConfig
from nautilus_trader.examples.strategies.ema_cross import EMACross, EMACrossConfig
from nautilus_trader.model.currencies import ETH, USDT
from nautilus_trader.model.data import BarType
from nautilus_trader.model.enums import AccountType, BookType, OmsType
from nautilus_trader.model.identifiers import TraderId
from nautilus_trader.model.objects import Money
from nautilus_trader.persistence.wranglers import TradeTickDataWrangler
from nautilus_trader.test_kit.providers import TestInstrumentProvider


def main(path: str) -> None:
    engine = BacktestEngine(config=BacktestEngineConfig(
        trader_id=TraderId("BENCH-001"), logging=LoggingConfig(log_level="WARNING", use_pyo3=False)))
    engine.add_venue(venue=BINANCE_VENUE, oms_type=OmsType.NETTING, book_type=BookType.L1_MBP,
                     account_type=AccountType.CASH, base_currency=None,
                     starting_balances=[Money(1_000_000.0, USDT), Money(10.0, ETH)], trade_execution=True)
    instrument = TestInstrumentProvider.ethusdt_binance()
    engine.add_instrument(instrument)
    frame = pd.read_csv(path, dtype={"trade_id": str})
    frame.index = pd.to_datetime(frame.pop("timestamp"), unit="ns", utc=True)
    loaded = time.perf_counter()
    ticks = TradeTickDataWrangler(instrument=instrument).process(frame)
    engine.add_data(ticks)
    prepared = time.perf_counter() - loaded
    engine.add_strategy(EMACross(EMACrossConfig(
        instrument_id=instrument.id, bar_type=BarType.from_str("ETHUSDT.BINANCE-250-TICK-LAST-INTERNAL"),
        trade_size=Decimal("0.10"), fast_ema_period=10, slow_ema_period=20, request_bars=False)))
    started = time.perf_counter()
    engine.run()
    seconds = time.perf_counter() - started
    fills = len(engine.trader.generate_order_fills_report())
    engine.dispose()
    print(json.dumps({"ticks": len(ticks), "seconds": seconds, "ticks_per_second": len(ticks) / seconds,
                      "prepare_seconds": prepared, "fills": fills}))


if __name__ == "__main__":
    main(sys.argv[1])
