"""Wires the strategy core: md.trades + md.book + orders.events + ref.instruments, and its own
intents read back from orders.intents → orders.intents, per partition.

All inputs are keyed by symbol and co-partitioned, so instances in one group share the symbols
and each partition's state moves with it on a rebalance (per-partition snapshots). orders.intents
comes last: on equal record stamps the merge (runtime/merge.py) takes the market data first, so
an intent is read back after the record that made it.
"""

from __future__ import annotations

from functools import partial

from schemas.events import (
    AmendOrder,
    BookDeltaReceived,
    BookSnapshotReceived,
    CancelOrder,
    Event,
    ExecutionEvent,
    InstrumentDefined,
    SubmitOrder,
    TradeReceived,
)
from schemas.topics import MD_BOOK, MD_TRADES, ORDERS_EVENTS, ORDERS_INTENTS, REF_INSTRUMENTS
from services.domain.venues import only_venue
from services.runtime.service import ServiceDef
from services.runtime.settings import load_settings
from services.strategy import core
from services.strategy.config import StrategyConfig


def definition(config: StrategyConfig | None = None) -> ServiceDef[core.StrategyState]:
    """The strategy service with its settings (STRATEGY_* variables unless given)."""
    config = config or load_settings(StrategyConfig, "STRATEGY")
    return ServiceDef(
        name="strategy",
        inputs=(MD_TRADES, MD_BOOK, ORDERS_EVENTS, REF_INSTRUMENTS, ORDERS_INTENTS),
        accepts=TradeReceived | BookSnapshotReceived | BookDeltaReceived | ExecutionEvent | InstrumentDefined
        | SubmitOrder | AmendOrder | CancelOrder,
        state_type=core.StrategyState,
        initial_state=core.initial_state,
        step=only_venue(partial(core.step, params=config.params())),
        partitioned=True,
        summarize=core.summarize,
        classify=classify,
        commit_mode=config.commit_mode,
    )


def classify(intent: Event) -> str:
    """Intents by strategy and kind ("maker:SubmitOrder")."""
    return f"{getattr(intent, 'strategy', '')}:{type(intent).__name__}"
