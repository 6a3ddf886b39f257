"""Candles of the trades a simulated market printed, for both dialects' kline reads and Bybit's stream.

`Candles` keeps one symbol's candles at every interval a venue lists, in integer ticks and lot
steps, updated trade by trade as the market prints; Bybit's GET /v5/market/kline and
kline.{interval}.{symbol} stream and Binance's /fapi/v1/klines and 24hr ticker read the same
store, so a candle is the same whichever way it is asked for, and holds every trade of its
interval (not only the ones still in a recent-trades memory). Intervals are epoch-aligned except
weeks (Monday 00:00 UTC on both venues) and months (calendar months, UTC). A period without a trade
has no candle: the simulator never printed one, and REST and stream agree on that.

`CandleFeed` decides what a kline stream pushes after a market step: the open candle when it
traded (confirm false), and once the venue clock is past a candle's end, or a trade opened the next
one, that candle once more as closed. `KlineStream` frames it as Bybit's kline.{interval}.{symbol}
(bybit-v5.md §1.8); the Binance dialect frames it as <symbol>@kline_<interval>.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from services.exchange_sim.market import Instrument
from services.exchange_sim.views import text

MINUTE_MS, DAY_MS = 60_000, 86_400_000
MONDAY_MS = 4 * DAY_MS  # 1970-01-01 was a Thursday: weeks start at 4 days + multiples of 7
KEPT = 1500  # candles kept per interval: Binance's klines limit (Bybit's is 1000)


@dataclass(frozen=True, slots=True)
class Span:
    """An interval's candle boundaries: a fixed width from an offset, or (width 0) calendar months."""

    width_ms: int
    offset_ms: int = 0

    def start(self, at_ms: int) -> int:
        if self.width_ms == 0:
            day = datetime.fromtimestamp(at_ms / 1000, UTC)
            return int(datetime(day.year, day.month, 1, tzinfo=UTC).timestamp() * 1000)
        return at_ms - (at_ms - self.offset_ms) % self.width_ms

    def end(self, start_ms: int) -> int:
        """The candle's last millisecond (both venues give end = next start - 1)."""
        if self.width_ms == 0:
            first = datetime.fromtimestamp(start_ms / 1000, UTC)
            year, month = (first.year + 1, 1) if first.month == 12 else (first.year, first.month + 1)
            return int(datetime(year, month, 1, tzinfo=UTC).timestamp() * 1000) - 1
        return start_ms + self.width_ms - 1


def _minutes(*counts: int) -> dict[str, Span]:
    return {str(n): Span(n * MINUTE_MS) for n in counts}


BYBIT_SPANS: dict[str, Span] = {**_minutes(1, 3, 5, 15, 30, 60, 120, 240, 360, 720), "D": Span(DAY_MS),
                                "W": Span(7 * DAY_MS, MONDAY_MS), "M": Span(0)}
BINANCE_SPANS: dict[str, Span] = {
    **{f"{n}m": Span(n * MINUTE_MS) for n in (1, 3, 5, 15, 30)},
    **{f"{n}h": Span(n * 60 * MINUTE_MS) for n in (1, 2, 4, 6, 8, 12)},
    "1d": Span(DAY_MS), "3d": Span(3 * DAY_MS), "1w": Span(7 * DAY_MS, MONDAY_MS), "1M": Span(0)}


@dataclass(slots=True)
class Candle:
    """One interval's trades: prices in ticks, sizes in lot steps, turnover in ticks x steps."""

    start: int
    end: int
    open: int
    high: int
    low: int
    close: int
    volume: int = 0
    turnover: int = 0
    trades: int = 0  # trade ids covered (Binance counts the trades inside its aggregates)
    buy_volume: int = 0  # taker buys
    buy_turnover: int = 0
    first_id: int = 0
    last_id: int = 0
    updated_ms: int = 0


class Candles:
    """One symbol's candles at each of a venue's intervals, newest last, the last KEPT of each."""

    def __init__(self, spans: dict[str, Span], kept: int = KEPT) -> None:
        self.spans = spans
        self.series: dict[str, deque[Candle]] = {name: deque(maxlen=kept) for name in spans}

    def add(self, at_ms: int, price: int, qty: int, buy: bool, first_id: int = 0, last_id: int = 0) -> None:
        """Count one trade (or one aggregate of trades first_id..last_id) in every interval."""
        value = price * qty
        for name, span in self.spans.items():
            series = self.series[name]
            candle = series[-1] if series else None
            if candle is None or at_ms > candle.end:
                start = span.start(at_ms)
                candle = Candle(start, span.end(start), price, price, price, price, first_id=first_id)
                series.append(candle)
            elif price > candle.high:
                candle.high = price
            elif price < candle.low:
                candle.low = price
            candle.close = price
            candle.volume += qty
            candle.turnover += value
            candle.trades += last_id - first_id + 1 if last_id else 1
            if buy:
                candle.buy_volume += qty
                candle.buy_turnover += value
            candle.last_id = last_id
            candle.updated_ms = at_ms

    def select(self, interval: str, start: int | None, end: int | None) -> list[Candle]:
        """The candles of `interval` whose start is within [start, end], oldest first."""
        return [c for c in self.series[interval]
                if (start is None or c.start >= start) and (end is None or c.start <= end)]


def bybit_fields(candle: Candle, inst: Instrument) -> tuple[str, str, str, str, str, str]:
    """open, high, low, close, volume, turnover as Bybit's kline prints them (plain, zeros trimmed)."""
    tick, step = inst.tick_size, inst.qty_step
    return (text(tick * candle.open), text(tick * candle.high), text(tick * candle.low),
            text(tick * candle.close), text(step * candle.volume), text(tick * step * candle.turnover))


class CandleFeed:
    """Which candles one kline stream pushes: the open one when it changed, then once its end has
    passed (or a trade opened the next) that candle once more as closed. `open_start` is the
    candle last pushed open, `pushed_ms` its last trade then."""

    def __init__(self, interval: str) -> None:
        self.interval = interval
        self.open_start: int | None = None
        self.pushed_ms = 0

    def current(self, candles: Candles, ts_ms: int, idle: bool) -> Candle | None:
        """The open candle for a new subscriber, if the market traded in it; `idle`: nobody was
        subscribed, so what the stream last pushed is forgotten."""
        if idle:
            self.open_start = None
        series = candles.series[self.interval]
        if not series or ts_ms > series[-1].end:
            return None
        if self.open_start is None:
            self.open_start, self.pushed_ms = series[-1].start, series[-1].updated_ms
        return series[-1]

    def due(self, candles: Candles, ts_ms: int, open_due: bool = True) -> list[tuple[Candle, bool]]:
        """After a market step at `ts_ms`: (candle, closed) to push, the closed one first; the open
        one only when `open_due` (a stream's push interval) and it traded since its last push."""
        series = candles.series[self.interval]
        latest = series[-1] if series else None
        out = []
        if self.open_start is not None and (latest is None or latest.start != self.open_start
                                            or ts_ms > latest.end):
            closed = next((c for c in reversed(series) if c.start == self.open_start), None)
            if closed is not None:
                out.append((closed, True))
            self.open_start = None
        if (open_due and latest is not None and ts_ms <= latest.end
                and (latest.start != self.open_start or latest.updated_ms > self.pushed_ms)):
            out.append((latest, False))
            self.open_start, self.pushed_ms = latest.start, latest.updated_ms
        return out


class KlineStream(CandleFeed):
    """Bybit's kline.{interval}.{symbol} of one category: pushed every step that trades."""

    def __init__(self, inst: Instrument, interval: str) -> None:
        super().__init__(interval)
        self.inst = inst
        self.topic = f"kline.{interval}.{inst.symbol}"

    def _frame(self, candle: Candle, confirm: bool, ts_ms: int) -> bytes:
        o, h, low, c, volume, turnover = bybit_fields(candle, self.inst)
        data: dict[str, Any] = {"start": candle.start, "end": candle.end, "interval": self.interval, "open": o,
                                "close": c, "high": h, "low": low, "volume": volume, "turnover": turnover,
                                "confirm": confirm, "timestamp": ts_ms}
        return orjson.dumps({"topic": self.topic, "data": [data], "ts": ts_ms, "type": "snapshot"})

    def snapshot(self, candles: Candles, ts_ms: int, idle: bool) -> bytes | None:
        """A new subscriber's first push: the open candle (Bybit pushes every 1-60 s; the
        simulator's first push is at once)."""
        candle = self.current(candles, ts_ms, idle)
        return self._frame(candle, False, ts_ms) if candle is not None else None

    def advance(self, candles: Candles, ts_ms: int) -> list[bytes]:
        return [self._frame(candle, closed, ts_ms) for candle, closed in self.due(candles, ts_ms)]
