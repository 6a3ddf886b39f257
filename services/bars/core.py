"""Bars from trades, pure: md.trades → 1 s and 1 m OHLCV + VWAP + trade count per symbol (md.bars).

A bar is folded trade by trade and published as BarClosed when the symbol's first trade of a
later bucket arrives (event time, never the wall clock), so the same trades give the same bars
live, after a crash and in a replay. The buckets, the open/close order (ts_event, trade_id) and
the exact sums are those of ClickHouse's candles_1s / candles_1m views (schemas/clickhouse/
010_candles.sql), which a test compares them with. No I/O; the faust shell (app.py) keeps the
state in changelog-backed tables.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from schemas.events import BarClosed, TradeReceived, derive_id

INTERVALS_S = (1, 60)
"""The bar sizes, in seconds: candles_1s and candles_1m."""
_NS = 10**9


class Bar(msgspec.Struct, frozen=True, array_like=True):
    """A bar being built: what its BarClosed needs, plus the (ts_event, trade_id) of its first
    and last trade, which decide open and close whatever order the trades arrive in."""

    bucket: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    turnover: Decimal
    trades: int
    first: tuple[int, str]
    last: tuple[int, str]
    venue: str
    category: str


_bar_encoder = msgspec.msgpack.Encoder()
_bar_decoder = msgspec.msgpack.Decoder(Bar)


def encode_bar(bar: Bar) -> bytes:
    """A bar as a table value (the changelog carries these bytes)."""
    return _bar_encoder.encode(bar)


def decode_bar(data: bytes) -> Bar:
    return _bar_decoder.decode(data)


def bucket_of(ts_event: int, interval_s: int) -> int:
    """The bar a trade belongs to: its start in ns, as toStartOfSecond / toStartOfMinute give it."""
    size = interval_s * _NS
    return ts_event - ts_event % size


def fold(bar: Bar | None, trade: TradeReceived, bucket: int) -> Bar:
    """The bar `bucket` with `trade` in it (`bar` is that bucket's bar so far, or None)."""
    key = (trade.ts_event, trade.trade_id)
    price, qty = trade.price, trade.qty
    if bar is None:
        return Bar(bucket, price, price, price, price, qty, price * qty, 1, key, key, trade.venue, trade.category)
    first, last = min(bar.first, key), max(bar.last, key)
    return Bar(bucket, price if first == key else bar.open, max(bar.high, price), min(bar.low, price),
               price if last == key else bar.close, bar.volume + qty, bar.turnover + price * qty, bar.trades + 1,
               first, last, bar.venue, bar.category)


def closed(symbol: str, interval_s: int, bar: Bar, closing: TradeReceived) -> BarClosed:
    """The event of a finished bar. Its id is the bar's (symbol, size, bucket), so a replay that
    publishes it again is a visible duplicate, never a second bar."""
    return BarClosed(id=derive_id("bar", symbol, interval_s, bar.bucket), ts_event=bar.bucket,
                     ts_ingest=closing.ts_ingest, origin_ts=closing.origin_ts or closing.ts_ingest,
                     venue=bar.venue, category=bar.category, symbol=symbol, interval_s=interval_s, open=bar.open,
                     high=bar.high, low=bar.low, close=bar.close, volume=bar.volume, turnover=bar.turnover,
                     vwap=bar.turnover / bar.volume if bar.volume else bar.close, trades=bar.trades)


class Step(msgspec.Struct, frozen=True):
    """What one trade does to one bar size: the bar of its bucket after it, the symbol's open bar
    after it, and the bars to publish."""

    bar: Bar
    open_bar: Bar
    published: list[BarClosed]


def on_trade(trade: TradeReceived, interval_s: int, open_bar: Bar | None, bar_at: Bar | None) -> Step:
    """One trade against the symbol's open bar and (for a late trade) its own bucket's bar `bar_at`.

    A trade of a later bucket closes the open bar (published) and opens its own; a trade of the
    open bucket grows it; a trade of an earlier bucket grows that bucket's bar and republishes it."""
    bucket = bucket_of(trade.ts_event, interval_s)
    if open_bar is None or bucket > open_bar.bucket:
        bar = fold(None, trade, bucket)
        published = [] if open_bar is None else [closed(trade.symbol, interval_s, open_bar, trade)]
        return Step(bar, bar, published)
    if bucket == open_bar.bucket:
        bar = fold(open_bar, trade, bucket)
        return Step(bar, bar, [])
    bar = fold(bar_at, trade, bucket)
    return Step(bar, open_bar, [closed(trade.symbol, interval_s, bar, trade)])
