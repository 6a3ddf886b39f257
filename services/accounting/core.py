"""The accounting core: a fold of fills and marks into positions and PnL. No I/O, exact Decimal.

Positions per (account, symbol) are the domain's one fill → position fold
(services/domain/position.py: average cost, one-way, realized PnL, fees, funding), the same fold
risk, the strategies, the simulator and the backtester use; a position the venue held before HEAN
(PositionAdopted) enters it as the fill that opened it. Equity = the account's balance at its
opening (AccountOpened: the venue's wallet; else the configured starting balance) + realized +
unrealized - fees - funding. State holds only what the log determines (fills in order per symbol, the last
mark, each account's opening balance), so a replay from the beginning ends in the same state as the live
service.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import msgspec

from schemas.events import (
    AccountOpened,
    AccountUpdated,
    Event,
    FundingSettled,
    OrderFilled,
    OrderPartiallyFilled,
    PositionAdopted,
    PositionUpdated,
    TickerUpdated,
)
from schemas.topics import ACCOUNTING_POSITIONS
from services.domain.ids import account_update_id, position_update_id
from services.domain.position import FLAT, FillRefused, Position, adopt, apply_funding
from services.domain.position import apply_fill as fold_fill
from services.runtime.errors import InvariantViolation
from services.runtime.service import Emit, join_disjoint

ZERO = Decimal(0)


class AccountingState(msgspec.Struct, frozen=True):
    """Positions by account then symbol, the last mark price of each symbol, and the balance each
    account opened with (AccountOpened; an account without one starts from the configured balance)."""

    positions: dict[str, dict[str, Position]] = {}
    marks: dict[str, Decimal] = {}
    balances: dict[str, Decimal] = {}


def initial_state() -> AccountingState:
    return AccountingState(positions={}, marks={}, balances={})


def apply_fill(position: Position, side: str, qty: Decimal, price: Decimal, fee: Decimal) -> Position:
    """The domain fold, with a refused fill as the broken invariant it is here (the codec already
    refuses such fills at decoding, so one reaching the core means the state cannot be trusted)."""
    try:
        return fold_fill(position, side, qty, price, fee)
    except FillRefused as exc:
        raise InvariantViolation(str(exc)) from None


_FLAT = FLAT
_FILL_TYPES = frozenset({OrderPartiallyFilled, OrderFilled})


def fold(state: AccountingState, event: Event) -> AccountingState:
    """The state after one fill or ticker, without the announcements (what a replay needs).

    Written for speed (a replay folds every fill ever made): an exact type test, one shared flat
    position, one copy of each dict on the way to the new state.
    """
    if type(event) in _FILL_TYPES:
        fill: Any = event
        positions = state.positions
        account = positions.get(fill.account)
        if account is None:
            account = {}
        symbol = fill.symbol
        updated = dict(account)
        try:  # the domain fold called directly: one call less per fill on the replay path
            updated[symbol] = fold_fill(account.get(symbol, _FLAT), fill.side, fill.fill_qty, fill.fill_price, fill.fee)
        except FillRefused as exc:
            raise InvariantViolation(str(exc)) from None
        new_positions = dict(positions)
        new_positions[fill.account] = updated
        return AccountingState(positions=new_positions, marks=state.marks, balances=state.balances)
    if isinstance(event, TickerUpdated):
        mark = event.mark_price or event.last_price
        if mark is None or state.marks.get(event.symbol) == mark:
            return state
        return AccountingState(positions=state.positions, marks={**state.marks, event.symbol: mark},
                               balances=state.balances)
    if isinstance(event, FundingSettled):  # paid (or received) on the position: equity moves, qty does not
        held = state.positions.get(event.account, {})
        charged = apply_funding(held.get(event.symbol, _FLAT), event.amount)
        return AccountingState(positions={**state.positions, event.account: {**held, event.symbol: charged}},
                               marks=state.marks, balances=state.balances)
    if isinstance(event, PositionAdopted):  # held before HEAN: the fill that opened it, without fee
        held = state.positions.get(event.account, {})
        try:
            adopted = adopt(held.get(event.symbol, _FLAT), event.qty, event.avg_entry_price)
        except FillRefused as exc:
            raise InvariantViolation(str(exc)) from None
        return AccountingState(positions={**state.positions, event.account: {**held, event.symbol: adopted}},
                               marks=state.marks, balances=state.balances)
    if isinstance(event, AccountOpened):
        if state.balances.get(event.account) == event.wallet_balance:
            return state
        return AccountingState(positions=state.positions, marks=state.marks,
                               balances={**state.balances, event.account: event.wallet_balance})
    return state


def combine(parts: Sequence[AccountingState]) -> AccountingState:
    """The state of all inputs from states folded over disjoint groups of partitions.

    Exact because a fill moves only its (account, symbol) position, a ticker only its symbol's
    mark and an opening only its account's balance, and a symbol (an opening: its account) lives in
    one partition of each input: the parts share no key. A shared key means that assumption broke
    (a topic was repartitioned), so it is refused, not guessed.
    """
    positions: dict[str, dict[str, Position]] = {}
    marks: dict[str, Decimal] = {}
    balances = join_disjoint((part.balances for part in parts), "opening balances of accounts")
    for part in parts:
        for account, by_symbol in part.positions.items():
            held = positions.setdefault(account, {})
            if shared := held.keys() & by_symbol.keys():
                raise ValueError(f"positions of {account} {sorted(shared)} were folded in two partition groups")
            held.update(by_symbol)
        if shared := marks.keys() & part.marks.keys():
            raise ValueError(f"marks of {sorted(shared)} were folded in two partition groups")
        marks.update(part.marks)
    return AccountingState(positions=positions, marks=marks, balances=balances)


def account_of(event: Event) -> str | None:
    """The account of a fill or order event; None for a ticker, which every instance folds."""
    return getattr(event, "account", None)


def merge_accounts(parts: Sequence[AccountingState]) -> AccountingState:
    """The state of one instance serving every account, from instances serving disjoint ones:
    positions are per account; marks come from the same tickers in each part (equal once each
    has read them all). An account held by two parts is refused."""
    positions = join_disjoint((part.positions for part in parts), "accounting accounts")
    marks = {symbol: mark for part in parts for symbol, mark in part.marks.items()}
    balances = join_disjoint((part.balances for part in parts), "opening balances of accounts")
    return AccountingState(positions=positions, marks=marks, balances=balances)


def step(state: AccountingState, event: Event, starting_balance: Decimal) -> tuple[AccountingState, list[Emit]]:
    """Fold one fill, ticker, adoption or opening; announce the changed position and the account's totals."""
    new = fold(state, event)
    if new is state:
        return state, []
    if isinstance(event, OrderPartiallyFilled | OrderFilled | FundingSettled | PositionAdopted):
        return new, _updates(new, event, event.account, event.symbol, starting_balance)
    if isinstance(event, AccountOpened):
        return new, [_account_update(new, event, event.account, starting_balance)]
    emits: list[Emit] = []
    for account, positions in sorted(new.positions.items()):
        if positions.get(event.symbol, Position()).qty:
            emits += _updates(new, event, account, event.symbol, starting_balance)
    return new, emits


def _updates(state: AccountingState, cause: Event, account: str, symbol: str,
             starting_balance: Decimal) -> list[Emit]:
    position = state.positions[account][symbol]
    mark = state.marks.get(symbol)
    common: dict[str, Any] = {"ts_event": cause.ts_event, "ts_ingest": cause.ts_ingest, "origin_ts": cause.origin_ts}
    return [
        Emit(ACCOUNTING_POSITIONS, account, PositionUpdated(
            id=position_update_id(cause.id, account, symbol), **common, account=account,
            venue=getattr(cause, "venue", "bybit"), symbol=symbol,
            qty=position.qty, avg_entry_price=position.avg_entry, mark_price=mark or ZERO,
            realized_pnl=position.realized, unrealized_pnl=position.unrealized(mark), fees=position.fees)),
        _account_update(state, cause, account, starting_balance),
    ]


def _account_update(state: AccountingState, cause: Event, account: str, starting_balance: Decimal) -> Emit:
    totals = account_totals(state, account, starting_balance)
    return Emit(ACCOUNTING_POSITIONS, account, AccountUpdated(
        id=account_update_id(cause.id, account), ts_event=cause.ts_event, ts_ingest=cause.ts_ingest,
        origin_ts=cause.origin_ts, account=account, **totals))


def account_totals(state: AccountingState, account: str, starting_balance: Decimal) -> dict[str, Decimal]:
    """Realized, unrealized, fees, equity and gross exposure of one account; its equity starts from
    the balance it opened with, or `starting_balance` when the log holds no opening for it."""
    positions = state.positions.get(account, {})
    realized = sum((p.realized for p in positions.values()), ZERO)
    unrealized = sum((p.unrealized(state.marks.get(s)) for s, p in positions.items()), ZERO)
    fees = sum((p.fees for p in positions.values()), ZERO)
    funding = sum((p.funding for p in positions.values()), ZERO)
    exposure = sum((abs(p.qty) * (state.marks.get(s) or p.avg_entry) for s, p in positions.items()), ZERO)
    start = state.balances.get(account, starting_balance)
    return {"equity": start + realized + unrealized - fees - funding, "realized_pnl": realized,
            "unrealized_pnl": unrealized, "fees": fees, "gross_exposure": exposure}


def summarize(state: AccountingState) -> dict[str, Any]:
    return {account: {symbol: {"qty": str(p.qty), "avg_entry": str(p.avg_entry), "realized": str(p.realized),
                               "fees": str(p.fees)} for symbol, p in sorted(positions.items())}
            for account, positions in sorted(state.positions.items())}
