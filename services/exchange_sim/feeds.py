"""Bybit V5 public frames from the simulated market: orderbook, publicTrade, tickers.

Each `BookStream` is one `orderbook.{depth}.{symbol}` stream. It remembers the top-`depth` view it
last published and its update id `u`; each market step it diffs the new view against it and
publishes the changes as a delta with u + 1 (levels that left the view are sent with size "0",
as Bybit does). A new subscriber gets a snapshot of the last published view at the current u, so
the deltas that follow chain onto it. Depth 1 is snapshot-only. Faults: a gap skips one u, a
reset publishes a u=1 snapshot (a venue restart).
"""

from __future__ import annotations

import uuid

import orjson

from services.exchange_sim.market import Fill, SymbolMarket

DEPTHS = (1, 50, 200)
_TRADE_IDS = uuid.UUID("6f1c1f2e-5b1a-4c55-9a57-2f6e0b6f3a10")  # namespace: same seed, same trade ids


def _levels(market: SymbolMarket, side: dict[int, int], prices: list[int]) -> list[list[str]]:
    inst = market.instrument
    return [[inst.price_text(p), inst.qty_text(side[p]) if p in side else "0"] for p in prices]


class BookStream:
    """One orderbook topic of one symbol."""

    def __init__(self, market: SymbolMarket, depth: int, category: str = "linear") -> None:
        self.market = market
        self.depth = depth
        self.category = category
        self.topic = f"orderbook.{depth}.{market.instrument.symbol}"
        self.bids, self.asks = market.top(depth)
        self.update_id = 1
        self.pending_gap = False

    def _frame(self, kind: str, bids: list[list[str]], asks: list[list[str]], ts_ms: int, seq: int) -> bytes:
        data = {"s": self.market.instrument.symbol, "b": bids, "a": asks, "u": self.update_id, "seq": seq}
        if self.depth == 1 or self.category == "spot":  # these put ts before type (bybit-v5.md §1.5)
            return orjson.dumps({"topic": self.topic, "ts": ts_ms, "type": kind, "data": data, "cts": ts_ms - 2})
        return orjson.dumps({"topic": self.topic, "type": kind, "ts": ts_ms, "data": data, "cts": ts_ms - 2})

    def snapshot(self, ts_ms: int, seq: int) -> bytes:
        bids = sorted(self.bids, reverse=True)
        asks = sorted(self.asks)
        return self._frame("snapshot", _levels(self.market, self.bids, bids),
                           _levels(self.market, self.asks, asks), ts_ms, seq)

    def advance(self, top: tuple[dict[int, int], dict[int, int]], ts_ms: int, seq: int) -> bytes | None:
        """Publish the change from the last view to `top` (the market's top levels), if any."""
        bids = {p: q for p, q in sorted(top[0].items(), reverse=True)[: self.depth]}
        asks = {p: q for p, q in sorted(top[1].items())[: self.depth]}
        changed_bids = sorted({p for p in bids if self.bids.get(p) != bids[p]} | (self.bids.keys() - bids.keys()),
                              reverse=True)
        changed_asks = sorted({p for p in asks if self.asks.get(p) != asks[p]} | (self.asks.keys() - asks.keys()))
        if not changed_bids and not changed_asks:
            return None
        self.bids, self.asks = bids, asks
        self.update_id += 2 if self.pending_gap else 1
        self.pending_gap = False
        if self.depth == 1:
            return self.snapshot(ts_ms, seq)
        return self._frame("delta", _levels(self.market, bids, changed_bids),
                           _levels(self.market, asks, changed_asks), ts_ms, seq)

    def reset(self, ts_ms: int, seq: int) -> bytes:
        """A venue restart: u starts over at 1 with a full snapshot."""
        self.update_id = 1
        return self.snapshot(ts_ms, seq)

    def refresh(self) -> None:
        """Catch the view up with the market after steps nobody listened to (they were not
        advanced); a changed book gets a new u, so a returning client's snapshot is a new update."""
        bids, asks = self.market.top(self.depth)
        if (bids, asks) != (self.bids, self.asks):
            self.bids, self.asks = bids, asks
            self.update_id += 1


def trade_rows(market: SymbolMarket, fills: list[Fill], ts_ms: int, seq: int, trade_counter: int) -> list[dict]:
    """The publicTrade `data` items of one step's fills (bybit-v5.md §1.6); ids are derived from
    the seed and the trade count, so the same seed prints the same trade ids."""
    inst = market.instrument
    data = []
    for i, fill in enumerate(fills):
        trade_id = str(uuid.uuid5(_TRADE_IDS, f"{inst.symbol}:{market.seed}:{trade_counter + i}"))
        data.append({"T": ts_ms, "s": inst.symbol, "S": fill.side, "v": inst.qty_text(fill.qty),
                     "p": inst.price_text(fill.price), "L": "PlusTick" if fill.side == "Buy" else "MinusTick",
                     "i": trade_id, "BT": False, "seq": seq})
    return data


def trade_frame(market: SymbolMarket, fills: list[Fill], ts_ms: int, seq: int, trade_counter: int,
                rows: list[dict] | None = None) -> bytes:
    """One publicTrade message for the fills of one step (`rows` when trade_rows already made them)."""
    data = rows if rows is not None else trade_rows(market, fills, ts_ms, seq, trade_counter)
    return orjson.dumps({"topic": f"publicTrade.{market.instrument.symbol}", "type": "snapshot", "ts": ts_ms,
                         "data": data})


class TickerStream:
    """tickers.{symbol}: a snapshot on subscribe, then deltas of the fields that changed."""

    def __init__(self, market: SymbolMarket, category: str = "linear") -> None:
        self.market = market
        self.category = category
        self.topic = f"tickers.{market.instrument.symbol}"
        self.fields = self._current()

    def _current(self) -> dict[str, str]:
        m, inst = self.market, self.market.instrument
        bid, ask = m.best_bid(), m.best_ask()
        mark = inst.price_text((bid + ask) // 2)
        fields = {"symbol": inst.symbol, "lastPrice": inst.price_text(m.last_price), "markPrice": mark,
                  "indexPrice": mark, "bid1Price": inst.price_text(bid), "bid1Size": inst.qty_text(m.bids[bid]),
                  "ask1Price": inst.price_text(ask), "ask1Size": inst.qty_text(m.asks[ask]),
                  "volume24h": inst.qty_text(m.volume),
                  "turnover24h": f"{inst.tick_size * inst.qty_step * m.turnover_ticks:f}",
                  "fundingRate": "0.0001"}
        if self.category == "spot":
            for key in ("markPrice", "indexPrice", "fundingRate"):
                fields.pop(key)
        return fields

    def snapshot(self, ts_ms: int, cs: int) -> bytes:
        return orjson.dumps({"topic": self.topic, "type": "snapshot", "data": self.fields, "cs": cs, "ts": ts_ms})

    def refresh(self) -> None:
        """Catch up with the market after steps nobody listened to."""
        self.fields = self._current()

    def advance(self, ts_ms: int, cs: int) -> bytes | None:
        current = self._current()
        changed = {k: v for k, v in current.items() if self.fields.get(k) != v}
        self.fields = current
        if not changed:
            return None
        if self.category == "spot":  # spot tickers are snapshot-only
            return self.snapshot(ts_ms, cs)
        return orjson.dumps({"topic": self.topic, "type": "delta", "data": {"symbol": current["symbol"], **changed},
                             "cs": cs, "ts": ts_ms})
