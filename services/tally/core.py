"""The tally core: per-symbol trade count, quantity and notional, exact (Decimal).

Small on purpose: it exercises everything the runtime promises (state, outputs with
deterministic ids, snapshots, replay) with logic simple enough to check by hand.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

from schemas.events import TallyUpdated, TradeReceived, derive_id
from schemas.topics import DEMO_TALLIES
from services.runtime.service import Emit

ZERO = Decimal(0)


class SymbolTally(msgspec.Struct, frozen=True):
    count: int = 0
    total_qty: Decimal = ZERO
    total_notional: Decimal = ZERO


class TallyState(msgspec.Struct, frozen=True):
    """Totals by symbol. Never mutated: `step` returns a new state with a new dict."""

    symbols: dict[str, SymbolTally] = {}


def initial_state() -> TallyState:
    return TallyState(symbols={})


def step(state: TallyState, trade: TradeReceived) -> tuple[TallyState, list[Emit]]:
    """Add one trade to its symbol's totals and announce the new totals."""
    old = state.symbols.get(trade.symbol, SymbolTally())
    new = SymbolTally(
        count=old.count + 1,
        total_qty=old.total_qty + trade.qty,
        total_notional=old.total_notional + trade.qty * trade.price,
    )
    update = TallyUpdated(
        id=derive_id("tally", trade.id),
        ts_event=trade.ts_event,
        ts_ingest=trade.ts_ingest,
        origin_ts=trade.origin_ts,
        symbol=trade.symbol,
        count=new.count,
        total_qty=new.total_qty,
        total_notional=new.total_notional,
        source_id=trade.id,
    )
    return TallyState(symbols={**state.symbols, trade.symbol: new}), [Emit(DEMO_TALLIES, trade.symbol, update)]


def summarize(state: TallyState) -> dict[str, Any]:
    """Per-symbol totals as plain strings, for `hean state tally`."""
    return {
        symbol: {"count": t.count, "qty": str(t.total_qty), "notional": str(t.total_notional)}
        for symbol, t in sorted(state.symbols.items())
    }
