"""Which venue's market the trading services act on, and the filter that keeps the rest out.

md.* carries every venue's market data under one schema (Bybit's and Binance's BTCUSDT are both
"BTCUSDT" with a different `venue`), so the recorder and the live view see all of it side by side.
Strategy, risk and accounting trade one venue: a Binance book must never move the Bybit maker's
quotes, nor a Binance ticker mark a Bybit position. `only_venue` wraps a service's pure step (and
fold) so market data and reference data of any other venue leave the state as it is; it is part of
the fold, so a replay filters exactly as the live service did. Order events are not filtered:
they belong to an account, and an account trades on one venue.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from schemas.events import (
    BookDeltaReceived,
    BookSnapshotReceived,
    InstrumentDefined,
    TickerUpdated,
    TradeReceived,
)

__all__ = ["MARKET_EVENTS", "TRADED_VENUE", "foreign", "only_venue", "only_venue_fold"]

TRADED_VENUE = "bybit"  # the simulator speaks Bybit V5, so a simulated session trades "bybit" too
MARKET_EVENTS = (TradeReceived, BookSnapshotReceived, BookDeltaReceived, TickerUpdated, InstrumentDefined)
S = TypeVar("S")


_MARKET_TYPES = frozenset(MARKET_EVENTS)  # the events are final structs: a type lookup, not isinstance


def foreign(event: object, venue: str) -> bool:
    """True for market or reference data of another venue than `venue`."""
    return type(event) in _MARKET_TYPES and event.venue != venue  # type: ignore[attr-defined]


def only_venue(step: Callable[[S, Any], tuple[S, Sequence[Any]]],
               venue: str = TRADED_VENUE) -> Callable[[S, Any], tuple[S, Sequence[Any]]]:
    """`step` that ignores other venues' market data (same state, no outputs). On the hot path of
    every event, so the check is inlined: one set lookup and one string compare."""
    market = _MARKET_TYPES

    def filtered(state: S, event: Any) -> tuple[S, Sequence[Any]]:
        if type(event) in market and event.venue != venue:
            return state, ()
        return step(state, event)
    return filtered


def only_venue_fold(fold: Callable[[S, Any], S], venue: str = TRADED_VENUE) -> Callable[[S, Any], S]:
    """`fold` (a step without outputs) that ignores other venues' market data."""
    market = _MARKET_TYPES

    def filtered(state: S, event: Any) -> S:
        return state if type(event) in market and event.venue != venue else fold(state, event)
    return filtered
