"""The strategy service's core: per-symbol state of each configured strategy, one `step`.

Trades feed the EMA strategy, books the market maker, and our own order events (matched by
account and strategy name) both. A symbol's instrument (ref.instruments, co-partitioned with the
market data) is part of its state: the maker quotes on the venue's tick grid, and quotes nothing
for a symbol whose rules it has not read. Pure and deterministic: time comes from events.
"""

from __future__ import annotations

from typing import Any

import msgspec

from schemas.events import BookDeltaReceived, BookSnapshotReceived, Event, InstrumentDefined, OrderEvent, TradeReceived
from schemas.topics import ORDERS_INTENTS
from services.domain.instrument import Instrument, from_defined
from services.runtime.service import Emit
from services.strategy import ema, maker


class StrategyParams(msgspec.Struct, frozen=True, kw_only=True):
    """Which strategies run, with their parameters (one maker parameter set per symbol)."""

    ema: ema.EmaParams | None = None
    makers: dict[str, maker.MakerParams] = {}


class SymbolState(msgspec.Struct, frozen=True):
    ema: ema.EmaState = ema.EmaState()
    maker: maker.MakerState = maker.MakerState()
    instrument: Instrument | None = None


class StrategyState(msgspec.Struct, frozen=True):
    symbols: dict[str, SymbolState] = {}


def initial_state() -> StrategyState:
    return StrategyState(symbols={})


def step(state: StrategyState, event: Event, params: StrategyParams) -> tuple[StrategyState, list[Emit]]:
    symbol = getattr(event, "symbol", "")
    current = state.symbols.get(symbol, SymbolState())
    intents: list[Event] = []
    new = current
    if isinstance(event, TradeReceived) and params.ema is not None:
        ema_state, intents = ema.on_trade(current.ema, event, params.ema)
        new = SymbolState(ema_state, current.maker, current.instrument)
    elif isinstance(event, BookSnapshotReceived | BookDeltaReceived) and symbol in params.makers:
        maker_params = _on_grid(params.makers[symbol], current.instrument)
        if maker_params is None:
            return state, []
        maker_state, intents = maker.on_book(current.maker, event, maker_params)
        new = SymbolState(current.ema, maker_state, current.instrument)
    elif isinstance(event, InstrumentDefined):
        instrument = from_defined(event)
        if instrument == current.instrument:
            return state, []
        new = SymbolState(current.ema, current.maker, instrument)
    elif isinstance(event, OrderEvent):
        ema_state, maker_state = current.ema, current.maker
        if params.ema is not None and event.account == params.ema.account:
            ema_state = msgspec.structs.replace(current.ema, orders=current.ema.orders.apply(event))
        if symbol in params.makers and event.account == params.makers[symbol].account:
            maker_state = maker.on_order_event(current.maker, event)
        new = SymbolState(ema_state, maker_state, current.instrument)
    if new is current:
        return state, []
    return StrategyState(symbols={**state.symbols, symbol: new}), [Emit(ORDERS_INTENTS, symbol, i) for i in intents]


def _on_grid(params: maker.MakerParams, instrument: Instrument | None) -> maker.MakerParams | None:
    """The maker's parameters on the venue's tick grid; None (do not quote) without an instrument,
    unless the configuration names a tick size itself."""
    if params.tick_size:
        return params
    if instrument is None:
        return None
    return msgspec.structs.replace(params, tick_size=instrument.tick_size)


def summarize(state: StrategyState) -> dict[str, Any]:
    return {s: {"ema_signal": v.ema.signal, "ema_position": str(v.ema.orders.position),
                "maker_position": str(v.maker.orders.position),
                "quotes": [str(q.price) if q else None for q in (v.maker.bid, v.maker.ask)]}
            for s, v in sorted(state.symbols.items())}
