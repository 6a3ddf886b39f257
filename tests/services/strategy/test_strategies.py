"""Strategies as pure functions: given events, expect intents; no broker, no clock."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from schemas.events import (
    BookDeltaReceived,
    CancelOrder,
    OrderAmendRejected,
    OrderCancelled,
    OrderFilled,
    OrderPartiallyFilled,
    SubmitOrder,
    TradeReceived,
)
from services.domain.position import Position
from services.strategy import core, ema, maker
from services.strategy.orders import OwnOrders

D = Decimal
EMA = ema.EmaParams(account="acc", fast=3, slow=6, qty=D("0.5"))
MAKER = maker.MakerParams(account="acc", tick_size=D("0.1"), qty=D("0.01"), min_requote_ns=0, amend=False)
AMENDING = msgspec.structs.replace(MAKER, amend=True)


def trade(n: int, price: str, symbol: str = "BTCUSDT") -> TradeReceived:
    return TradeReceived(id=f"t{n}", ts_event=n, ts_ingest=n, symbol=symbol, trade_id=str(n), side="Buy",
                         price=D(price), qty=D("1"))


def book(n: int, bid: str, bid_size: str, ask: str, ask_size: str) -> BookDeltaReceived:
    return BookDeltaReceived(id=f"b{n}", ts_event=n * 10**9, ts_ingest=n, symbol="BTCUSDT", depth=50,
                             update_id=n, seq=n, bids=[], asks=[], best_bid=(D(bid), D(bid_size)),
                             best_ask=(D(ask), D(ask_size)))


def filled(intent: SubmitOrder, qty: Decimal | None = None) -> OrderFilled:
    return OrderFilled(id=f"f-{intent.id}", ts_event=1, ts_ingest=1, account=intent.account, symbol=intent.symbol,
                       intent_id=intent.id, order_link_id="x", exec_id=f"x-{intent.id}", side=intent.side,
                       fill_qty=qty or intent.qty, fill_price=D("100"), fee=D("0"), is_maker=False,
                       cum_qty=qty or intent.qty)


def test_ema_crosses_place_target_orders_once() -> None:
    state, intents = ema.EmaState(), []
    prices = ["100"] * 6 + ["101", "102", "103"] + ["99", "97", "95"]
    for n, price in enumerate(prices):
        state, out = ema.on_trade(state, trade(n, price), EMA)
        intents += out
    assert [(i.side, i.qty) for i in intents] == [("Buy", D("0.5")), ("Sell", D("1.0"))]
    assert all(i.order_type == "Market" and i.strategy == "ema" for i in intents)
    assert state.signal == -1 and state.orders.expected_position() == D("-0.5")


def test_ema_accounts_for_working_and_filled_orders() -> None:
    state = ema.EmaState()
    for n, price in enumerate(["100"] * 6 + ["105"]):
        state, out = ema.on_trade(state, trade(n, price), EMA)
    [buy] = out
    part = OrderPartiallyFilled(id="p1", ts_event=1, ts_ingest=1, account="acc", symbol="BTCUSDT", intent_id=buy.id,
                                order_link_id="x", exec_id="x1", side="Buy", fill_qty=D("0.2"), fill_price=D("105"),
                                fee=D("0"), is_maker=False, cum_qty=D("0.2"), leaves_qty=D("0.3"))
    orders = state.orders.apply(part)
    assert orders.position == D("0.2") and orders.expected_position() == D("0.5")  # 0.3 still working
    orders = orders.apply(OrderCancelled(id="c1", ts_event=2, ts_ingest=2, account="acc", symbol="BTCUSDT",
                                         intent_id=buy.id, order_link_id="x"))
    assert orders.expected_position() == D("0.2")  # the IOC's rest was cancelled


def test_ema_is_deterministic() -> None:
    def run() -> list[str]:
        state, ids = ema.EmaState(), []
        for n in range(200):
            state, out = ema.on_trade(state, trade(n, str(100 + (n * 7919 % 13) - 6)), EMA)
            ids += [i.id for i in out]
        return ids

    assert run() == run() and run()


def test_maker_quotes_both_sides_skewed_by_imbalance() -> None:
    _, intents = maker.on_book(maker.MakerState(), book(1, "100.0", "9", "100.2", "1"), MAKER)
    bid, ask = intents
    assert isinstance(bid, SubmitOrder) and bid.side == "Buy" and bid.time_in_force == "PostOnly"
    # mid 100.1, imbalance +0.8 → fair 100.26: bid floor(100.06) = 100.0, ask ceil(100.46) = 100.5
    assert (bid.price, ask.price) == (D("100.0"), D("100.5"))
    assert bid.price < D("100.2") and ask.price > D("100.0")


def test_maker_requotes_by_amending_and_marks_a_refused_amend_stale() -> None:
    state, first = maker.on_book(maker.MakerState(), book(1, "100.0", "1", "100.2", "1"), AMENDING)
    state, moved = maker.on_book(state, book(3, "101.0", "1", "101.2", "1"), AMENDING)
    assert [(type(i).__name__, i.intent_id, i.price) for i in moved] == [
        ("AmendOrder", first[0].id, D("100.9")), ("AmendOrder", first[1].id, D("101.3"))]
    assert state.bid == maker.Quote(first[0].id, D("100.9")) and set(state.orders.working) == {i.id for i in first}
    refused = OrderAmendRejected(id="r", ts_event=4, ts_ingest=4, account="acc", symbol="BTCUSDT",
                                 intent_id=first[0].id, order_link_id="l", ret_code=10001, reason="x")
    state = maker.on_order_event(state, refused)
    assert state.bid is not None and state.bid.stale
    state, again = maker.on_book(state, book(5, "101.0", "1", "101.2", "1"), AMENDING)  # same prices
    assert [(type(i).__name__, i.intent_id) for i in again] == [("AmendOrder", first[0].id)]


def test_maker_requotes_by_cancel_then_submit_and_forgets_filled_quotes() -> None:
    state, first = maker.on_book(maker.MakerState(), book(1, "100.0", "1", "100.2", "1"), MAKER)
    state, same = maker.on_book(state, book(2, "100.0", "1", "100.2", "1"), MAKER)
    assert same == []
    state, moved = maker.on_book(state, book(3, "101.0", "1", "101.2", "1"), MAKER)
    kinds = [type(i).__name__ for i in moved]
    assert kinds == ["CancelOrder", "SubmitOrder", "CancelOrder", "SubmitOrder"]
    cancelled = [i.intent_id for i in moved if isinstance(i, CancelOrder)]
    assert cancelled == [first[0].id, first[1].id]
    new_bid = moved[1]
    state = maker.on_order_event(state, filled(new_bid))
    assert state.bid is None and state.orders.position == D("0.01")
    state = maker.on_order_event(state, OrderCancelled(id="c", ts_event=1, ts_ingest=1, account="acc",
                                                       symbol="BTCUSDT", intent_id=first[0].id, order_link_id="l"))
    assert first[0].id not in state.orders.working


def test_maker_stops_quoting_the_side_that_would_pass_max_position() -> None:
    full = maker.MakerState(orders=OwnOrders(held=Position(qty=D("0.05"))))
    _, intents = maker.on_book(full, book(1, "100.0", "1", "100.2", "1"), MAKER)
    assert [i.side for i in intents] == ["Sell"]


def test_service_core_routes_events_and_emits_on_orders_intents() -> None:
    params = core.StrategyParams(ema=EMA, makers={"BTCUSDT": MAKER})
    state = core.initial_state()
    state, emits = core.step(state, book(1, "100.0", "1", "100.2", "1"), params)
    assert [e.topic for e in emits] == ["orders.intents"] * 2 and all(e.key == "BTCUSDT" for e in emits)
    state, emits = core.step(state, trade(1, "100", symbol="ETHUSDT"), params)
    assert emits == [] and "ETHUSDT" in state.symbols
    no_maker = msgspec.structs.replace(book(2, "1", "1", "2", "1"), symbol="SOLUSDT")
    unchanged, emits = core.step(state, no_maker, params)
    assert unchanged is state and emits == []
