"""Book-imbalance market maker: quote both sides around a fair price skewed by the book.

fair = mid + imbalance * skew_ticks * tick - inventory * inventory_ticks * tick / max_position,
with imbalance = (bid size - ask size) / (bid size + ask size) at the top of the book. Quotes are
PostOnly limits `half_spread_ticks` from fair, kept off the opposite best so they rest. When the
wanted price moves `requote_ticks` or more (and at most once per `min_requote_ns` of event time),
the resting quote is amended to the new price in place (`amend`; one venue request instead of a
cancel and a new order, and the order keeps its intent); with `amend` off it is cancelled and a
new one sent. A side whose fill would pass `max_position` is not quoted (its quote is cancelled).
A quote whose amend the venue refused is marked stale, so the next book update amends it again.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import msgspec

from schemas.events import (
    AmendOrder,
    BookDeltaReceived,
    BookSnapshotReceived,
    CancelOrder,
    Event,
    OrderAmendRejected,
    SubmitOrder,
)
from services.domain.ids import maker_amend_id, maker_cancel_id, maker_quote_id
from services.strategy.orders import OwnOrders

ZERO = Decimal(0)


class MakerParams(msgspec.Struct, frozen=True, kw_only=True):
    account: str
    tick_size: Decimal = ZERO  # 0: the instrument's (the core sets it from ref.instruments)
    qty: Decimal = Decimal("0.01")
    half_spread_ticks: int = 2
    skew_ticks: int = 2
    inventory_ticks: int = 4
    requote_ticks: int = 1
    min_requote_ns: int = 200_000_000
    max_position: Decimal = Decimal("0.05")
    amend: bool = True  # re-quote by amending the resting quote (else cancel + new)


class Quote(msgspec.Struct, frozen=True):
    intent_id: str
    price: Decimal
    stale: bool = False  # the venue refused the last amend: the order's price is not `price`


class MakerState(msgspec.Struct, frozen=True):
    bid: Quote | None = None
    ask: Quote | None = None
    last_quote_ns: int = 0
    orders: OwnOrders = OwnOrders()


def wanted_prices(best_bid: tuple[Decimal, Decimal], best_ask: tuple[Decimal, Decimal], position: Decimal,
                  p: MakerParams) -> tuple[Decimal, Decimal]:
    """The bid and ask to quote now, on the tick grid and never crossing the opposite best."""
    (bid, bid_size), (ask, ask_size) = best_bid, best_ask
    mid = (bid + ask) / 2
    depth = bid_size + ask_size
    imbalance = (bid_size - ask_size) / depth if depth else ZERO
    fair = mid + imbalance * p.skew_ticks * p.tick_size - position / p.max_position * p.inventory_ticks * p.tick_size
    want_bid = ((fair - p.half_spread_ticks * p.tick_size) / p.tick_size).to_integral_value(ROUND_FLOOR) * p.tick_size
    want_ask = ((fair + p.half_spread_ticks * p.tick_size) / p.tick_size).to_integral_value(ROUND_CEILING) * p.tick_size
    return min(want_bid, ask - p.tick_size), max(want_ask, bid + p.tick_size)


def on_book(state: MakerState, book: BookSnapshotReceived | BookDeltaReceived,
            p: MakerParams) -> tuple[MakerState, list[Event]]:
    if book.best_bid is None or book.best_ask is None:
        return state, []
    if state.last_quote_ns and book.ts_event - state.last_quote_ns < p.min_requote_ns:
        return state, []
    position = state.orders.position
    want_bid, want_ask = wanted_prices(book.best_bid, book.best_ask, position, p)
    intents: list[Event] = []
    orders, quotes = state.orders, {"Buy": state.bid, "Sell": state.ask}
    for side, price, allowed in (("Buy", want_bid, position + p.qty <= p.max_position),
                                 ("Sell", want_ask, position - p.qty >= -p.max_position)):
        current = quotes[side]
        if current is not None and allowed and not current.stale \
                and abs(current.price - price) < p.requote_ticks * p.tick_size:
            continue
        common = {"ts_event": book.ts_event, "ts_ingest": book.ts_ingest, "origin_ts": book.origin_ts,
                  "account": p.account, "strategy": "maker", "venue": book.venue, "symbol": book.symbol}
        if current is not None and allowed and p.amend:
            intents.append(AmendOrder(id=maker_amend_id(current.intent_id, book.id), price=price,
                                      intent_id=current.intent_id, **common))
            quotes[side] = Quote(current.intent_id, price)
            continue
        if current is not None:
            intents.append(CancelOrder(id=maker_cancel_id(current.intent_id), intent_id=current.intent_id,
                                       **common))
            quotes[side] = None
        if allowed:
            intent = SubmitOrder(id=maker_quote_id(p.account, book.symbol, book.id, side), side=side,
                                 order_type="Limit", qty=p.qty, price=price, time_in_force="PostOnly", **common)
            intents.append(intent)
            quotes[side] = Quote(intent.id, price)
            orders = orders.submitted(intent.id, p.qty if side == "Buy" else -p.qty)
    if not intents:
        return state, []
    return MakerState(quotes["Buy"], quotes["Sell"], book.ts_event, orders), intents


def on_order_event(state: MakerState, event: Event) -> MakerState:
    """Fold our own order event; a quote that left the book is forgotten, one whose amend the
    venue refused is marked stale."""
    if isinstance(event, OrderAmendRejected):
        bid, ask = (msgspec.structs.replace(q, stale=True) if q is not None and q.intent_id == event.intent_id
                    else q for q in (state.bid, state.ask))
        return MakerState(bid, ask, state.last_quote_ns, state.orders)
    orders = state.orders.apply(event)
    if orders is state.orders:
        return state
    gone = set(state.orders.working) - set(orders.working)
    bid = None if state.bid is not None and state.bid.intent_id in gone else state.bid
    ask = None if state.ask is not None and state.ask.intent_id in gone else state.ask
    return MakerState(bid, ask, state.last_quote_ns, orders)


def adopt(state: MakerState, intent: Event) -> tuple[MakerState, list[Event]]:
    """Our quote intent as the log holds it, which this fold did not emit so (services/strategy/
    core.py `_read_back`). A quote of the same id takes the log's terms; a quote the maker does not
    hold counts as working and is cancelled, so it never rests on the book unknown to the maker;
    an amend or cancel of a quote it holds moves or forgets it."""
    bid, ask = state.bid, state.ask
    if isinstance(intent, SubmitOrder):
        signed = intent.qty if intent.side == "Buy" else -intent.qty
        orders = state.orders.submitted(intent.id, signed)
        held = bid if intent.side == "Buy" else ask
        if held is not None and held.intent_id == intent.id and intent.price is not None:
            quote = Quote(intent.id, intent.price)
            bid, ask = (quote, ask) if intent.side == "Buy" else (bid, quote)
            return MakerState(bid, ask, state.last_quote_ns, orders), []
        cancel = CancelOrder(id=maker_cancel_id(intent.id), ts_event=intent.ts_event, ts_ingest=intent.ts_ingest,
                             origin_ts=intent.origin_ts, account=intent.account, strategy=intent.strategy,
                             venue=intent.venue, symbol=intent.symbol, intent_id=intent.id)
        return MakerState(bid, ask, state.last_quote_ns, orders), [cancel]
    if isinstance(intent, AmendOrder) and intent.price is not None:
        bid, ask = (Quote(q.intent_id, intent.price) if q is not None and q.intent_id == intent.intent_id else q
                    for q in (bid, ask))
    elif isinstance(intent, CancelOrder):
        bid, ask = (None if q is not None and q.intent_id == intent.intent_id else q for q in (bid, ask))
    if (bid, ask) == (state.bid, state.ask):
        return state, []
    return MakerState(bid, ask, state.last_quote_ns, state.orders), []
