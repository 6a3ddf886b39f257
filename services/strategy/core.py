"""The strategy service's core: per-symbol state of each configured strategy, one `step`.

Trades feed the EMA strategy, books the market maker, and our own order events (matched by
account and strategy name) both. Pure and deterministic: time comes from events.
"""

from __future__ import annotations

from typing import Any

import msgspec

from schemas.events import BookDeltaReceived, BookSnapshotReceived, Event, OrderEvent, TradeReceived
from schemas.topics import ORDERS_INTENTS
from services.runtime.service import Emit
from services.strategy import ema, maker


class StrategyParams(msgspec.Struct, frozen=True, kw_only=True):
    """Which strategies run, with their parameters (one maker parameter set per symbol)."""

    ema: ema.EmaParams | None = None
    makers: dict[str, maker.MakerParams] = {}


class SymbolState(msgspec.Struct, frozen=True):
    ema: ema.EmaState = ema.EmaState()
    maker: maker.MakerState = maker.MakerState()


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
        new = SymbolState(ema_state, current.maker)
    elif isinstance(event, BookSnapshotReceived | BookDeltaReceived) and symbol in params.makers:
        maker_state, intents = maker.on_book(current.maker, event, params.makers[symbol])
        new = SymbolState(current.ema, maker_state)
    elif isinstance(event, OrderEvent):
        ema_state, maker_state = current.ema, current.maker
        if params.ema is not None and event.account == params.ema.account:
            ema_state = msgspec.structs.replace(current.ema, orders=current.ema.orders.apply(event))
        if symbol in params.makers and event.account == params.makers[symbol].account:
            maker_state = maker.on_order_event(current.maker, event)
        new = SymbolState(ema_state, maker_state)
    if new is current:
        return state, []
    return StrategyState(symbols={**state.symbols, symbol: new}), [Emit(ORDERS_INTENTS, symbol, i) for i in intents]


def summarize(state: StrategyState) -> dict[str, Any]:
    return {s: {"ema_signal": v.ema.signal, "ema_position": str(v.ema.orders.position),
                "maker_position": str(v.maker.orders.position),
                "quotes": [str(q.price) if q else None for q in (v.maker.bid, v.maker.ask)]}
            for s, v in sorted(state.symbols.items())}
