"""The risk core: pre-trade checks on every intent, and the kill switch. No I/O, exact Decimal.

Checks, in order; the first that fails names the rule in IntentRejected.rule:
  intent_id       the intent's id would not come back in the venue's reports (ids.round_trips)
  halted          the account is halted (kill switch or operator); only reduce-only orders pass
  strategy_loss   the intent's strategy lost `max_strategy_loss` on the account (its fills' cash plus
                  holdings at mid; not for reduce-only; see strategy_pnl.py)
  unknown_symbol  no instrument rules for the symbol (ref.instruments, or RISK_INSTRUMENTS)
  not_trading     the venue's instrument status is not Trading
  qty_step / min_qty / max_qty / tick_size   the venue's instrument rules
  max_order_qty   the order's quantity
  no_market_price a market order with no mid to value it
  price_band      a limit price further than `price_band` (a fraction) from the venue's mark price
                  (md.tickers), or from the mid while no mark is known; the rejection names which
  max_notional / min_notional      the order's value at its price (or the mid)
  max_position    |position + working orders + this order| * price per symbol (not for reduce-only)
  max_gross_exposure   sum of |expected position| * mid over the account's symbols, with this order
  max_open_orders the account's working orders
  order_rate      more than `rate_per_second` approvals in the last second of event time
Cancels and cancel-alls always pass: they only reduce risk. An amend's new terms go through the
same rules as a new order for the whole new quantity (its filled part counted once, in the
position); it needs a working order to amend (unknown_order), and a halted account only lets an
amend through that lowers the quantity and keeps the price. The kill switch trips when the account's equity falls
`daily_loss_limit` below its first equity of the UTC day, or `max_drawdown` below its highest
equity seen (AccountUpdated from accounting); an operator halts and resumes with control events,
and only an operator resumes a halt a limit tripped.

Decisions are facts. Risk reads several topics whose interleaving Kafka does not fix, so a replay
must not depend on re-deciding. The state that limits use is folded from risk's *own outputs*
read back (orders.decisions, control) and from order events, books and equity, each in a way
that does not depend on the order of topics: positions fold fills (the domain's fold), and a
symbol's fills are in one partition, in order; a terminal order event that arrives before its
approval is remembered so the approval does not reopen it; the order rate
is a sliding window of approval times pruned against the latest one; halts come only from the
single-partition control topic. What risk decided but has not read back yet lives in `pending`
(and `halt_sent`), used by live checks and cleared by the recorded decision, so a replay that
re-decides differently still ends in the live state.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Literal

import msgspec

from schemas.events import (
    AccountUpdated,
    AmendOrder,
    AnyIntent,
    BookDeltaReceived,
    BookSnapshotReceived,
    CancelAllOrders,
    CancelOrder,
    Event,
    InstrumentDefined,
    IntentApproved,
    IntentRejected,
    OrderAmendRejected,
    OrderCancelled,
    OrderFilled,
    OrderPartiallyFilled,
    OrderRejected,
    PositionAdopted,
    SubmitOrder,
    TickerUpdated,
    TradingHalted,
    TradingResumed,
)
from schemas.topics import CONTROL, ORDERS_DECISIONS
from services.domain import repeats
from services.domain.ids import decision_id, halt_cancel_id, halt_flatten_id, risk_halt_id, round_trips
from services.domain.instrument import from_defined
from services.domain.position import FLAT, Position, adopt, apply_fill, signed_qty
from services.risk.strategy_pnl import Flows
from services.runtime.service import Emit, join_disjoint

ZERO = Decimal(0)
DAY_NS = 86_400 * 10**9
NS_PER_S = 10**9
# Repeats (docs/COMMITS.md): an emitter without a transaction may send an output again after a
# crash, with the same id and event time; the ids decided are kept in services/domain/repeats.py's
# window (10 s buckets of event time, the newest 5 minutes).
DEDUP_BUCKET_NS = repeats.BUCKET_NS
DEDUP_BUCKETS = repeats.BUCKETS


class InstrumentRules(msgspec.Struct, frozen=True):
    """What risk checks of an instrument: folded from ref.instruments (`rules_of`), or configured."""

    tick_size: Decimal
    qty_step: Decimal
    min_qty: Decimal
    min_notional: Decimal
    max_qty: Decimal | None = None
    trading: bool = True


def rules_of(event: InstrumentDefined) -> InstrumentRules:
    """The rules a ref.instruments record states, validated by the domain's Instrument."""
    instrument = from_defined(event)
    return InstrumentRules(instrument.tick_size, instrument.lot_step, instrument.min_qty, instrument.min_notional,
                           instrument.max_qty, instrument.status == "Trading")


class RiskLimits(msgspec.Struct, frozen=True, kw_only=True):
    """The numeric limits, shared by the core's parameters and the env-loaded config."""

    max_order_qty: Decimal = Decimal("10")
    max_order_notional: Decimal = Decimal("25000")
    max_position_notional: Decimal = Decimal("50000")
    max_gross_exposure: Decimal = Decimal("100000")
    price_band: Decimal = Decimal("0.05")
    max_open_orders: int = 50
    rate_per_second: int = 20
    daily_loss_limit: Decimal = Decimal("2000")
    max_drawdown: Decimal = Decimal("5000")  # from the account's equity peak, over all days
    max_strategy_loss: Decimal = Decimal("1000")  # a strategy's PnL (cash + holdings at mid) on the account


class RiskParams(RiskLimits, frozen=True, kw_only=True):
    # Configured rules, for symbols whose venue publishes none on ref.instruments (which wins).
    instruments: dict[str, InstrumentRules] = {}


class Working(msgspec.Struct, frozen=True):
    symbol: str
    qty: Decimal  # signed, still expected to fill
    price: Decimal | None = None  # the limit price (None: a market order)
    total: Decimal = ZERO  # the order's whole quantity, filled part included (what an amend's qty replaces)
    prior: tuple[Decimal, Decimal | None, Decimal] | None = None  # (qty, price, total) before the last amend

    def whole(self) -> Decimal:
        """The order's quantity, filled part included (orders folded before `total` existed: qty)."""
        return self.total or abs(self.qty)


class Pending(msgspec.Struct, frozen=True):
    """A decision risk produced but has not read back from orders.decisions yet; `working` is set
    for an approved submit (it counts against the limits until read back), None otherwise."""

    working: Working | None
    ts_event: int


class AccountRisk(msgspec.Struct, frozen=True):
    positions: dict[str, Position] = {}  # the domain fold of the account's fills, per symbol
    working: dict[str, Working] = {}
    closed: tuple[str, ...] = ()  # terminal before their approval was read back
    recent: tuple[int, ...] = ()  # approval times (ns) of the last second, ascending
    halted: bool = False
    halt_reason: str = ""
    day: int = -1
    day_start_equity: Decimal | None = None
    equity: Decimal | None = None
    pending: dict[str, Pending] = {}
    early: tuple[str, ...] = ()  # decisions read back before their intent (happens in replays)
    halt_sent: bool = False
    equity_peak: Decimal | None = None  # the highest equity seen (for max_drawdown)
    strategy_of: dict[str, str] = {}  # intent id → strategy, for approved orders not yet ended
    strategy_flows: dict[str, Flows] = {}  # strategy → its fills' cash and quantities (max_strategy_loss)
    unowned: dict[str, Flows] = {}  # fills read before their order's approval, by intent id
    decided: dict[str, dict[str, None]] = {}  # event-time bucket ("%012d") → intent ids read back (repeats dropped)


class RiskState(msgspec.Struct, frozen=True):
    accounts: dict[str, AccountRisk] = {}
    mids: dict[str, Decimal] = {}
    instruments: dict[str, InstrumentRules] = {}  # the venue's, folded from ref.instruments
    marks: dict[str, Decimal] = {}  # the venue's mark price per symbol (md.tickers): the price band's reference


def initial_state() -> RiskState:
    return RiskState(accounts={}, mids={}, instruments={}, marks={})


def step(state: RiskState, event: Event, params: RiskParams) -> tuple[RiskState, list[Emit]]:
    if isinstance(event, AnyIntent):
        return _decide(state, event, params)
    if isinstance(event, IntentApproved | IntentRejected):
        return _read_back(state, event), []
    if isinstance(event, BookSnapshotReceived | BookDeltaReceived):
        if event.best_bid is None or event.best_ask is None:
            return state, []
        mid = (event.best_bid[0] + event.best_ask[0]) / 2
        if state.mids.get(event.symbol) == mid:
            return state, []
        return msgspec.structs.replace(state, mids={**state.mids, event.symbol: mid}), []
    if isinstance(event, TickerUpdated):
        mark = event.mark_price  # None: the venue has not stated one yet (the last one stays)
        if mark is None or state.marks.get(event.symbol) == mark:
            return state, []
        return msgspec.structs.replace(state, marks={**state.marks, event.symbol: mark}), []
    if isinstance(event, InstrumentDefined):
        rules = rules_of(event)
        if state.instruments.get(event.symbol) == rules:
            return state, []
        return msgspec.structs.replace(state, instruments={**state.instruments, event.symbol: rules}), []
    if isinstance(event, PositionAdopted):  # held before HEAN: counts in exposure and limits, owned by no strategy
        account = _account(state, event.account)
        held = adopt(account.positions.get(event.symbol, FLAT), event.qty, event.avg_entry_price)
        return _replace(state, event.account, msgspec.structs.replace(
            account, positions={**account.positions, event.symbol: held})), []
    if isinstance(event, OrderPartiallyFilled | OrderFilled | OrderCancelled | OrderRejected):
        return _replace(state, event.account, _apply_order_event(_account(state, event.account), event)), []
    if isinstance(event, OrderAmendRejected):
        return _replace(state, event.account, _amend_refused(_account(state, event.account), event)), []
    if isinstance(event, AccountUpdated):
        return _on_equity(state, event, params)
    if isinstance(event, TradingHalted):
        return _halt(state, event)
    if isinstance(event, TradingResumed):
        account = _account(state, event.account)
        return _replace(state, event.account, msgspec.structs.replace(
            account, halted=False, halt_reason="", halt_sent=False)), []
    return state, []


OWN_STRATEGY = "risk"  # the strategy name on risk's own orders (a halt's cancels and flattening)
OPERATOR_STRATEGY = "operator"  # manual orders (`hean order`): reserved for the CLI, checked like any other


def _halt(state: RiskState, halt: TradingHalted) -> tuple[RiskState, list[Emit]]:
    """Halt the account and act on it: a cancel for every order still working (read back or
    pending), and with `flatten` a reduce-only market order against every position. They are
    risk's own approved decisions, with ids derived from the halt, so a replay makes the same."""
    account = msgspec.structs.replace(_account(state, halt.account), halted=True, halt_reason=halt.reason,
                                      halt_sent=False)
    working = {**account.working, **{k: p.working for k, p in account.pending.items() if p.working is not None}}
    common = {"ts_event": halt.ts_event, "ts_ingest": halt.ts_ingest, "origin_ts": halt.origin_ts,
              "account": halt.account, "strategy": OWN_STRATEGY}
    intents: list[SubmitOrder | CancelOrder] = [
        CancelOrder(id=halt_cancel_id(halt.id, intent_id), symbol=order.symbol, intent_id=intent_id,
                    **common) for intent_id, order in sorted(working.items())]
    if halt.flatten:
        intents += [SubmitOrder(id=halt_flatten_id(halt.id, symbol), symbol=symbol,
                                side="Sell" if qty > 0 else "Buy", order_type="Market", qty=abs(qty),
                                time_in_force="IOC", reduce_only=True, **common)
                    for symbol, qty in sorted(_quantities(account).items()) if qty]
    # The state records only the halt: which orders were working when it was folded depends on how
    # the topics interleaved, and a replay reads them in another order. What the halt did is in the
    # log (these decisions), and reading them back is what the state folds (_read_back).
    emits = [Emit(ORDERS_DECISIONS, intent.symbol, IntentApproved(
        id=decision_id(intent.id), intent=intent, ts_event=halt.ts_event, ts_ingest=halt.ts_ingest,
        origin_ts=halt.origin_ts)) for intent in intents]
    return _replace(state, halt.account, account), emits


def account_of(event: Event) -> str | None:
    """The account an input belongs to; None for the market's (books), which every instance folds."""
    if isinstance(event, IntentApproved | IntentRejected):
        return event.intent.account
    return getattr(event, "account", None)


def merge_accounts(parts: Sequence[RiskState]) -> RiskState:
    """The state of one instance serving every account, from instances serving disjoint ones.

    Exact because each account's limits, orders and halts depend only on its own events and on
    the market's mids and marks, which every instance folds from the same books and tickers; once
    each has read them, they agree. An account held by two parts is refused, not guessed."""
    accounts = join_disjoint((part.accounts for part in parts), "risk accounts")
    mids = {symbol: mid for part in parts for symbol, mid in part.mids.items()}
    instruments = {symbol: rules for part in parts for symbol, rules in part.instruments.items()}
    marks = {symbol: mark for part in parts for symbol, mark in part.marks.items()}
    return RiskState(accounts=accounts, mids=mids, instruments=instruments, marks=marks)


def _was_decided(account: AccountRisk, intent: Event) -> bool:
    """Whether this intent's decision was read back already (a repeat in the log)."""
    return repeats.seen(account.decided, intent.id, intent.ts_event)


def _mark_decided(account: AccountRisk, intent: Event) -> AccountRisk:
    """Remember the intent id in the window (order-free: the same set whatever order ids came in)."""
    return msgspec.structs.replace(account, decided=repeats.remember(account.decided, intent.id, intent.ts_event))


def _read_back(state: RiskState, decision: IntentApproved | IntentRejected) -> RiskState:
    """Fold one of risk's own recorded decisions into the committed state (once per intent id)."""
    intent = decision.intent
    account = _account(state, intent.account)
    if _was_decided(account, intent):
        return state  # a repeat of a decision already folded
    account = _mark_decided(account, intent)
    if intent.strategy == OWN_STRATEGY:
        pass  # risk's own action (a halt's): it never was an intent, so it was never pending
    elif intent.id in account.pending:
        pending = {k: v for k, v in account.pending.items() if k != intent.id}
        account = msgspec.structs.replace(account, pending=pending)
    else:
        account = msgspec.structs.replace(account, early=(*account.early, intent.id))
    pending = account.pending
    if isinstance(decision, IntentRejected) or isinstance(intent, CancelOrder | CancelAllOrders):
        return _replace(state, intent.account, account)
    recent = _prune((*account.recent, intent.ts_event))
    if isinstance(intent, AmendOrder):
        return _replace(state, intent.account, msgspec.structs.replace(
            _amended(account, intent), recent=recent, pending=pending))
    account = _own(account, intent)
    if intent.id in account.closed:
        closed = tuple(c for c in account.closed if c != intent.id)
        account = msgspec.structs.replace(account, closed=closed, recent=recent, pending=pending)
    else:
        signed = intent.qty if intent.side == "Buy" else -intent.qty
        working = {**account.working, intent.id: Working(intent.symbol, signed, intent.price, intent.qty)}
        account = msgspec.structs.replace(account, working=working, recent=recent, pending=pending)
    return _replace(state, intent.account, account)


def _prune(times: tuple[int, ...]) -> tuple[int, ...]:
    """Approval times within a second of the latest: the same set whatever order they came in."""
    latest = max(times)
    return tuple(sorted(t for t in times if t > latest - NS_PER_S))


def _account(state: RiskState, name: str) -> AccountRisk:
    return state.accounts.get(name) or AccountRisk()


def _replace(state: RiskState, name: str, account: AccountRisk) -> RiskState:
    return RiskState({**state.accounts, name: account}, state.mids, state.instruments, state.marks)


def _decide(state: RiskState, intent: AnyIntent, p: RiskParams) -> tuple[RiskState, list[Emit]]:
    """Decide one intent; the decision stays pending until it is read back from orders.decisions."""
    account = _account(state, intent.account)
    if intent.id in account.early:
        # Its decision is already folded (a replay read it first): deciding again changes nothing.
        early = tuple(e for e in account.early if e != intent.id)
        return _replace(state, intent.account, msgspec.structs.replace(account, early=early)), []
    if intent.id in account.pending or _was_decided(account, intent):
        return state, []  # a repeat of an intent already decided (docs/COMMITS.md)
    common = {"id": decision_id(intent.id), "intent": intent, "ts_event": intent.ts_event,
              "ts_ingest": intent.ts_ingest, "origin_ts": intent.origin_ts}
    reserved: Working | None = None
    if intent.strategy == OWN_STRATEGY:  # the name marks risk's own orders; a strategy may not take it
        rule, detail = "reserved_strategy", f"strategy name {OWN_STRATEGY!r} is risk's own"
    elif isinstance(intent, AmendOrder):
        rule, detail = _check_amend(state, account, intent, p)
    elif isinstance(intent, SubmitOrder):
        rule, detail = _check(state, account, intent, p)
    else:
        rule, detail = "", ""  # a cancel or cancel-all only reduces risk
    if rule:
        decision: Event = IntentRejected(rule=rule, detail=detail, **common)
    else:
        decision = IntentApproved(**common)
        if isinstance(intent, SubmitOrder):
            reserved = Working(intent.symbol, intent.qty if intent.side == "Buy" else -intent.qty, intent.price,
                               intent.qty)
    pending = {**account.pending, intent.id: Pending(reserved, intent.ts_event)}
    account = msgspec.structs.replace(account, pending=pending)
    return _replace(state, intent.account, account), [Emit(ORDERS_DECISIONS, intent.symbol, decision)]


def _check(state: RiskState, account: AccountRisk, o: SubmitOrder, p: RiskParams) -> tuple[str, str]:
    """(rule, detail); rule is '' when every check passes. Pending approvals count as working."""
    if not round_trips(o.id):
        return "intent_id", (f"intent id {o.id[:64]!r} would not come back in the venue's reports (fills could "
                             "not be traced to it): use 1-34 of A-Z a-z 0-9 _ -")
    if (account.halted or account.halt_sent) and not o.reduce_only:
        return "halted", f"account halted: {account.halt_reason or 'daily loss limit'}"
    flows = account.strategy_flows.get(o.strategy)
    pnl = flows.pnl(state.mids) if flows is not None and not o.reduce_only else None
    if pnl is not None and -pnl >= p.max_strategy_loss:
        return "strategy_loss", f"strategy {o.strategy} PnL {pnl} at mid: a loss at the limit {p.max_strategy_loss}"
    rules = state.instruments.get(o.symbol) or p.instruments.get(o.symbol)
    if rules is None:
        return "unknown_symbol", f"no instrument rules for {o.symbol}"
    if not rules.trading:
        return "not_trading", f"{o.symbol} is not trading on the venue"
    if o.qty % rules.qty_step:
        return "qty_step", f"qty {o.qty} is not a multiple of {rules.qty_step}"
    if o.qty < rules.min_qty:
        return "min_qty", f"qty {o.qty} < {rules.min_qty}"
    if rules.max_qty is not None and o.qty > rules.max_qty:
        return "max_qty", f"qty {o.qty} > the venue's maximum {rules.max_qty}"
    if o.price is not None and o.price % rules.tick_size:
        return "tick_size", f"price {o.price} is not a multiple of {rules.tick_size}"
    if o.qty > p.max_order_qty:
        return "max_order_qty", f"qty {o.qty} > {p.max_order_qty}"
    mid = state.mids.get(o.symbol)
    price = o.price if o.price is not None else mid
    if price is None:
        return "no_market_price", f"no mid for {o.symbol} to value a market order"
    mark = state.marks.get(o.symbol)
    reference, basis = (mark, "mark") if mark is not None else (mid, "mid")
    if o.price is not None and reference is not None and abs(o.price - reference) > reference * p.price_band:
        return "price_band", f"price {o.price} is more than {p.price_band} from {basis} {reference}"
    notional = o.qty * price
    if notional > p.max_order_notional:
        return "max_notional", f"notional {notional} > {p.max_order_notional}"
    if notional < rules.min_notional:
        return "min_notional", f"notional {notional} < {rules.min_notional}"
    signed = o.qty if o.side == "Buy" else -o.qty
    expected = _expected(account)
    after = expected.get(o.symbol, ZERO) + signed
    if not o.reduce_only and abs(after) * price > p.max_position_notional:
        return "max_position", f"position {after} * {price} > {p.max_position_notional}"
    exposure = sum((abs(q) * (state.mids.get(s) or price) for s, q in {**expected, o.symbol: after}.items()), ZERO)
    if not o.reduce_only and exposure > p.max_gross_exposure:
        return "max_gross_exposure", f"gross exposure {exposure} > {p.max_gross_exposure}"
    in_flight = [x for x in account.pending.values() if x.working is not None]
    open_orders = len(account.working) + len(in_flight)
    if open_orders >= p.max_open_orders:
        return "max_open_orders", f"{open_orders} working orders"
    last_second = [t for t in (*account.recent, *(x.ts_event for x in in_flight)) if t > o.ts_event - NS_PER_S]
    if len(last_second) >= p.rate_per_second:
        return "order_rate", f"{len(last_second)} approvals in the last second (limit {p.rate_per_second})"
    return "", ""


def _quantities(account: AccountRisk) -> dict[str, Decimal]:
    """The signed quantity held per symbol."""
    return {symbol: position.qty for symbol, position in account.positions.items()}


def _order_of(account: AccountRisk, intent_id: str) -> Working | None:
    """The working order placed for `intent_id`: read back, or approved and still pending."""
    pending = account.pending.get(intent_id)
    return account.working.get(intent_id) or (pending.working if pending is not None else None)


def _check_amend(state: RiskState, account: AccountRisk, amend: AmendOrder, p: RiskParams) -> tuple[str, str]:
    """An amend as the order it leaves: the rules of a new order for the new whole quantity at the
    new price, against the account without the old terms of this order. The filled part is already
    in the position, so it is offset once (a working entry of the opposite sign) rather than
    counted twice."""
    order = _order_of(account, amend.intent_id)
    if order is None or order.symbol != amend.symbol:
        return "unknown_order", f"no working order of intent {amend.intent_id} on {amend.symbol} to amend"
    whole = amend.qty if amend.qty is not None else order.whole()
    filled = order.whole() - abs(order.qty)
    if whole <= filled:
        return "amend_below_filled", f"qty {whole} is not above the filled {filled}"
    if (account.halted or account.halt_sent) and not (whole < order.whole() and amend.price is None):
        return "halted", f"account halted: {account.halt_reason or 'daily loss limit'}; only a smaller qty amends"
    side: Literal["Buy", "Sell"] = "Buy" if order.qty > 0 else "Sell"
    working = {k: v for k, v in account.working.items() if k != amend.intent_id}
    if filled:
        working[f"{amend.intent_id}:filled"] = Working(order.symbol, -filled if side == "Buy" else filled)
    pending = {k: v for k, v in account.pending.items() if k != amend.intent_id}
    without = msgspec.structs.replace(account, working=working, pending=pending, halted=False, halt_sent=False)
    price = amend.price if amend.price is not None else order.price
    # The order keeps its own id (and orderLinkId) when amended: the terms are checked under it.
    terms = SubmitOrder(id=amend.intent_id, ts_event=amend.ts_event, ts_ingest=amend.ts_ingest, account=amend.account,
                        strategy=amend.strategy, symbol=amend.symbol, side=side,
                        order_type="Limit" if price is not None else "Market", qty=whole, price=price)
    return _check(state, without, terms, p)


def _amended(account: AccountRisk, amend: AmendOrder) -> AccountRisk:
    """Fold an approved amend read back: the order's new terms count from here (a venue refusal,
    OrderAmendRejected, puts the old ones back). An order already closed stays closed."""
    order = account.working.get(amend.intent_id)
    if order is None:
        return account
    whole = amend.qty if amend.qty is not None else order.whole()
    left = whole - (order.whole() - abs(order.qty))
    new = Working(order.symbol, left if order.qty > 0 else -left,
                  amend.price if amend.price is not None else order.price, whole,
                  prior=(order.qty, order.price, order.whole()))
    return msgspec.structs.replace(account, working={**account.working, amend.intent_id: new})


def _amend_refused(account: AccountRisk, refused: OrderAmendRejected) -> AccountRisk:
    """The venue refused an amend: the order's terms before it count again (less what filled since)."""
    order = account.working.get(refused.intent_id)
    if order is None or order.prior is None:
        return account
    qty, price, whole = order.prior
    filled_since = (order.whole() - abs(order.qty)) - (whole - abs(qty))
    left = abs(qty) - filled_since
    restored = Working(order.symbol, left if qty > 0 else -left, price, whole)
    return msgspec.structs.replace(account, working={**account.working, refused.intent_id: restored})


def _expected(account: AccountRisk) -> dict[str, Decimal]:
    expected = _quantities(account)
    in_flight = (p.working for p in account.pending.values() if p.working is not None)
    for working in (*account.working.values(), *in_flight):
        expected[working.symbol] = expected.get(working.symbol, ZERO) + working.qty
    return expected


def _own(account: AccountRisk, intent: SubmitOrder) -> AccountRisk:
    """Read back an approved order: its strategy owns its fills from now on, and those read
    before (kept aside under the intent) join the strategy's flows. An order already ended keeps
    no owner: no fill can follow its end."""
    flows = dict(account.strategy_flows)
    unowned = account.unowned
    if intent.id in unowned:
        flows[intent.strategy] = flows.get(intent.strategy, Flows()).merge(unowned[intent.id])
        unowned = {k: v for k, v in unowned.items() if k != intent.id}
    owners = account.strategy_of if intent.id in account.closed else {**account.strategy_of,
                                                                        intent.id: intent.strategy}
    return msgspec.structs.replace(account, strategy_flows=flows, unowned=unowned, strategy_of=owners)


def _attribute(account: AccountRisk, event: OrderPartiallyFilled | OrderFilled) -> AccountRisk:
    """A fill into its strategy's flows, or aside under its intent until the approval is read."""
    owner = account.strategy_of.get(event.intent_id)
    fill = (event.symbol, event.side, event.fill_qty, event.fill_price, event.fee)
    if owner is not None:
        flows = {**account.strategy_flows, owner: account.strategy_flows.get(owner, Flows()).add_fill(*fill)}
        return msgspec.structs.replace(account, strategy_flows=flows)
    unowned = {**account.unowned, event.intent_id: account.unowned.get(event.intent_id, Flows()).add_fill(*fill)}
    return msgspec.structs.replace(account, unowned=unowned)


def _apply_order_event(account: AccountRisk, event: Event) -> AccountRisk:
    intent_id = getattr(event, "intent_id", "")
    if isinstance(event, OrderPartiallyFilled | OrderFilled) and intent_id:
        account = _attribute(account, event)
    if not isinstance(event, OrderPartiallyFilled) and intent_id in account.strategy_of:
        account = msgspec.structs.replace(account, strategy_of={
            k: v for k, v in account.strategy_of.items() if k != intent_id})
    positions, working, closed = account.positions, account.working, account.closed
    terminal = not isinstance(event, OrderPartiallyFilled)
    known = intent_id in working
    if isinstance(event, OrderPartiallyFilled | OrderFilled):
        signed = signed_qty(event.side, event.fill_qty)
        held = positions.get(event.symbol, FLAT)
        moved = apply_fill(held, event.side, event.fill_qty, event.fill_price, event.fee)
        positions = {**positions, event.symbol: moved}
        if known and not terminal:
            working = {**working, intent_id: msgspec.structs.replace(working[intent_id],
                                                                     qty=working[intent_id].qty - signed)}
    if terminal:
        if known:
            working = {k: v for k, v in working.items() if k != intent_id}
        elif intent_id and intent_id not in closed:
            closed = (*closed, intent_id)  # its approval has not been read back yet
    return msgspec.structs.replace(account, positions=positions, working=working, closed=closed)


def _plain(value: Decimal) -> str:
    """A Decimal for a person: no trailing zeros of the equity's arithmetic, never an exponent."""
    return format(value.normalize(), "f")


def _on_equity(state: RiskState, update: AccountUpdated, p: RiskParams) -> tuple[RiskState, list[Emit]]:
    account = _account(state, update.account)
    day = update.ts_event // DAY_NS
    start = update.equity if day != account.day or account.day_start_equity is None else account.day_start_equity
    peak = update.equity if account.equity_peak is None else max(account.equity_peak, update.equity)
    account = msgspec.structs.replace(account, day=day, day_start_equity=start, equity=update.equity,
                                      equity_peak=peak)
    loss, drawdown = start - update.equity, peak - update.equity
    if account.halted or account.halt_sent or (loss < p.daily_loss_limit and drawdown < p.max_drawdown):
        return _replace(state, update.account, account), []
    reason = f"daily loss {_plain(loss)} >= limit {p.daily_loss_limit}" if loss >= p.daily_loss_limit \
        else f"max_drawdown: {_plain(drawdown)} below the equity peak {_plain(peak)} >= limit {p.max_drawdown}"
    account = msgspec.structs.replace(account, halt_sent=True)  # halted once the halt is read back
    halt = TradingHalted(id=risk_halt_id(update.id), ts_event=update.ts_event, ts_ingest=update.ts_ingest,
                         origin_ts=update.origin_ts, account=update.account, reason=reason, actor="risk")
    return _replace(state, update.account, account), [Emit(CONTROL, update.account, halt)]


def summarize(state: RiskState) -> dict[str, Any]:
    return {name: {"halted": a.halted, "reason": a.halt_reason,
                   "positions": {s: str(p.qty) for s, p in a.positions.items()},
                   "working": len(a.working), "equity": str(a.equity)} for name, a in sorted(state.accounts.items())}
