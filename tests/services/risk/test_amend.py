"""Risk on amends and cancel-alls: an amend's new terms meet the rules of a new order, a halt lets
only a smaller amend through, a venue refusal restores the old terms."""

from __future__ import annotations

from decimal import Decimal

from schemas.events import (
    AmendOrder,
    CancelAllOrders,
    IntentRejected,
    OrderAmendRejected,
    OrderPartiallyFilled,
    TradingHalted,
)
from services.risk.core import OPERATOR_STRATEGY, RiskState, step
from tests.services.risk.test_core import PARAMS, S, decide, mid, submit

D = Decimal


def amend(n: int, intent_id: str = "i1", qty: str | None = None, price: str | None = None) -> AmendOrder:
    return AmendOrder(id=f"a{n}", ts_event=n * S, ts_ingest=n, account="acc", strategy="s", symbol="BTCUSDT",
                      intent_id=intent_id, qty=D(qty) if qty else None, price=D(price) if price else None)


def working(state: RiskState, intent_id: str = "i1") -> tuple[Decimal, Decimal | None]:
    order = state.accounts["acc"].working[intent_id]
    return order.qty, order.price


def test_amend_terms_meet_the_rules_of_a_new_order() -> None:
    state = mid(RiskState(accounts={}, mids={}), "50000.0")
    state, outcome = decide(state, submit(1, qty="0.5"))
    assert outcome == "approved"
    state, outcome = decide(state, amend(2, price="50010.0", qty="0.8"))
    assert outcome == "approved" and working(state) == (D("0.8"), D("50010.0"))
    assert decide(state, amend(3, price="52000.0"))[1] == "price_band"  # 4% off a 1% band
    assert decide(state, amend(4, qty="0.8005"))[1] == "qty_step"
    assert decide(state, amend(5, qty="2"))[1] == "max_order_qty"
    assert decide(state, amend(6, intent_id="nothing", price="50000.0"))[1] == "unknown_order"
    # a partial fill of 0.3: the position holds it, an amend to 0.3 leaves nothing to work
    fill = OrderPartiallyFilled(id="f", ts_event=7 * S, ts_ingest=7, account="acc", symbol="BTCUSDT", intent_id="i1",
                                order_link_id="h-i1", exec_id="x", side="Buy", fill_qty=D("0.3"),
                                fill_price=D("50010"), fee=D(0), is_maker=True, cum_qty=D("0.3"), leaves_qty=D("0.5"))
    state, _ = step(state, fill, PARAMS)
    assert decide(state, amend(8, qty="0.3"))[1] == "amend_below_filled"
    state, outcome = decide(state, amend(9, qty="1"))
    assert outcome == "approved" and working(state)[0] == D("0.7")  # 1 whole, 0.3 of it filled


def test_position_limit_on_an_amend_counts_the_filled_part_once() -> None:
    state = mid(RiskState(accounts={}, mids={}), "50000.0")
    state, _ = decide(state, submit(1, qty="1"))
    fill = OrderPartiallyFilled(id="f", ts_event=2 * S, ts_ingest=2, account="acc", symbol="BTCUSDT", intent_id="i1",
                                order_link_id="h-i1", exec_id="x", side="Buy", fill_qty=D("0.6"),
                                fill_price=D("50000"), fee=D(0), is_maker=True, cum_qty=D("0.6"), leaves_qty=D("0.4"))
    state, _ = step(state, fill, PARAMS)
    state, _ = decide(state, submit(3, qty="0.9"))  # 0.6 held + 0.4 + 0.9 working = 1.9 expected
    # 1.9 * 50010 = 95019 within 100000; counting the filled 0.6 twice would make it 2.5 and refuse it
    assert decide(state, amend(4, price="50010.0"))[1] == "approved"
    # i3 to 1: 2.0 * 50100 = 100200 > 100000
    assert decide(state, amend(5, intent_id="i3", qty="1", price="50100.0"))[1] == "max_position"
    assert decide(state, amend(6, intent_id="i3", qty="1"))[1] == "approved"  # 2.0 * 50000, at the limit


def test_halt_lets_only_a_smaller_amend_through_and_a_refusal_restores() -> None:
    state = mid(RiskState(accounts={}, mids={}), "50000.0")
    state, _ = decide(state, submit(1, qty="0.5"))
    refused = OrderAmendRejected(id="r", ts_event=3 * S, ts_ingest=3, account="acc", symbol="BTCUSDT",
                                 intent_id="i1", order_link_id="h-i1", ret_code=10001, reason="unchanged")
    state, _ = decide(state, amend(2, qty="0.7", price="49990.0"))
    state, _ = step(state, refused, PARAMS)
    assert working(state) == (D("0.5"), D("50000.0"))
    halt = TradingHalted(id="h", ts_event=4 * S, ts_ingest=4, account="acc", reason="ops", actor="ops")
    state, _ = step(state, halt, PARAMS)
    assert decide(state, amend(5, price="49990.0"))[1] == "halted"
    assert decide(state, amend(6, qty="0.7"))[1] == "halted"
    assert decide(state, amend(7, qty="0.2"))[1] == "approved"
    cancel_all = CancelAllOrders(id="x", ts_event=8 * S, ts_ingest=8, account="acc", strategy=OPERATOR_STRATEGY,
                                 symbol="BTCUSDT")
    state, [emit] = step(state, cancel_all, PARAMS)
    assert not isinstance(emit.event, IntentRejected) and emit.event.intent == cancel_all
