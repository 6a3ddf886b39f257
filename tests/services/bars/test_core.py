"""The bar fold without a broker: buckets, open/close by (ts_event, trade_id), closing and late trades."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from schemas.events import TradeReceived
from services.bars.core import Bar, bucket_of, decode_bar, encode_bar, on_trade

T0 = 1_700_000_000_000_000_000


def trade(i: int, ms: int, price: str, qty: str) -> TradeReceived:
    return TradeReceived(id=f"t{i}", ts_event=T0 + ms * 1_000_000, ts_ingest=T0, symbol="BTCUSDT", trade_id=f"{i}",
                         side="Buy", price=Decimal(price), qty=Decimal(qty))


def run(trades: list[TradeReceived], size: int) -> tuple[Bar | None, list]:
    open_bar, bars, published = None, {}, []
    for t in trades:
        step = on_trade(t, size, open_bar, bars.get(bucket_of(t.ts_event, size)))
        bars[step.bar.bucket] = decode_bar(encode_bar(step.bar))  # through the table's bytes
        open_bar = step.open_bar
        published += step.published
    return open_bar, published


def test_a_later_bucket_closes_the_bar_with_exact_ohlcv_and_vwap() -> None:
    trades = [trade(1, 10, "100.5", "1"), trade(2, 20, "101.0", "2"), trade(3, 30, "99.5", "1"),
              trade(4, 1_500, "102", "1")]
    open_bar, [bar] = run(trades, 1)
    assert (bar.ts_event, bar.open, bar.high, bar.low, bar.close) == (T0, Decimal("100.5"), Decimal("101.0"),
                                                                      Decimal("99.5"), Decimal("99.5"))
    assert (bar.volume, bar.turnover, bar.trades) == (Decimal("4"), Decimal("402.0"), 3)
    assert bar.vwap == Decimal("100.5") and bar.interval_s == 1
    assert open_bar is not None and open_bar.bucket == T0 + 10**9 and open_bar.trades == 1
    _, again = run(trades, 1)
    assert again[0].id == bar.id  # the id is the bar's, so a replay's bar is the same bar


def test_open_and_close_follow_event_time_not_arrival_and_a_late_trade_republishes_its_bar() -> None:
    trades = [trade(2, 500, "10", "1"), trade(1, 100, "11", "1"), trade(3, 1_200, "12", "1"),
              trade(4, 900, "9", "1")]
    _, published = run(trades, 1)
    first, late = published
    assert (first.open, first.close, first.trades) == (Decimal("11"), Decimal("10"), 2)
    assert (late.id, late.open, late.close, late.low, late.trades) == (first.id, Decimal("11"), Decimal("9"),
                                                                       Decimal("9"), 3)
    assert msgspec.structs.replace(late, low=first.low, close=first.close, trades=2, volume=first.volume,
                                   turnover=first.turnover, vwap=first.vwap) == first
