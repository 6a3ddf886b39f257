"""Strategy settings (env prefix STRATEGY_): which strategies run, for which account, how big."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import msgspec

from services.runtime.errors import ConfigError
from services.strategy.core import StrategyParams
from services.strategy.ema import EmaParams
from services.strategy.maker import MakerParams


class StrategyConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    account: str = "sim-1"
    # How a batch of intents commits (docs/COMMITS.md); HEAN_COMMIT_MODE overrides.
    commit_mode: Literal["transaction", "idempotent"] = "idempotent"
    ema: bool = True
    ema_fast: int = 12
    ema_slow: int = 48
    ema_qty: Decimal = Decimal("0.01")
    # SYMBOL=QTY sizes that differ from ema_qty (each symbol has its own qty step and price).
    ema_qtys: tuple[str, ...] = ("ETHUSDT=0.1", "SOLUSDT=1")
    maker_symbols: tuple[str, ...] = ("BTCUSDT",)
    maker_qty: Decimal = Decimal("0.01")
    maker_half_spread_ticks: int = 2
    maker_max_position: Decimal = Decimal("0.05")
    # A re-quote is an amend (a cancel plus a new order with maker_amend off): at most one a second
    # keeps the maker well under the venue's order-rate limit (Bybit's 10 requests/s per endpoint).
    maker_min_requote_ms: int = 1_000
    maker_amend: bool = True
    # SYMBOL=TICK entries that override the venue's tick size (ref.instruments); a maker symbol
    # without one quotes on the grid of the instrument it folded from the log.
    tick_sizes: tuple[str, ...] = ()

    def params(self) -> StrategyParams:
        """The core's parameters; a malformed tick size fails at start, by name."""
        try:
            ticks = {symbol: Decimal(tick) for symbol, tick in (entry.split("=", 1) for entry in self.tick_sizes)}
        except (ValueError, ArithmeticError):
            raise ConfigError(f"STRATEGY_TICK_SIZES entries must be SYMBOL=TICK, were {self.tick_sizes}") from None
        try:
            sizes = {symbol: Decimal(qty) for symbol, qty in (entry.split("=", 1) for entry in self.ema_qtys)}
            ema = EmaParams(account=self.account, fast=self.ema_fast, slow=self.ema_slow, qty=self.ema_qty,
                            qty_by_symbol=sizes) if self.ema else None
        except (ValueError, ArithmeticError) as exc:
            raise ConfigError(f"STRATEGY_EMA_FAST/SLOW/QTYS: {exc}") from None
        makers = {s: MakerParams(account=self.account, tick_size=ticks.get(s, Decimal(0)), qty=self.maker_qty,
                                 half_spread_ticks=self.maker_half_spread_ticks,
                                 max_position=self.maker_max_position,
                                 min_requote_ns=self.maker_min_requote_ms * 1_000_000, amend=self.maker_amend)
                  for s in self.maker_symbols}
        return StrategyParams(ema=ema, makers=makers)
