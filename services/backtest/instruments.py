"""The instrument rules the backtest trades under: tick, lot step, minimums and fees.

One function, so the source of instrument rules changes in one line (services/domain, once it
exists, replaces the simulator's listing the live strategy and risk configs read today).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from services.exchange_sim.market import DEFAULT_INSTRUMENTS
from services.exchange_sim.matching import MAKER_FEE, TAKER_FEE


@dataclass(frozen=True, slots=True)
class Rules:
    """What the fill model and the risk/strategy params need of one symbol."""

    symbol: str
    tick_size: Decimal
    qty_step: Decimal
    min_qty: Decimal
    min_notional: Decimal
    maker_fee: Decimal
    taker_fee: Decimal


def instrument_rules(symbol: str) -> Rules | None:
    """The rules of `symbol`, or None when the venue does not list it."""
    listed = DEFAULT_INSTRUMENTS.get(symbol)
    if listed is None:
        return None
    return Rules(symbol, listed.tick_size, listed.qty_step, listed.min_qty, listed.min_notional, MAKER_FEE, TAKER_FEE)


def listed_symbols() -> tuple[str, ...]:
    """Every symbol `instrument_rules` knows."""
    return tuple(DEFAULT_INSTRUMENTS)
