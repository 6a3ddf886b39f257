"""Wires the algos core: parents and their cancels (orders.intents), risk's rejections
(orders.decisions), the children's reports (orders.events), md.trades and md.book (market time,
volume, the touch) and ref.instruments in; children and their cancels (orders.intents) and
execution reports (algos.reports) out.

Every input is keyed by symbol and co-partitioned, so the state is per partition like the
strategy's and instances share the partitions of one group.
"""

from __future__ import annotations

from functools import partial

from schemas.events import (
    BookDeltaReceived,
    BookSnapshotReceived,
    CancelAlgo,
    Event,
    ExecutionEvent,
    InstrumentDefined,
    IntentRejected,
    SubmitAlgo,
    TradeReceived,
)
from schemas.topics import MD_BOOK, MD_TRADES, ORDERS_DECISIONS, ORDERS_EVENTS, ORDERS_INTENTS, REF_INSTRUMENTS
from services.algos import core
from services.algos.config import AlgosConfig
from services.domain.venues import only_venue
from services.runtime.service import Reading, ServiceDef
from services.runtime.settings import load_settings


def definition(config: AlgosConfig | None = None) -> ServiceDef[core.AlgoState]:
    """The algos service with its settings (ALGOS_* variables unless given)."""
    config = config or load_settings(AlgosConfig, "ALGOS")
    return ServiceDef(
        name="algos",
        inputs=(ORDERS_INTENTS, ORDERS_DECISIONS, ORDERS_EVENTS, MD_TRADES, MD_BOOK, REF_INSTRUMENTS),
        accepts=SubmitAlgo | CancelAlgo | IntentRejected | ExecutionEvent | TradeReceived
        | BookSnapshotReceived | BookDeltaReceived | InstrumentDefined,
        state_type=core.AlgoState,
        initial_state=core.initial_state,
        step=only_venue(partial(core.step, params=config.params())),
        partitioned=True,
        summarize=core.summarize,
        gauges=readings,
        classify=classify,
        commit_mode=config.commit_mode,
    )


def classify(event: Event) -> str:
    """Outputs by kind: children, progress and completion reports (by status)."""
    status = getattr(event, "status", "")
    return f"{type(event).__name__}:{status}" if status else type(event).__name__


def readings(state: core.AlgoState) -> list[Reading]:
    """Parents in progress per symbol (a partition's symbols are its own, so shards never collide)."""
    counts: dict[str, int] = {}
    for parent in state.parents.values():
        counts[parent.order.symbol] = counts.get(parent.order.symbol, 0) + 1
    return [Reading("hean_algos_working", "Parent orders in progress", {"symbol": s}, float(n))
            for s, n in sorted(counts.items())]
