"""The strategy service's core: per-symbol state of each configured strategy, one `step`.

Trades feed the EMA strategy, books the market maker, and our own order events (matched by
account and strategy name) both. A symbol's instrument (ref.instruments, co-partitioned with the
market data) is part of its state: the maker quotes on the venue's tick grid, and quotes nothing
for a symbol whose rules it has not read. Pure and deterministic: time comes from events.

Its own intents are folded back from orders.intents (as risk folds its decisions), so the state
holds what the log holds, first in the log wins (docs/COMMITS.md). An intent is applied when it
is emitted and kept in `pending` until it is read back; read back equal, it only leaves
`pending`. One the log holds otherwise (a crash's re-application made it with other terms) or
that this fold never emitted (an earlier incarnation did, from another interleaving) is applied
as the log states it (`ema.adopt`, `maker.adopt`): its working quantity counts, and a maker quote
the maker does not hold is cancelled, so no order of ours rests unknown to the strategy. A copy
of an intent already read back is dropped (`read`, services/domain/repeats.py). Exact as long as
an intent is stamped no earlier than the market record that caused it (one clock; orders.intents
is the last input, so equal stamps merge it after the market data).
"""

from __future__ import annotations

from typing import Any

import msgspec

from schemas.events import (
    AmendOrder,
    BookDeltaReceived,
    BookSnapshotReceived,
    CancelOrder,
    Event,
    InstrumentDefined,
    OrderEvent,
    SubmitOrder,
    TradeReceived,
)
from schemas.topics import ORDERS_INTENTS
from services.domain import repeats
from services.domain.instrument import Instrument, from_defined
from services.runtime.service import Emit
from services.strategy import ema, maker


class StrategyParams(msgspec.Struct, frozen=True, kw_only=True):
    """Which strategies run, with their parameters (one maker parameter set per symbol)."""

    ema: ema.EmaParams | None = None
    makers: dict[str, maker.MakerParams] = {}


OwnIntent = SubmitOrder | AmendOrder | CancelOrder  # what the strategies emit


class SymbolState(msgspec.Struct, frozen=True):
    ema: ema.EmaState = ema.EmaState()
    maker: maker.MakerState = maker.MakerState()
    instrument: Instrument | None = None
    pending: dict[str, OwnIntent] = {}  # emitted, not read back from orders.intents yet
    read: repeats.Window = {}  # own intents read back: a copy of one is dropped


class StrategyState(msgspec.Struct, frozen=True):
    symbols: dict[str, SymbolState] = {}


def initial_state() -> StrategyState:
    return StrategyState(symbols={})


def step(state: StrategyState, event: Event, params: StrategyParams) -> tuple[StrategyState, list[Emit]]:
    symbol = getattr(event, "symbol", "")
    current = state.symbols.get(symbol, SymbolState())
    intents: list[Event] = []
    new = current
    replace = msgspec.structs.replace
    if isinstance(event, TradeReceived) and params.ema is not None:
        ema_state, intents = ema.on_trade(current.ema, event, params.ema)
        new = replace(current, ema=ema_state)
    elif isinstance(event, BookSnapshotReceived | BookDeltaReceived) and symbol in params.makers:
        maker_params = _on_grid(params.makers[symbol], current.instrument)
        if maker_params is None:
            return state, []
        maker_state, intents = maker.on_book(current.maker, event, maker_params)
        new = replace(current, maker=maker_state)
    elif isinstance(event, InstrumentDefined):
        instrument = from_defined(event)
        if instrument == current.instrument:
            return state, []
        new = replace(current, instrument=instrument)
    elif isinstance(event, OrderEvent):
        ema_state, maker_state = current.ema, current.maker
        if params.ema is not None and event.account == params.ema.account:
            ema_state = replace(current.ema, orders=current.ema.orders.apply(event))
        if symbol in params.makers and event.account == params.makers[symbol].account:
            maker_state = maker.on_order_event(current.maker, event)
        new = replace(current, ema=ema_state, maker=maker_state)
    elif isinstance(event, SubmitOrder | AmendOrder | CancelOrder):
        new, intents = _read_back(current, event, params)
    if new is current:
        return state, []
    if intents:
        new = replace(new, pending={**new.pending, **{i.id: i for i in intents
                                                      if not repeats.seen(new.read, i.id, i.ts_event)}})
    return StrategyState(symbols={**state.symbols, symbol: new}), [Emit(ORDERS_INTENTS, symbol, i) for i in intents]


def _owner(intent: OwnIntent, params: StrategyParams) -> str:
    """Which of our strategies an intent on orders.intents is ("ema", "maker"), or "" (not ours)."""
    if intent.strategy == "ema" and params.ema is not None and intent.account == params.ema.account:
        return "ema" if isinstance(intent, SubmitOrder) else ""
    maker_params = params.makers.get(intent.symbol)
    if intent.strategy == "maker" and maker_params is not None and intent.account == maker_params.account:
        return "maker"
    return ""


def _read_back(current: SymbolState, intent: OwnIntent, params: StrategyParams) -> tuple[SymbolState, list[Event]]:
    """Fold one of our intents as the log holds it (see the module docstring): once per id."""
    owner = _owner(intent, params)
    if not owner or repeats.seen(current.read, intent.id, intent.ts_event):
        return current, []
    sent = current.pending.get(intent.id)
    pending = current.pending if sent is None else {k: v for k, v in current.pending.items() if k != intent.id}
    new = msgspec.structs.replace(current, pending=pending,
                                  read=repeats.remember(current.read, intent.id, intent.ts_event))
    if sent == intent:
        return new, []
    if owner == "ema":
        assert isinstance(intent, SubmitOrder)
        return msgspec.structs.replace(new, ema=ema.adopt(new.ema, intent)), []
    maker_state, out = maker.adopt(new.maker, intent)
    return msgspec.structs.replace(new, maker=maker_state), out


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
                "quotes": [str(q.price) if q else None for q in (v.maker.bid, v.maker.ask)],
                "intents_not_read_back": len(v.pending)}
            for s, v in sorted(state.symbols.items())}
