"""Wires the accounting core: orders.events (fills) + md.tickers (marks) → accounting.positions.

One state for all inputs (not partitioned): accounting runs as one active instance per set of
accounts, as DESIGN.md §2 says.
"""

from __future__ import annotations

from functools import partial

from schemas.events import ExecutionEvent, TickerUpdated
from schemas.topics import MD_TICKERS, ORDERS_EVENTS
from services.accounting import core
from services.accounting.config import AccountingConfig
from services.runtime.service import ServiceDef
from services.runtime.settings import load_settings


def definition(config: AccountingConfig | None = None) -> ServiceDef[core.AccountingState]:
    """The accounting service with its settings (ACCOUNTING_* variables unless given)."""
    config = config or load_settings(AccountingConfig, "ACCOUNTING")
    return ServiceDef(
        name="accounting",
        inputs=(ORDERS_EVENTS, MD_TICKERS),
        accepts=ExecutionEvent | TickerUpdated,
        state_type=core.AccountingState,
        initial_state=core.initial_state,
        step=partial(core.step, starting_balance=config.starting_balance),
        partitioned=False,
        summarize=core.summarize,
    )
