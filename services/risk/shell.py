"""Wires the risk core: intents, its own decisions (read back), order events, books (mids), account
equity and control in; decisions (and kill-switch halts) out. One state: one active risk instance
per set of accounts."""

from __future__ import annotations

from functools import partial

from schemas.events import (
    AccountUpdated,
    BookDeltaReceived,
    BookSnapshotReceived,
    ControlEvent,
    DecisionEvent,
    ExecutionEvent,
    IntentEvent,
)
from schemas.topics import ACCOUNTING_POSITIONS, CONTROL, MD_BOOK, ORDERS_DECISIONS, ORDERS_EVENTS, ORDERS_INTENTS
from services.risk import core
from services.risk.config import RiskConfig
from services.runtime.service import ServiceDef
from services.runtime.settings import load_settings


def definition(config: RiskConfig | None = None) -> ServiceDef[core.RiskState]:
    """The risk service with its settings (RISK_* variables unless given)."""
    config = config or load_settings(RiskConfig, "RISK")
    return ServiceDef(
        name="risk",
        inputs=(ORDERS_INTENTS, ORDERS_DECISIONS, ORDERS_EVENTS, MD_BOOK, ACCOUNTING_POSITIONS, CONTROL),
        accepts=IntentEvent | DecisionEvent | ExecutionEvent | BookSnapshotReceived | BookDeltaReceived
        | AccountUpdated | ControlEvent,
        state_type=core.RiskState,
        initial_state=core.initial_state,
        step=partial(core.step, params=config.params()),
        partitioned=False,
        summarize=core.summarize,
    )
