"""The backtest's fill model: the venue's answers to approved decisions, on the recorded market.

It stands where execution and the exchange stand live, and answers with the orders.events
execution would publish (ack, partial fill, fill, cancel, reject). The rules are the simulator's,
from the same module (services/matching):
  - a marketable order walks the recorded book at its arrival (decision time + `latency_ns`) and
    takes the liquidity (the next recorded update overwrites the levels it touched);
  - PostOnly that would cross, FOK that cannot fill whole: cancelled at placement, no ack;
    the unfilled rest of a market or IOC order is cancelled (EC_NoImmediateQtyToFill);
  - a resting order fills by queue position (services/matching/queue.py) once per market step,
    a step being the recorded events of one symbol at one venue time;
  - fees from the instrument (maker or taker rate times the fill's value), exact Decimal;
  - funding where recorded: at each multiple of `funding_interval_ns` of venue time (Bybit: every
    8 h) every open position pays value at the mark (the recorded mid, on the tick) x the last
    recorded funding rate of its symbol, a long paying a positive rate (FundingSettled, as
    execution reports the venue's Funding executions; the simulator settles the same way);
  - refusals as the venue's retCodes: 10001 (instrument rules), 110017 (reduce-only with nothing
    to reduce), 110094 (notional below the minimum);
  - an amend changes a resting order in place (OrderAmended, as execution reports the venue's
    answer; 110001 for an order that is gone, 10001 for bad terms): a new price or a larger qty
    goes to the back of the queue at its price, a smaller qty keeps its place, a crossing price
    trades at once (a PostOnly order is cancelled instead); a cancel-all cancels every open order
    of the account on the symbol.
An approved intent of a type this model does not know stops the run (UnsupportedIntent): a new
intent type must get its venue answer here before a backtest can trust it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import msgspec

from schemas.events import (
    AmendOrder,
    BookDeltaReceived,
    BookSnapshotReceived,
    CancelAllOrders,
    CancelOrder,
    Event,
    FundingSettled,
    InstrumentDefined,
    IntentApproved,
    OrderAcknowledged,
    OrderAmended,
    OrderAmendRejected,
    OrderCancelled,
    OrderFilled,
    OrderPartiallyFilled,
    OrderRejected,
    SubmitOrder,
    TickerUpdated,
    TradeReceived,
    derive_id,
)
from services.backtest.instruments import Rules, instrument_rules, rules_of
from services.domain.ids import (
    exec_ack_id,
    exec_amend_id,
    exec_amend_reject_id,
    exec_cancel_id,
    exec_fill_id,
    exec_funding_id,
    link_id_for,
    local_reject_id,
)
from services.matching import book as matching
from services.matching.queue import queue_on_arrival, step_fill
from services.runtime.errors import InvariantViolation

ZERO = Decimal(0)
FUNDING_INTERVAL_NS = 8 * 3600 * 10**9
FUNDING_DIGITS = Decimal("0.00000001")  # the wallet's 8 decimals
POST_ONLY_CROSSED = "EC_PostOnlyWillTakeLiquidity"
FOK_NOT_FILLED = "EC_CancelForNoFullFill"
IOC_REST = "EC_NoImmediateQtyToFill"
CANCEL_BY_USER = "CancelByUser"


class UnsupportedIntent(InvariantViolation):
    """An approved intent the fill model has no venue answer for: the backtest must not guess."""


@dataclass
class Book:
    """One symbol's recorded L2 book (price → size), folded from snapshots and deltas."""

    bids: dict[Decimal, Decimal] = field(default_factory=dict)
    asks: dict[Decimal, Decimal] = field(default_factory=dict)

    def apply(self, event: BookSnapshotReceived | BookDeltaReceived) -> None:
        if isinstance(event, BookSnapshotReceived):
            self.bids, self.asks = dict(event.bids), dict(event.asks)
            return
        for side, levels in ((self.bids, event.bids), (self.asks, event.asks)):
            for price, size in levels:
                if size:
                    side[price] = size
                else:
                    side.pop(price, None)

    def best_bid(self) -> Decimal | None:
        return max(self.bids) if self.bids else None

    def best_ask(self) -> Decimal | None:
        return min(self.asks) if self.asks else None


@dataclass
class Order:
    """A resting (or just placed) order at the modelled venue."""

    intent: SubmitOrder
    order_id: str
    cum_qty: Decimal = ZERO
    queue_ahead: Decimal = ZERO
    open: bool = True

    @property
    def leaves(self) -> Decimal:
        return self.intent.qty - self.cum_qty if self.open else ZERO


class FillModel:
    """The modelled venue: books, resting orders, pending arrivals, positions for reduce-only."""

    def __init__(self, latency_ns: int = 0, rules: Callable[[str], Rules | None] = instrument_rules,
                 funding_interval_ns: int = FUNDING_INTERVAL_NS) -> None:
        if latency_ns < 0:
            raise ValueError(f"latency must be >= 0 ns, got {latency_ns}")
        self.latency_ns = latency_ns
        self.fallback = rules
        self.defined: dict[str, Rules] = {}  # from the recorded ref.instruments, which win
        self.books: dict[str, Book] = {}
        self.orders: dict[str, Order] = {}  # by intent id, in placement order (the simulator's order)
        self.resting: dict[str, Order] = {}  # the open limit orders among them, in the same order
        self.positions: dict[tuple[str, str], Decimal] = {}  # (account, symbol) → signed qty
        self.funding_interval_ns = funding_interval_ns
        self.funding_rates: dict[str, Decimal] = {}  # the last recorded rate per symbol
        self.next_funding_ns: int | None = None
        self.pending: list[tuple[int, int, IntentApproved]] = []  # (arrival ns, sequence, decision)
        self.now_ns = 0
        self.ingest_ns = 0
        self._executions = 0
        self._arrivals = 0

    def rules(self, symbol: str) -> Rules | None:
        """The venue's rules for `symbol`: as recorded (ref.instruments), else `instrument_rules`."""
        return self.defined.get(symbol) or self.fallback(symbol)

    def define(self, event: InstrumentDefined) -> None:
        """A recorded instrument definition: the rules (and fees) orders meet from now on."""
        self.defined[event.symbol] = rules_of(event)

    # ------------------------------------------------------------------ the market

    def on_step(self, events: Sequence[Any]) -> list[Event]:
        """One market step: the recorded events of one symbol at one venue time. Orders that arrive
        before it meet the book as it was; then the step's books apply and resting orders fill by
        queue position against its trades and the book it left. Returns the order events."""
        first = events[0]
        reports = self._arrive_before(first.ts_event)
        # The venue's time of the step: its latest stamp (a book's cts comes a few ms before the trades').
        self.now_ns, self.ingest_ns = max(e.ts_event for e in events), first.ts_ingest
        symbol = first.symbol
        book = self.books.setdefault(symbol, Book())
        trades: list[tuple[str, Decimal, Decimal]] = []
        for event in events:
            if isinstance(event, BookSnapshotReceived | BookDeltaReceived):
                book.apply(event)
            elif isinstance(event, TradeReceived):
                trades.append((event.side, event.price, event.qty))
            elif isinstance(event, TickerUpdated) and event.funding_rate is not None:
                self.funding_rates[symbol] = event.funding_rate
        if self.next_funding_ns is None:
            self.next_funding_ns = self._funding_after(self.now_ns)
        elif self.now_ns >= self.next_funding_ns:
            reports += self._settle_funding()
            self.next_funding_ns = self._funding_after(self.now_ns)
        for order in list(self.resting.values()):
            intent = order.intent
            if not order.open or intent.symbol != symbol or intent.price is None:
                continue
            own, opposite = (book.bids, book.best_ask()) if intent.side == "Buy" else (book.asks, book.best_bid())
            filled, order.queue_ahead = step_fill(intent.side, intent.price, order.leaves, order.queue_ahead,
                                                  trades, own.get(intent.price), opposite)
            if filled:
                reports.append(self._fill(order, filled, intent.price, maker=True))
        if any(not o.open for o in self.resting.values()):
            self.resting = {k: o for k, o in self.resting.items() if o.open}
        return reports

    def _funding_after(self, ns: int) -> int:
        interval = self.funding_interval_ns
        return (ns // interval + 1) * interval if interval > 0 else 2**63

    def _settle_funding(self) -> list[Event]:
        """Every open position pays (or receives) its funding now (module docstring)."""
        reports: list[Event] = []
        for (account, symbol), qty in sorted(self.positions.items()):
            rate, book, rules = self.funding_rates.get(symbol), self.books.get(symbol), self.rules(symbol)
            if not qty or rate is None or book is None or rules is None:
                continue  # nothing held, or no rate recorded: nothing to settle
            bid, ask = book.best_bid(), book.best_ask()
            if bid is None or ask is None:
                continue
            mark = ((bid + ask) / 2 / rules.tick_size).to_integral_value(ROUND_FLOOR) * rules.tick_size
            amount = (mark * abs(qty) * rate * (1 if qty > 0 else -1)).quantize(FUNDING_DIGITS)
            self._executions += 1
            exec_id = derive_id("backtest-funding", account, symbol, self.now_ns)
            reports.append(FundingSettled(id=exec_funding_id(exec_id), ts_event=self.now_ns, ts_ingest=self.ingest_ns,
                                          account=account, symbol=symbol, exec_id=exec_id, funding_rate=rate,
                                          position_qty=qty, mark_price=mark, amount=amount))
        return reports

    def finish(self) -> list[Event]:
        """Orders still in flight when the data ends arrive at the last book (none with zero latency)."""
        return self._arrive_before(None)

    # ------------------------------------------------------------------ decisions

    def on_decision(self, decision: IntentApproved) -> list[Event]:
        """An approved intent reaches the venue now (zero latency) or after `latency_ns`."""
        intent = decision.intent
        if not isinstance(intent, SubmitOrder | CancelOrder | AmendOrder | CancelAllOrders):
            raise UnsupportedIntent(f"the fill model has no venue answer for {type(intent).__name__} "
                                    f"(intent {intent.id}); add one in services/backtest/venue.py")
        if self.latency_ns == 0:
            return self._act(intent)
        self._arrivals += 1
        self.pending.append((decision.ts_event + self.latency_ns, self._arrivals, decision))
        return []

    def _arrive_before(self, ts_ns: int | None) -> list[Event]:
        due = [p for p in self.pending if ts_ns is None or p[0] < ts_ns]
        if not due:
            return []
        self.pending = [p for p in self.pending if not (ts_ns is None or p[0] < ts_ns)]
        reports: list[Event] = []
        for arrival, _, decision in sorted(due, key=lambda p: (p[0], p[1])):
            self.now_ns = max(self.now_ns, arrival)
            reports += self._act(decision.intent)
        return reports

    def _act(self, intent: Any) -> list[Event]:
        if isinstance(intent, AmendOrder):
            return self._amend(intent)
        if isinstance(intent, CancelAllOrders):
            gone = [o for o in self.orders.values()
                    if o.open and o.intent.symbol == intent.symbol and o.intent.account == intent.account]
            for order in gone:
                order.open = False
            return [self._cancelled(order, CANCEL_BY_USER) for order in gone]
        if isinstance(intent, CancelOrder):
            order = self.orders.get(intent.intent_id)
            if order is None or not order.open:
                return []  # the venue answers 110001; execution reports nothing
            order.open = False
            return [self._cancelled(order, CANCEL_BY_USER)]
        return self._place(intent)

    def _place(self, intent: SubmitOrder) -> list[Event]:
        rules = self.rules(intent.symbol)
        if rules is None:
            return [self._rejected(intent, 10001, f"params error: symbol {intent.symbol!r} is not listed")]
        if intent.qty % rules.qty_step or intent.qty < rules.min_qty:
            return [self._rejected(intent, 10001, f"params error: qty {intent.qty} must be a multiple of "
                                                  f"{rules.qty_step} of at least {rules.min_qty}")]
        price = intent.price if intent.order_type == "Limit" else None
        if price is not None and (price <= 0 or price % rules.tick_size):
            return [self._rejected(intent, 10001, f"params error: price {price} must be a positive multiple of "
                                                  f"{rules.tick_size}")]
        qty = intent.qty
        if intent.reduce_only:
            held = self.positions.get((intent.account, intent.symbol), ZERO)
            closable = -held if intent.side == "Buy" else held
            if closable <= 0:
                return [self._rejected(intent, 110017, "reduce-only order would not reduce the position")]
            qty = min(qty, closable)
        book = self.books.setdefault(intent.symbol, Book())
        best_bid, best_ask = book.best_bid(), book.best_ask()
        reference = price if price is not None else (best_ask if intent.side == "Buy" else best_bid)
        if reference is None or reference * qty < rules.min_notional:
            return [self._rejected(intent, 110094, f"Order notional value below the lower limit "
                                                   f"{rules.min_notional}")]
        placed = intent if qty == intent.qty else _with_qty(intent, qty)
        order = Order(placed, derive_id("backtest-order", intent.id))
        self.orders[intent.id] = order
        crosses = matching.crosses(intent.side, price, best_bid, best_ask)
        tif = intent.time_in_force if intent.order_type == "Limit" else "IOC"
        opposite = book.asks if intent.side == "Buy" else book.bids
        if tif == "PostOnly" and crosses:
            order.open = False
            return [self._cancelled(order, POST_ONLY_CROSSED)]
        if tif == "FOK" and matching.available(opposite, intent.side, price) < qty:
            order.open = False
            return [self._cancelled(order, FOK_NOT_FILLED)]
        reports: list[Event] = [self._ack(order)]
        if crosses:
            for level, take in matching.walk(opposite, intent.side, price, qty):
                matching.remove(opposite, [(level, take)])
                reports.append(self._fill(order, take, level, maker=False))
        if order.open and (intent.order_type == "Market" or tif in ("IOC", "FOK")):
            order.open = False
            reports.append(self._cancelled(order, IOC_REST))
        elif order.open and price is not None:
            own = book.bids if intent.side == "Buy" else book.asks
            order.queue_ahead = queue_on_arrival(own.get(price), ZERO)
            self.resting[intent.id] = order
        return reports

    def _amend(self, amend: AmendOrder) -> list[Event]:
        """The simulator's /v5/order/amend on the modelled order (module docstring)."""
        order = self.orders.get(amend.intent_id)
        if order is None or not order.open or order.intent.symbol != amend.symbol:
            return [self._amend_refused(amend, 110001, "Order does not exist.")]
        rules = self.rules(amend.symbol)
        assert rules is not None  # the order was placed, so its symbol is listed
        old = order.intent
        qty, price = old.qty, old.price
        if amend.qty is not None:
            if amend.qty % rules.qty_step or amend.qty < rules.min_qty:
                return [self._amend_refused(amend, 10001, f"params error: qty {amend.qty} must be a multiple of "
                                                          f"{rules.qty_step} of at least {rules.min_qty}")]
            if amend.qty <= order.cum_qty:
                return [self._amend_refused(amend, 10001, f"params error: qty {amend.qty} must exceed the filled "
                                                          f"qty {order.cum_qty}")]
            qty = amend.qty
        if amend.price is not None:
            if old.price is None or old.order_type != "Limit":
                return [self._amend_refused(amend, 10001, "params error: a market order has no price to amend")]
            if amend.price % rules.tick_size:
                return [self._amend_refused(amend, 10001, f"params error: price {amend.price} must be a positive "
                                                          f"multiple of {rules.tick_size}")]
            price = amend.price
        reports: list[Event] = [OrderAmended(id=exec_amend_id(amend.id), **self._amend_common(amend),
                                             qty=amend.qty, price=amend.price)]
        if (qty, price) == (old.qty, old.price):
            return reports  # "remains unchanged": execution takes that as the amend done
        requeue = price != old.price or qty > old.qty
        order.intent = msgspec.structs.replace(old, qty=qty, price=price)
        book = self.books.setdefault(amend.symbol, Book())
        assert price is not None
        if matching.crosses(old.side, price, book.best_bid(), book.best_ask()):
            if old.time_in_force == "PostOnly":
                order.open = False
                return [*reports, self._cancelled(order, POST_ONLY_CROSSED)]
            opposite = book.asks if old.side == "Buy" else book.bids
            for level, take in matching.walk(opposite, old.side, price, order.leaves):
                matching.remove(opposite, [(level, take)])
                reports.append(self._fill(order, take, level, maker=False))
        if order.open and requeue:
            own = book.bids if old.side == "Buy" else book.asks
            order.queue_ahead = queue_on_arrival(own.get(price), ZERO)
        return reports

    def _amend_common(self, amend: AmendOrder) -> dict[str, Any]:
        return {"ts_event": self.now_ns, "ts_ingest": self.ingest_ns, "origin_ts": amend.origin_ts,
                "account": amend.account, "symbol": amend.symbol, "intent_id": amend.intent_id,
                "order_link_id": link_id_for(amend.intent_id)}

    def _amend_refused(self, amend: AmendOrder, code: int, reason: str) -> Event:
        return OrderAmendRejected(id=exec_amend_reject_id(amend.id), **self._amend_common(amend),
                                  ret_code=code, reason=reason)

    # ------------------------------------------------------------------ reports

    def _common(self, order: Order) -> dict[str, Any]:
        intent = order.intent
        return {"ts_event": self.now_ns, "ts_ingest": self.ingest_ns, "origin_ts": intent.origin_ts,
                "account": intent.account, "symbol": intent.symbol, "intent_id": intent.id,
                "order_link_id": link_id_for(intent.id), "order_id": order.order_id}

    def _ack(self, order: Order) -> Event:
        intent = order.intent
        rules = self.rules(intent.symbol)
        assert rules is not None
        price = _digits(intent.price, rules.tick_size) if intent.order_type == "Limit" and intent.price else None
        return OrderAcknowledged(id=exec_ack_id(order.order_id), **self._common(order), side=intent.side,
                                 order_type=intent.order_type, qty=_digits(intent.qty, rules.qty_step), price=price)

    def _fill(self, order: Order, qty: Decimal, price: Decimal, maker: bool) -> Event:
        intent = order.intent
        rules = self.rules(intent.symbol)
        assert rules is not None  # placed orders passed the instrument check
        # As the venue prints them: prices on the tick's digits, sizes on the lot's, fees trimmed.
        qty, price = _digits(qty, rules.qty_step), _digits(price, rules.tick_size)
        fee = _trimmed(price * qty * (rules.maker_fee if maker else rules.taker_fee))
        order.cum_qty = _digits(order.cum_qty + qty, rules.qty_step)
        signed = qty if intent.side == "Buy" else -qty
        key = (intent.account, intent.symbol)
        self.positions[key] = self.positions.get(key, ZERO) + signed
        self._executions += 1
        exec_id = derive_id("backtest-exec", order.order_id, self._executions)
        fill = {"exec_id": exec_id, "side": intent.side, "fill_qty": qty, "fill_price": price, "fee": fee,
                "is_maker": maker, "cum_qty": order.cum_qty}
        if order.cum_qty == intent.qty:
            order.open = False
            return OrderFilled(id=exec_fill_id(exec_id), **self._common(order), **fill)
        return OrderPartiallyFilled(id=exec_fill_id(exec_id), **self._common(order),
                                    leaves_qty=intent.qty - order.cum_qty, **fill)

    def _cancelled(self, order: Order, reason: str) -> Event:
        rules = self.rules(order.intent.symbol)
        cum = _digits(order.cum_qty, rules.qty_step) if rules is not None else order.cum_qty
        return OrderCancelled(id=exec_cancel_id(order.order_id), **self._common(order), reason=reason,
                              cum_qty=cum)

    def _rejected(self, intent: SubmitOrder, ret_code: int, reason: str) -> Event:
        """As execution reports a refused create (its id derives from the intent: the same as live)."""
        return OrderRejected(id=local_reject_id(intent.id), ts_event=self.now_ns, ts_ingest=self.ingest_ns,
                             origin_ts=intent.origin_ts, account=intent.account, symbol=intent.symbol,
                             intent_id=intent.id, order_link_id=link_id_for(intent.id), ret_code=ret_code,
                             reason=reason)


def _digits(value: Decimal, unit: Decimal) -> Decimal:
    """`value` printed on `unit`'s digits, as the venue prints it; a value off that grid (recorded
    data finer than these rules) keeps its own digits: never rounded."""
    on_grid = value.quantize(unit)
    return on_grid if on_grid == value else value


def _trimmed(value: Decimal) -> Decimal:
    """Plain digits without trailing zeros, as the venue prints a fee."""
    text = format(value, "f")
    return Decimal(text.rstrip("0").rstrip(".") if "." in text else text)


def _with_qty(intent: SubmitOrder, qty: Decimal) -> SubmitOrder:
    """A reduce-only order trimmed to what it can close, as the venue trims it."""
    return msgspec.structs.replace(intent, qty=qty)
