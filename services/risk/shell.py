"""Wires the risk core: intents, its own decisions (read back), order events, books (mids),
tickers (mark prices, the price band's reference), account equity, control and the venue's
instruments (ref.instruments) in; decisions (and kill-switch halts) out. One state: one active
risk instance per set of accounts."""

from __future__ import annotations

from functools import partial

from schemas.events import (
    AccountUpdated,
    BookDeltaReceived,
    BookSnapshotReceived,
    ControlEvent,
    DecisionEvent,
    Event,
    ExecutionEvent,
    InstrumentDefined,
    IntentApproved,
    IntentEvent,
    IntentRejected,
    TickerUpdated,
)
from schemas.topics import (
    ACCOUNTING_POSITIONS,
    CONTROL,
    MD_BOOK,
    MD_TICKERS,
    ORDERS_DECISIONS,
    ORDERS_EVENTS,
    ORDERS_INTENTS,
    REF_INSTRUMENTS,
)
from services.domain.venues import only_venue
from services.risk import core
from services.risk.config import RiskConfig
from services.runtime.service import Reading, ServiceDef
from services.runtime.settings import load_settings


def definition(config: RiskConfig | None = None) -> ServiceDef[core.RiskState]:
    """The risk service with its settings (RISK_* variables unless given)."""
    config = config or load_settings(RiskConfig, "RISK")
    return ServiceDef(
        name="risk",
        inputs=(ORDERS_INTENTS, ORDERS_DECISIONS, ORDERS_EVENTS, MD_BOOK, MD_TICKERS, ACCOUNTING_POSITIONS,
                CONTROL, REF_INSTRUMENTS),
        accepts=IntentEvent | DecisionEvent | ExecutionEvent | BookSnapshotReceived | BookDeltaReceived
        | TickerUpdated | AccountUpdated | ControlEvent | InstrumentDefined,
        state_type=core.RiskState,
        initial_state=core.initial_state,
        step=only_venue(partial(core.step, params=config.params())),
        partitioned=False,
        summarize=core.summarize,
        account_of=core.account_of,
        merge_accounts=core.merge_accounts,
        gauges=readings,
        classify=classify,
        commit_mode=config.commit_mode,
    )


def classify(event: Event) -> str:
    """Decisions by outcome, rejections by the rule that refused ("rejected:max_position")."""
    if isinstance(event, IntentRejected):
        return f"rejected:{event.rule}"
    return "approved" if isinstance(event, IntentApproved) else type(event).__name__


def readings(state: core.RiskState) -> list[Reading]:
    """Whether each account is halted, its working orders and each strategy's PnL, for dashboards
    and alerts."""
    out: list[Reading] = []
    for name, account in sorted(state.accounts.items()):
        labels = {"account": name}
        out += [Reading("hean_trading_halted", "1 while the account is halted (kill switch)", labels,
                        1.0 if account.halted else 0.0),
                Reading("hean_working_orders", "Orders approved and not yet closed", labels,
                        float(len(account.working)))]
        for strategy, flows in sorted(account.strategy_flows.items()):
            pnl = flows.pnl(state.mids)
            if pnl is not None:  # a symbol held without a mid cannot be valued yet
                out.append(Reading("hean_strategy_pnl", "A strategy's PnL on the account at mid (max_strategy_loss)",
                                   {**labels, "strategy": strategy}, float(pnl)))
    return out
