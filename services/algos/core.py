"""The algos core: parent orders (SubmitAlgo) worked as ordinary SubmitOrder children. Pure.

State is a fold of the log, per partition of the symbol-keyed inputs: the parents in progress, their
open children, what filled, and each symbol's market (top of book, market time, instrument rules).
Time is market time only, the `ts_event` of md.trades and md.book: a parent starts when the market
passes the parent's own time (its arrival price is the mid then) and a TWAP slice is due when the
market passes its slot, never by a clock, so a replay or a restart after SIGKILL sends the same
children, numbered in the order the fold sends them (services/domain/ids.py algo_child_id).

  twap / vwap  slot k (1..n) falls at start + k * duration / n; at a due slot one child is sent
               for what the schedule's cumulative target (even; for a vwap the parent's own volume
               profile, else the configured volume curve) still lacks, capped by `participation` x
               the volume traded since the last slice, as an IOC limit `slippage` through the touch
               (never past the parent's limit). After the last slot the parent ends: completed,
               or expired with what is left.
  iceberg      one GTC limit child of `display_qty` at the parent's price at a time; the next once
               it filled, until the total is done. A child cancelled by anyone else ends the parent.
Children rejected by risk or the venue are retried (twap: at the next slot; iceberg: a second of
market time later, past risk's order-rate window) until `max_rejects`, then the parent fails.
A CancelAlgo stops the parent: no more children, a CancelOrder (through risk) for the working one,
and the parent ends cancelled once no child of it is left on the book.
Each ended child gives an AlgoProgressed report and the end an AlgoCompleted
(services/algos/report.py) on algos.reports.

The backtester can run this core as it runs the strategy's: it needs only the same event stream.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

from schemas.events import (
    AlgoCompleted,
    AlgoProgressed,
    BookDeltaReceived,
    BookSnapshotReceived,
    CancelAlgo,
    CancelOrder,
    Event,
    InstrumentDefined,
    IntentRejected,
    OrderCancelled,
    OrderFilled,
    OrderPartiallyFilled,
    OrderRejected,
    SubmitAlgo,
    SubmitOrder,
    TradeReceived,
)
from schemas.topics import ALGOS_REPORTS, ORDERS_INTENTS
from services.algos import report
from services.domain import repeats
from services.domain.ids import algo_cancel_child_id, algo_child_id, algo_done_id, algo_report_id
from services.domain.instrument import Instrument, from_defined
from services.runtime.service import Emit

ZERO = Decimal(0)
NS_PER_S = 10**9
RETRY_AFTER_NS = NS_PER_S  # a rejected child is sent again no sooner, in market time (order_rate is per second)


class AlgoParams(msgspec.Struct, frozen=True, kw_only=True):
    slippage: Decimal = Decimal("0.002")  # how far through the touch a twap/vwap child may trade
    max_rejects: int = 3
    vwap_curve: tuple[Decimal, ...] = tuple(Decimal(w) for w in ("3", "2", "1.5", "1.5", "2", "3"))


class Market(msgspec.Struct, frozen=True):
    ts: int = 0
    bid: Decimal | None = None
    ask: Decimal | None = None
    instrument: Instrument | None = None

    @property
    def mid(self) -> Decimal | None:
        return (self.bid + self.ask) / 2 if self.bid is not None and self.ask is not None else None


class Parent(msgspec.Struct, frozen=True):
    order: SubmitAlgo
    started: int = 0  # market time it started (0: waiting for the symbol's first book)
    arrival: Decimal | None = None  # the mid then
    slots_done: int = 0  # twap/vwap slots used
    sent: int = 0  # children sent: the next child's number
    open: dict[str, Decimal] = {}  # open child id → its qty still unfilled
    filled: Decimal = ZERO
    notional: Decimal = ZERO  # sum of fill qty * price
    fees: Decimal = ZERO
    rejects: int = 0
    retry_at: int = 0  # market time before which no child follows a rejected one
    volume: Decimal = ZERO  # public trades on the symbol since the start
    turnover: Decimal = ZERO
    since_slice: Decimal = ZERO  # public volume since the last slice (the participation cap)
    detail: str = ""
    cancel: str = ""  # why an operator cancelled it (set: no more children; it ends when none is open)


class AlgoState(msgspec.Struct, frozen=True):
    parents: dict[str, Parent] = {}
    finished: tuple[str, ...] = ()  # ended parents: a parent record read again starts nothing
    child_of: dict[str, str] = {}  # open child id → parent id
    markets: dict[str, Market] = {}
    # Ids of the parents, cancels, rejections and order events applied (services/domain/repeats.py):
    # without a transaction their emitters may log one twice after a crash; the copy is dropped.
    applied: repeats.Window = {}


def initial_state() -> AlgoState:
    return AlgoState(parents={}, finished=(), child_of={}, markets={}, applied={})


def step(state: AlgoState, event: Event, params: AlgoParams) -> tuple[AlgoState, list[Emit]]:
    """Apply one event; one of the events a parent acts on (its order, its cancel, its children's
    rejections and reports) is applied once per id: a repeat in the log is dropped."""
    if not _acted_on(state, event):
        return _step(state, event, params)
    if repeats.seen(state.applied, event.id, event.ts_event):
        return state, []
    after, emits = _step(state, event, params)
    if after is state:  # changed nothing (a cancel of an unknown parent): nothing to drop later
        return state, emits
    return msgspec.structs.replace(after, applied=repeats.remember(after.applied, event.id, event.ts_event)), emits


def _acted_on(state: AlgoState, event: Event) -> bool:
    """Whether a parent acts on `event`: the ids kept are those, not every order event's."""
    if isinstance(event, SubmitAlgo | CancelAlgo):
        return True
    if isinstance(event, IntentRejected):
        return event.intent.id in state.child_of
    if isinstance(event, OrderPartiallyFilled | OrderFilled | OrderCancelled | OrderRejected):
        return event.intent_id in state.child_of
    return False


def _step(state: AlgoState, event: Event, params: AlgoParams) -> tuple[AlgoState, list[Emit]]:
    if isinstance(event, BookSnapshotReceived | BookDeltaReceived):
        if event.best_bid is None or event.best_ask is None:
            return state, []
        market = msgspec.structs.replace(_market(state, event.symbol), ts=event.ts_event,
                                         bid=event.best_bid[0], ask=event.best_ask[0])
        return _on_market(_with_market(state, event.symbol, market), event.symbol, event, params)
    if isinstance(event, TradeReceived):
        market = msgspec.structs.replace(_market(state, event.symbol), ts=event.ts_event)
        state = _with_market(state, event.symbol, market)
        parents = {pid: msgspec.structs.replace(p, volume=p.volume + event.qty,
                                                turnover=p.turnover + event.qty * event.price,
                                                since_slice=p.since_slice + event.qty)
                   if p.order.symbol == event.symbol and p.started else p for pid, p in state.parents.items()}
        return _on_market(msgspec.structs.replace(state, parents=parents), event.symbol, event, params)
    if isinstance(event, SubmitAlgo):
        if event.id in state.parents or event.id in state.finished:
            return state, []
        state = msgspec.structs.replace(state, parents={**state.parents, event.id: Parent(event)})
        return _advance(state, event.id, event, params)
    if isinstance(event, CancelAlgo):
        return _cancel(state, event)
    if isinstance(event, InstrumentDefined):
        instrument = from_defined(event)
        market = _market(state, event.symbol)
        if market.instrument == instrument:
            return state, []
        return _with_market(state, event.symbol, msgspec.structs.replace(market, instrument=instrument)), []
    if isinstance(event, IntentRejected) and event.intent.id in state.child_of:
        return _ended(state, event.intent.id, event, f"rejected by risk: {event.rule}", params)
    if isinstance(event, OrderPartiallyFilled | OrderFilled) and event.intent_id in state.child_of:
        state = _fill(state, event)
        if isinstance(event, OrderFilled):
            return _ended(state, event.intent_id, event, "", params)
        return state, []
    if isinstance(event, OrderCancelled | OrderRejected) and event.intent_id in state.child_of:
        why = f"rejected by the venue: {event.ret_code} {event.reason}" if isinstance(event, OrderRejected) \
            else f"cancelled: {event.reason}"
        return _ended(state, event.intent_id, event, why, params)
    return state, []


def _market(state: AlgoState, symbol: str) -> Market:
    return state.markets.get(symbol) or Market()


def _with_market(state: AlgoState, symbol: str, market: Market) -> AlgoState:
    return msgspec.structs.replace(state, markets={**state.markets, symbol: market})


def _on_market(state: AlgoState, symbol: str, event: Event, params: AlgoParams) -> tuple[AlgoState, list[Emit]]:
    """Market time moved on `symbol`: every parent there may start or have a slot due."""
    emits: list[Emit] = []
    for parent_id in sorted(pid for pid, p in state.parents.items() if p.order.symbol == symbol):
        state, more = _advance(state, parent_id, event, params)
        emits += more
    return state, emits


def _fill(state: AlgoState, fill: OrderPartiallyFilled | OrderFilled) -> AlgoState:
    parent_id = state.child_of[fill.intent_id]
    parent = state.parents[parent_id]
    left = parent.open[fill.intent_id] - fill.fill_qty
    parent = msgspec.structs.replace(
        parent, open={**parent.open, fill.intent_id: left}, filled=parent.filled + fill.fill_qty,
        notional=parent.notional + fill.fill_qty * fill.fill_price, fees=parent.fees + fill.fee)
    return msgspec.structs.replace(state, parents={**state.parents, parent_id: parent})


def _ended(state: AlgoState, child_id: str, cause: Event, why: str,
           params: AlgoParams) -> tuple[AlgoState, list[Emit]]:
    """A child left the book (filled, cancelled, rejected): report, then let the parent go on."""
    parent_id = state.child_of[child_id]
    parent = state.parents[parent_id]
    unfilled_end = isinstance(cause, IntentRejected | OrderRejected)
    rejects = parent.rejects + (1 if unfilled_end else 0)
    detail = parent.cancel or why or parent.detail  # a cancelled parent keeps saying why it stopped
    market = _market(state, parent.order.symbol)
    parent = msgspec.structs.replace(parent, open={k: v for k, v in parent.open.items() if k != child_id},
                                     rejects=rejects, detail=detail,
                                     retry_at=market.ts + RETRY_AFTER_NS if unfilled_end else parent.retry_at)
    state = msgspec.structs.replace(state, parents={**state.parents, parent_id: parent},
                                    child_of={k: v for k, v in state.child_of.items() if k != child_id})
    progress = report.build(AlgoProgressed, parent, market, cause, algo_report_id(parent_id, cause.id), "working")
    emits = [Emit(ALGOS_REPORTS, parent.order.symbol, progress)]
    if parent.cancel and not parent.open:
        state, done = _finish(state, parent_id, cause, "cancelled")
        return state, emits + done
    if parent.order.kind == "iceberg" and isinstance(cause, OrderCancelled):
        state, done = _finish(state, parent_id, cause, "cancelled")
        return state, emits + done
    if rejects >= params.max_rejects:
        state, done = _finish(state, parent_id, cause, "failed")
        return state, emits + done
    state, more = _advance(state, parent_id, cause, params)
    return state, emits + more


def _cancel(state: AlgoState, cancel: CancelAlgo) -> tuple[AlgoState, list[Emit]]:
    """Stop the parent: it sends nothing more, its working child is cancelled through risk like any
    cancel, and it ends (cancelled) now if no child is open, else once the open one has ended
    (_ended): its fills until then count in the report."""
    parent = state.parents.get(cancel.parent_id)
    if parent is None or parent.cancel or (parent.order.account, parent.order.symbol) != (cancel.account,
                                                                                         cancel.symbol):
        return state, []  # ended already, cancelled already, or not this account's parent
    order = parent.order
    why = f"cancelled by {cancel.strategy}" + (f": {cancel.reason}" if cancel.reason else "")
    parent = msgspec.structs.replace(parent, cancel=why, detail=why)
    state = _put(state, parent)
    if not parent.open:
        return _finish(state, order.id, cancel, "cancelled")
    emits = [Emit(ORDERS_INTENTS, order.symbol, CancelOrder(
        id=algo_cancel_child_id(order.id, child_id), ts_event=cancel.ts_event, ts_ingest=cancel.ts_ingest,
        origin_ts=cancel.origin_ts, account=order.account, strategy=order.strategy, venue=order.venue,
        symbol=order.symbol, intent_id=child_id)) for child_id in sorted(parent.open)]
    return state, emits


def _finish(state: AlgoState, parent_id: str, cause: Event, status: str) -> tuple[AlgoState, list[Emit]]:
    parent = state.parents[parent_id]
    done = report.build(AlgoCompleted, parent, _market(state, parent.order.symbol), cause, algo_done_id(parent_id),
                        status)
    state = msgspec.structs.replace(state, parents={k: v for k, v in state.parents.items() if k != parent_id},
                                    finished=(*state.finished, parent_id))
    return state, [Emit(ALGOS_REPORTS, parent.order.symbol, done)]


def _advance(state: AlgoState, parent_id: str, cause: Event, params: AlgoParams) -> tuple[AlgoState, list[Emit]]:
    """Start the parent once its symbol has a book and market time has reached the parent's own
    time (a service folding the market late must not date the start, nor the arrival price, back),
    then send what its schedule says is due."""
    parent = state.parents[parent_id]
    order = parent.order
    market = _market(state, order.symbol)
    if parent.cancel:
        return state, []  # stopped: waiting only for its cancelled child to leave the book
    if not parent.started:
        if market.mid is None or not market.ts or market.ts < order.ts_event:
            return state, []
        parent = msgspec.structs.replace(parent, started=market.ts, arrival=market.mid)
    if parent.open or market.ts < parent.retry_at:
        child = None  # one child at a time (the next is sized by what this one filled), none right after a rejection
    elif parent.filled >= order.qty:
        return _finish(_put(state, parent), parent_id, cause, "completed")
    elif order.kind == "iceberg":
        child = _iceberg_child(parent, market)
    else:
        parent, child = _scheduled_child(parent, market, params)
        if child is None and parent.slots_done >= _slots(order, params):
            return _finish(_put(state, parent), parent_id, cause, "expired")
    if child is None:
        return _put(state, parent), []
    qty, price, tif = child
    child_id = algo_child_id(parent_id, parent.sent)
    intent = SubmitOrder(id=child_id, ts_event=market.ts, ts_ingest=cause.ts_ingest, origin_ts=cause.origin_ts,
                         account=order.account, strategy=order.strategy, venue=order.venue, symbol=order.symbol,
                         side=order.side, order_type="Limit", qty=qty, price=price, time_in_force=tif)
    parent = msgspec.structs.replace(parent, sent=parent.sent + 1, open={child_id: qty})
    state = msgspec.structs.replace(_put(state, parent), child_of={**state.child_of, child_id: parent_id})
    return state, [Emit(ORDERS_INTENTS, order.symbol, intent)]


def _put(state: AlgoState, parent: Parent) -> AlgoState:
    return msgspec.structs.replace(state, parents={**state.parents, parent.order.id: parent})


def _slots(order: SubmitAlgo, params: AlgoParams) -> int:
    return order.slices if order.kind == "twap" else len(_curve(order, params))


def _curve(order: SubmitAlgo, params: AlgoParams) -> tuple[Decimal, ...]:
    """A vwap's weights per slice: the profile it carries (from recorded history), else the configured curve."""
    return order.volume_profile or params.vwap_curve


def _lot(qty: Decimal, instrument: Instrument | None) -> Decimal:
    return instrument.qty_down(qty) if instrument is not None else qty


def _iceberg_child(parent: Parent, market: Market) -> tuple[Decimal, Decimal, str] | None:
    order = parent.order
    assert order.display_qty is not None and order.limit_price is not None  # SubmitAlgo checks an iceberg
    remaining = order.qty - parent.filled
    qty = _lot(min(order.display_qty, remaining), market.instrument)
    if market.instrument is not None and qty < market.instrument.min_qty:
        qty = remaining  # the last bit below the minimum: risk names the rule if it is refused
    return qty, order.limit_price, "GTC"


def target(order: SubmitAlgo, slot: int, params: AlgoParams) -> Decimal:
    """The cumulative qty the schedule wants done by the end of `slot` (1..n): even for a twap,
    by its volume profile (or the configured curve) for a vwap; the whole qty at the last slot."""
    n = _slots(order, params)
    if slot >= n:
        return order.qty
    if order.kind == "twap":
        return order.qty * slot / n
    curve = _curve(order, params)
    return order.qty * sum(curve[:slot], ZERO) / sum(curve, ZERO)


def _scheduled_child(parent: Parent, market: Market,
                     params: AlgoParams) -> tuple[Parent, tuple[Decimal, Decimal, str] | None]:
    """The child of the latest due slot, if any (missed slots are caught up by the target)."""
    order = parent.order
    n = _slots(order, params)
    interval = order.duration_s * NS_PER_S // n
    due = min(n, (market.ts - parent.started) // interval)
    if due <= parent.slots_done:
        return parent, None
    want = target(order, due, params) - parent.filled
    if order.participation is not None:
        want = min(want, order.participation * parent.since_slice)
    parent = msgspec.structs.replace(parent, slots_done=due, since_slice=ZERO)
    qty = _lot(want, market.instrument)
    instrument = market.instrument
    if qty <= 0 or (instrument is not None and qty < instrument.min_qty):
        return parent, None
    if order.side == "Buy":
        if market.ask is None:
            return parent, None
        price = market.ask * (1 + params.slippage)
        price = instrument.price_down(price) if instrument is not None else price
        price = min(price, order.limit_price) if order.limit_price is not None else price
    else:
        if market.bid is None:
            return parent, None
        price = market.bid * (1 - params.slippage)
        price = instrument.price_up(price) if instrument is not None else price
        price = max(price, order.limit_price) if order.limit_price is not None else price
    return parent, (qty, price, "IOC")


def summarize(state: AlgoState) -> dict[str, Any]:
    return {"working": {pid: {"kind": p.order.kind, "symbol": p.order.symbol, "qty": str(p.order.qty),
                              "filled": str(p.filled), "children": p.sent, "open": sorted(p.open)}
                        for pid, p in sorted(state.parents.items())},
            "finished": len(state.finished)}
