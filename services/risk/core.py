"""The risk core: pre-trade checks on every intent, and the kill switch. No I/O, exact Decimal.

Checks, in order; the first that fails names the rule in IntentRejected.rule:
  halted          the account is halted (kill switch or operator); only reduce-only orders pass
  unknown_symbol  no instrument rules for the symbol
  qty_step / min_qty / tick_size   the venue's instrument rules
  max_order_qty   the order's quantity
  no_market_price a market order with no mid to value it
  price_band      a limit price further than `price_band` (a fraction) from the mid
  max_notional / min_notional      the order's value at its price (or the mid)
  max_position    |position + working orders + this order| * price per symbol (not for reduce-only)
  max_gross_exposure   sum of |expected position| * mid over the account's symbols, with this order
  max_open_orders the account's working orders
  order_rate      a token bucket of `rate_per_second`, `burst` deep, on event time
Cancels always pass: they only reduce risk. The kill switch trips when the account's equity falls
`daily_loss_limit` below its first equity of the UTC day (AccountUpdated from accounting); an
operator halts and resumes with control events.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

from schemas.events import (
    AccountUpdated,
    BookDeltaReceived,
    BookSnapshotReceived,
    CancelOrder,
    Event,
    IntentApproved,
    IntentRejected,
    OrderCancelled,
    OrderFilled,
    OrderPartiallyFilled,
    OrderRejected,
    SubmitOrder,
    TradingHalted,
    TradingResumed,
    derive_id,
)
from schemas.topics import CONTROL, ORDERS_DECISIONS
from services.runtime.service import Emit

ZERO = Decimal(0)
DAY_NS = 86_400 * 10**9
NS = Decimal(10**9)


class InstrumentRules(msgspec.Struct, frozen=True):
    tick_size: Decimal
    qty_step: Decimal
    min_qty: Decimal
    min_notional: Decimal


class RiskParams(msgspec.Struct, frozen=True, kw_only=True):
    instruments: dict[str, InstrumentRules]
    max_order_qty: Decimal = Decimal("10")
    max_order_notional: Decimal = Decimal("25000")
    max_position_notional: Decimal = Decimal("50000")
    max_gross_exposure: Decimal = Decimal("100000")
    price_band: Decimal = Decimal("0.05")
    max_open_orders: int = 50
    rate_per_second: Decimal = Decimal("20")
    burst: int = 40
    daily_loss_limit: Decimal = Decimal("2000")


class Working(msgspec.Struct, frozen=True):
    symbol: str
    qty: Decimal  # signed, still expected to fill


class AccountRisk(msgspec.Struct, frozen=True):
    positions: dict[str, Decimal] = {}
    working: dict[str, Working] = {}
    tokens: Decimal = Decimal(-1)  # -1: not started (a full bucket on the first intent)
    tokens_at_ns: int = 0
    halted: bool = False
    halt_reason: str = ""
    day: int = -1
    day_start_equity: Decimal | None = None
    equity: Decimal | None = None


class RiskState(msgspec.Struct, frozen=True):
    accounts: dict[str, AccountRisk] = {}
    mids: dict[str, Decimal] = {}


def initial_state() -> RiskState:
    return RiskState(accounts={}, mids={})


def step(state: RiskState, event: Event, params: RiskParams) -> tuple[RiskState, list[Emit]]:
    if isinstance(event, SubmitOrder | CancelOrder):
        return _decide(state, event, params)
    if isinstance(event, BookSnapshotReceived | BookDeltaReceived):
        if event.best_bid is None or event.best_ask is None:
            return state, []
        mid = (event.best_bid[0] + event.best_ask[0]) / 2
        if state.mids.get(event.symbol) == mid:
            return state, []
        return RiskState(state.accounts, {**state.mids, event.symbol: mid}), []
    if isinstance(event, OrderPartiallyFilled | OrderFilled | OrderCancelled | OrderRejected):
        return _replace(state, event.account, _apply_order_event(_account(state, event.account), event)), []
    if isinstance(event, AccountUpdated):
        return _on_equity(state, event, params)
    if isinstance(event, TradingHalted | TradingResumed):
        account = _account(state, event.account)
        halted = isinstance(event, TradingHalted)
        return _replace(state, event.account, msgspec.structs.replace(
            account, halted=halted, halt_reason=event.reason if halted else "")), []
    return state, []


def _account(state: RiskState, name: str) -> AccountRisk:
    return state.accounts.get(name) or AccountRisk()


def _replace(state: RiskState, name: str, account: AccountRisk) -> RiskState:
    return RiskState({**state.accounts, name: account}, state.mids)


def _decide(state: RiskState, intent: SubmitOrder | CancelOrder, p: RiskParams) -> tuple[RiskState, list[Emit]]:
    account = _account(state, intent.account)
    common = {"ts_event": intent.ts_event, "ts_ingest": intent.ts_ingest, "origin_ts": intent.origin_ts}
    if isinstance(intent, CancelOrder):
        return state, [Emit(ORDERS_DECISIONS, intent.symbol,
                            IntentApproved(id=derive_id("risk", intent.id), intent=intent, **common))]
    rule, detail, account = _check(state, account, intent, p)
    if rule:
        decision: Event = IntentRejected(id=derive_id("risk", intent.id), intent=intent, rule=rule, detail=detail,
                                         **common)
        return _replace(state, intent.account, account), [Emit(ORDERS_DECISIONS, intent.symbol, decision)]
    signed = intent.qty if intent.side == "Buy" else -intent.qty
    account = msgspec.structs.replace(account, tokens=account.tokens - 1,
                                      working={**account.working, intent.id: Working(intent.symbol, signed)})
    approved = IntentApproved(id=derive_id("risk", intent.id), intent=intent, **common)
    return _replace(state, intent.account, account), [Emit(ORDERS_DECISIONS, intent.symbol, approved)]


def _check(state: RiskState, account: AccountRisk, o: SubmitOrder, p: RiskParams) -> tuple[str, str, AccountRisk]:
    """(rule, detail, account with its token bucket refilled); rule is '' when every check passes."""
    account = _refill(account, o.ts_event, p)
    if account.halted and not o.reduce_only:
        return "halted", f"account halted: {account.halt_reason}", account
    rules = p.instruments.get(o.symbol)
    if rules is None:
        return "unknown_symbol", f"no instrument rules for {o.symbol}", account
    if o.qty % rules.qty_step:
        return "qty_step", f"qty {o.qty} is not a multiple of {rules.qty_step}", account
    if o.qty < rules.min_qty:
        return "min_qty", f"qty {o.qty} < {rules.min_qty}", account
    if o.price is not None and o.price % rules.tick_size:
        return "tick_size", f"price {o.price} is not a multiple of {rules.tick_size}", account
    if o.qty > p.max_order_qty:
        return "max_order_qty", f"qty {o.qty} > {p.max_order_qty}", account
    mid = state.mids.get(o.symbol)
    price = o.price if o.price is not None else mid
    if price is None:
        return "no_market_price", f"no mid for {o.symbol} to value a market order", account
    if mid is not None and abs(price - mid) > mid * p.price_band:
        return "price_band", f"price {price} is more than {p.price_band} from mid {mid}", account
    notional = o.qty * price
    if notional > p.max_order_notional:
        return "max_notional", f"notional {notional} > {p.max_order_notional}", account
    if notional < rules.min_notional:
        return "min_notional", f"notional {notional} < {rules.min_notional}", account
    signed = o.qty if o.side == "Buy" else -o.qty
    expected = _expected(account)
    after = expected.get(o.symbol, ZERO) + signed
    if not o.reduce_only and abs(after) * price > p.max_position_notional:
        return "max_position", f"position {after} * {price} > {p.max_position_notional}", account
    exposure = sum((abs(q) * (state.mids.get(s) or price) for s, q in {**expected, o.symbol: after}.items()), ZERO)
    if not o.reduce_only and exposure > p.max_gross_exposure:
        return "max_gross_exposure", f"gross exposure {exposure} > {p.max_gross_exposure}", account
    if len(account.working) >= p.max_open_orders:
        return "max_open_orders", f"{len(account.working)} working orders", account
    if account.tokens < 1:
        return "order_rate", f"more than {p.rate_per_second}/s (burst {p.burst})", account
    return "", "", account


def _refill(account: AccountRisk, ts_ns: int, p: RiskParams) -> AccountRisk:
    if account.tokens < 0:
        return msgspec.structs.replace(account, tokens=Decimal(p.burst), tokens_at_ns=ts_ns)
    elapsed = max(0, ts_ns - account.tokens_at_ns)
    tokens = min(Decimal(p.burst), account.tokens + p.rate_per_second * elapsed / NS)
    return msgspec.structs.replace(account, tokens=tokens, tokens_at_ns=max(ts_ns, account.tokens_at_ns))


def _expected(account: AccountRisk) -> dict[str, Decimal]:
    expected = dict(account.positions)
    for working in account.working.values():
        expected[working.symbol] = expected.get(working.symbol, ZERO) + working.qty
    return expected


def _apply_order_event(account: AccountRisk, event: Event) -> AccountRisk:
    intent_id = getattr(event, "intent_id", "")
    positions, working = account.positions, account.working
    if isinstance(event, OrderPartiallyFilled | OrderFilled):
        signed = event.fill_qty if event.side == "Buy" else -event.fill_qty
        positions = {**positions, event.symbol: positions.get(event.symbol, ZERO) + signed}
        if intent_id in working:
            left = working[intent_id].qty - signed
            working = {k: v for k, v in working.items() if k != intent_id}
            if isinstance(event, OrderPartiallyFilled) and left != 0:
                working[intent_id] = Working(event.symbol, left)
    elif intent_id in working:
        working = {k: v for k, v in working.items() if k != intent_id}
    return msgspec.structs.replace(account, positions=positions, working=working)


def _on_equity(state: RiskState, update: AccountUpdated, p: RiskParams) -> tuple[RiskState, list[Emit]]:
    account = _account(state, update.account)
    day = update.ts_event // DAY_NS
    start = update.equity if day != account.day or account.day_start_equity is None else account.day_start_equity
    account = msgspec.structs.replace(account, day=day, day_start_equity=start, equity=update.equity)
    loss = start - update.equity
    if loss < p.daily_loss_limit or account.halted:
        return _replace(state, update.account, account), []
    reason = f"daily loss {loss} >= limit {p.daily_loss_limit}"
    account = msgspec.structs.replace(account, halted=True, halt_reason=reason)
    halt = TradingHalted(id=derive_id("risk-halt", update.id), ts_event=update.ts_event, ts_ingest=update.ts_ingest,
                         origin_ts=update.origin_ts, account=update.account, reason=reason, actor="risk")
    return _replace(state, update.account, account), [Emit(CONTROL, update.account, halt)]


def summarize(state: RiskState) -> dict[str, Any]:
    return {name: {"halted": a.halted, "reason": a.halt_reason,
                   "positions": {s: str(q) for s, q in a.positions.items()},
                   "working": len(a.working), "equity": str(a.equity)} for name, a in sorted(state.accounts.items())}
