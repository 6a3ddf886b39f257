"""Wires the accounting core: orders.events (fills) + md.tickers (marks) → accounting.positions.

One state for all inputs (not partitioned): accounting runs as one active instance per set of
accounts, as DESIGN.md §2 says.
"""

from __future__ import annotations

from decimal import Decimal
from functools import partial

from schemas.events import ExecutionEvent, TickerUpdated
from schemas.topics import MD_TICKERS, ORDERS_EVENTS
from services.accounting import core
from services.accounting.config import AccountingConfig
from services.domain.venues import only_venue, only_venue_fold
from services.runtime.service import Reading, ServiceDef
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
        step=only_venue(partial(core.step, starting_balance=config.starting_balance)),
        fold=only_venue_fold(core.fold),
        order_free=True,  # fills and marks fold into per-symbol keys; tests/services/accounting checks it
        combine=core.combine,
        partitioned=False,
        summarize=core.summarize,
        account_of=core.account_of,
        merge_accounts=core.merge_accounts,
        gauges=partial(readings, starting_balance=config.starting_balance),
    )


def readings(state: core.AccountingState, starting_balance: Decimal) -> list[Reading]:
    """Position and PnL gauges per account and symbol, and each account's totals, for dashboards."""
    out: list[Reading] = []
    for account, positions in sorted(state.positions.items()):
        for symbol, position in sorted(positions.items()):
            labels = {"account": account, "symbol": symbol}
            mark = state.marks.get(symbol)
            out += [Reading("hean_position_qty", "Signed position size (contracts)", labels, float(position.qty)),
                    Reading("hean_position_realized_pnl", "Realized PnL of the position (quote)", labels,
                            float(position.realized)),
                    Reading("hean_position_unrealized_pnl", "Unrealized PnL at the last mark (quote)", labels,
                            float(position.unrealized(mark)))]
        totals = core.account_totals(state, account, starting_balance)
        labels = {"account": account}
        out += [Reading(f"hean_account_{name}", f"Account {name.replace('_', ' ')} (quote)", labels, float(value))
                for name, value in totals.items()]
    return out
