"""The simulator's market: one seeded price process and L2 book per symbol, in integer units.

Prices are integer ticks and sizes integer lot steps, so the book is exact and the same seed
gives the same market step by step. Each `step()`:
  - switches volatility regime now and then (calm / busy) and rarely jumps;
  - moves the mid by a regime-sized random number of ticks; a move up is aggressive buying that
    consumes ask levels (trades, taker Buy), a move down consumes bids;
  - otherwise a small taker order may hit the top of one side (a partial level fill);
  - refreshes a few resting sizes, and keeps `levels` price levels on each side near the mid.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True)
class Instrument:
    """What the venue's instruments-info says about a symbol (bybit-v5.md §3.5, §4.1)."""

    symbol: str
    tick_size: Decimal
    qty_step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal
    start_price: Decimal
    base_coin: str
    quote_coin: str = "USDT"

    @property
    def price_scale(self) -> int:
        return max(0, -self.tick_size.as_tuple().exponent)  # type: ignore[operator]

    @property
    def qty_scale(self) -> int:
        return max(0, -self.qty_step.as_tuple().exponent)  # type: ignore[operator]

    def price_text(self, ticks: int) -> str:
        return f"{self.tick_size * ticks:.{self.price_scale}f}"

    def qty_text(self, steps: int) -> str:
        return f"{self.qty_step * steps:.{self.qty_scale}f}"


DEFAULT_INSTRUMENTS: dict[str, Instrument] = {
    "BTCUSDT": Instrument("BTCUSDT", Decimal("0.10"), Decimal("0.001"), Decimal("0.001"), Decimal("1190.000"),
                          Decimal("5"), Decimal("65000.00"), "BTC"),
    "ETHUSDT": Instrument("ETHUSDT", Decimal("0.01"), Decimal("0.01"), Decimal("0.01"), Decimal("7240.00"),
                          Decimal("5"), Decimal("3200.00"), "ETH"),
    "SOLUSDT": Instrument("SOLUSDT", Decimal("0.010"), Decimal("0.1"), Decimal("0.1"), Decimal("79770.0"),
                          Decimal("5"), Decimal("150.000"), "SOL"),
}


@dataclass(frozen=True, slots=True)
class Fill:
    """One public trade: taker side, price in ticks, size in steps."""

    side: str
    price: int
    qty: int


@dataclass
class SymbolMarket:
    """One symbol's market state and its random process."""

    instrument: Instrument
    seed: int
    levels: int = 200
    bids: dict[int, int] = field(default_factory=dict)
    asks: dict[int, int] = field(default_factory=dict)
    last_price: int = 0
    volume: int = 0
    turnover_ticks: int = 0
    busy: bool = False
    steps: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed ^ zlib.crc32(self.instrument.symbol.encode()))
        mid = int(self.instrument.start_price / self.instrument.tick_size)
        self.last_price = mid
        for i in range(self.levels):
            self.bids[mid - i] = self._size()
            self.asks[mid + 1 + i] = self._size()

    def _size(self) -> int:
        min_steps = int(self.instrument.min_qty / self.instrument.qty_step)
        return max(min_steps, int(self.rng.lognormvariate(4.5, 1.0)) * min_steps)

    def best_bid(self) -> int:
        return max(self.bids)

    def best_ask(self) -> int:
        return min(self.asks)

    def mark_ticks(self) -> int:
        """The mark in ticks: the mid, or, while an order has just eaten one side whole (refilled
        after it), the last price. Positions are valued and funding charged at it."""
        return (self.best_bid() + self.best_ask()) // 2 if self.bids and self.asks else self.last_price

    def mid_ticks2(self) -> int:
        """Twice the mid in ticks (exact even when the spread is odd)."""
        return self.best_bid() + self.best_ask()

    def step(self) -> list[Fill]:
        """Advance the market one step; returns the public trades it printed."""
        rng = self.rng
        self.steps += 1
        if rng.random() < (0.02 if self.busy else 0.01):
            self.busy = not self.busy
        sigma = 3.0 if self.busy else 0.8
        move = round(rng.gauss(0.0, sigma))
        if rng.random() < 0.002:
            move += rng.choice((-1, 1)) * rng.randint(20, 60)
        fills: list[Fill] = []
        if move > 0:
            fills = self._sweep("Buy", self.best_ask() + move - 1)
        elif move < 0:
            fills = self._sweep("Sell", self.best_bid() + move + 1)
        elif rng.random() < 0.5:
            fills = self._nibble("Buy" if rng.random() < 0.5 else "Sell")
        self._refresh()
        self._keep_depth()
        for fill in fills:
            self.last_price = fill.price
            self.volume += fill.qty
            self.turnover_ticks += fill.qty * fill.price
        return fills

    def _sweep(self, side: str, through: int) -> list[Fill]:
        """A taker consumes every level up to `through` (asks for Buy, bids for Sell)."""
        book = self.asks if side == "Buy" else self.bids
        prices = sorted(p for p in book if (p <= through if side == "Buy" else p >= through))
        if side == "Sell":
            prices.reverse()
        if not prices:
            prices = [self.best_ask() if side == "Buy" else self.best_bid()]
        fills = [Fill(side, p, book.pop(p)) for p in prices]
        # Makers refill behind the move: the other side follows, keeping a 1-3 tick spread.
        if side == "Buy":
            new_bid = max(prices) - self.rng.randint(0, 2)
            for p in range(self.best_bid() + 1, new_bid + 1):
                self.bids[p] = self._size()
            if not self.asks or min(self.asks) <= new_bid:
                self.asks[new_bid + 1] = self._size()
        else:
            new_ask = min(prices) + self.rng.randint(0, 2)
            for p in range(new_ask, self.best_ask()):
                self.asks[p] = self._size()
            if not self.bids or max(self.bids) >= new_ask:
                self.bids[new_ask - 1] = self._size()
        return fills

    def _nibble(self, side: str) -> list[Fill]:
        book = self.asks if side == "Buy" else self.bids
        price = min(book) if side == "Buy" else max(book)
        size = book[price]
        take = max(1, int(size * self.rng.uniform(0.05, 0.6)))
        if take >= size:
            del book[price]
            if not book:
                book[price] = self._size()
        else:
            book[price] = size - take
        return [Fill(side, price, min(take, size))]

    def _refresh(self) -> None:
        rng = self.rng
        for book in (self.bids, self.asks):
            for _ in range(rng.randint(0, 3)):
                price = rng.choice(list(book))
                book[price] = self._size()

    def _keep_depth(self) -> None:
        bid, ask = self.best_bid(), self.best_ask()
        for p in range(bid, bid - self.levels, -1):
            if p > 0 and p not in self.bids:
                self.bids[p] = self._size()
        for p in range(ask, ask + self.levels):
            if p not in self.asks:
                self.asks[p] = self._size()
        for p in [p for p in self.bids if p <= bid - self.levels]:
            del self.bids[p]
        for p in [p for p in self.asks if p >= ask + self.levels]:
            del self.asks[p]

    def top(self, depth: int) -> tuple[dict[int, int], dict[int, int]]:
        """The best `depth` levels of each side (ticks → steps)."""
        bids = sorted(self.bids, reverse=True)[:depth]
        asks = sorted(self.asks)[:depth]
        return {p: self.bids[p] for p in bids}, {p: self.asks[p] for p in asks}


class Market:
    """All symbols of the simulated venue, each with its own seeded process."""

    def __init__(self, instruments: dict[str, Instrument] | None = None, seed: int = 7, levels: int = 200) -> None:
        self.instruments = instruments or DEFAULT_INSTRUMENTS
        self.symbols = {s: SymbolMarket(i, seed, levels) for s, i in self.instruments.items()}
