"""The fill model and the queue rule it shares with the simulator: given a book, trades and
decisions, expect these order events (no broker, no store)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from schemas.events import (
    AmendOrder,
    BookSnapshotReceived,
    CancelOrder,
    Event,
    IntentApproved,
    OrderAcknowledged,
    OrderAmended,
    OrderCancelled,
    OrderFilled,
    OrderPartiallyFilled,
    OrderRejected,
    SubmitOrder,
    TradeReceived,
)
from services.backtest.venue import FillModel, UnsupportedIntent
from services.matching.queue import step_fill

T0 = 1_767_225_600_000_000_000
MS = 1_000_000


def book(ts: int, bids: dict[str, str], asks: dict[str, str]) -> BookSnapshotReceived:
    levels = lambda side: [(D(p), D(q)) for p, q in side.items()]  # noqa: E731
    return BookSnapshotReceived(id=f"b{ts}", ts_event=ts, ts_ingest=ts, symbol="BTCUSDT", depth=50, update_id=ts,
                                seq=0, bids=levels(bids), asks=levels(asks))


def trade(ts: int, side: str, price: str, qty: str) -> TradeReceived:
    return TradeReceived(id=f"t{ts}{price}", ts_event=ts, ts_ingest=ts, symbol="BTCUSDT", trade_id=f"{ts}",
                         side=side, price=D(price), qty=D(qty))  # type: ignore[arg-type]


def approve(intent: Event) -> IntentApproved:
    return IntentApproved(id=f"d-{intent.id}", ts_event=intent.ts_event, ts_ingest=0, intent=intent)  # type: ignore[arg-type]


def submit(id: str, side: str = "Buy", qty: str = "0.100", price: str | None = "64999.90", tif: str = "GTC",
           order_type: str = "Limit") -> SubmitOrder:
    return SubmitOrder(id=id, ts_event=T0, ts_ingest=0, account="a", strategy="s", symbol="BTCUSDT", side=side,
                       order_type=order_type, qty=D(qty), price=D(price) if price else None,  # type: ignore[arg-type]
                       time_in_force=tif)  # type: ignore[arg-type]


BOOK = book(T0, {"65000.00": "1.000", "64999.90": "0.500"}, {"65000.10": "0.300", "65000.20": "1.000"})


@pytest.fixture
def venue() -> FillModel:
    model = FillModel()
    model.on_step([BOOK])
    return model


def test_queue_is_eaten_by_trades_at_the_price_then_fills_partly() -> None:
    # 0.5 ahead of us; a 0.3 sell at our price only eats queue, a 0.4 one fills us 0.2 of 0.3.
    assert step_fill("Buy", D(100), D("0.3"), D("0.5"), [("Sell", D(100), D("0.3"))], D("0.2"), D(101)) == \
        (D(0), D("0.2"))
    assert step_fill("Buy", D(100), D("0.3"), D("0.2"), [("Sell", D(100), D("0.4"))], None, D(101)) == \
        (D("0.2"), D(0))


def test_no_fill_when_touched_only() -> None:
    # Our price is the best bid and a buyer trades on the other side: nothing reaches us.
    assert step_fill("Buy", D(100), D(1), D(2), [("Buy", D(101), D(5))], D(2), D(101)) == (D(0), D(2))


def test_a_trade_through_the_price_or_a_crossing_opposite_fills_the_rest() -> None:
    assert step_fill("Sell", D(100), D(1), D(9), [("Buy", D(101), D("0.1"))], D(9), D(99)) == (D(1), D(0))
    assert step_fill("Buy", D(100), D(1), D(9), [], D(9), D(100)) == (D(1), D(9))


def test_the_level_shrinking_without_trades_moves_us_up() -> None:
    assert step_fill("Buy", D(100), D(1), D(5), [], D(2), D(101)) == (D(0), D(2))


def test_market_order_walks_the_book_takes_liquidity_and_pays_taker_fees(venue: FillModel) -> None:
    events = venue.on_decision(approve(submit("m1", qty="0.500", price=None, order_type="Market", tif="IOC")))
    assert [type(e) for e in events] == [OrderAcknowledged, OrderPartiallyFilled, OrderFilled]
    fills = events[1:]
    assert [(f.fill_price, f.fill_qty) for f in fills] == [(D("65000.10"), D("0.300")), (D("65000.20"), D("0.200"))]
    assert fills[0].fee == D("65000.10") * D("0.300") * D("0.00055") and not fills[0].is_maker
    assert venue.books["BTCUSDT"].asks == {D("65000.20"): D("0.800")}  # what we took is gone


def test_ioc_rest_is_cancelled_and_post_only_that_crosses_never_rests(venue: FillModel) -> None:
    ioc = venue.on_decision(approve(submit("i1", qty="1.000", price="65000.10", tif="IOC")))
    assert [type(e) for e in ioc] == [OrderAcknowledged, OrderPartiallyFilled, OrderCancelled]
    assert ioc[-1].reason == "EC_NoImmediateQtyToFill" and ioc[-1].cum_qty == D("0.300")
    [cancel] = venue.on_decision(approve(submit("p1", price="65000.20", tif="PostOnly")))
    assert isinstance(cancel, OrderCancelled) and cancel.reason == "EC_PostOnlyWillTakeLiquidity"


def test_resting_order_fills_by_queue_position_over_steps(venue: FillModel) -> None:
    [ack] = venue.on_decision(approve(submit("r1", qty="0.100", price="64999.90")))  # 0.500 ahead of us
    assert isinstance(ack, OrderAcknowledged)
    level = {"65000.00": "1.000", "64999.90": "0.500"}
    first = [book(T0 + MS, level, {"65000.10": "0.300"}), trade(T0 + MS, "Sell", "64999.90", "0.450")]
    assert venue.on_step(first) == []
    [partial] = venue.on_step([trade(T0 + 2 * MS, "Sell", "64999.90", "0.080")])
    assert isinstance(partial, OrderPartiallyFilled) and partial.fill_qty == D("0.030") and partial.is_maker
    assert partial.fee == D("64999.90") * D("0.030") * D("0.0002")
    [fill] = venue.on_step([trade(T0 + 3 * MS, "Sell", "64999.80", "0.010")])  # through our price
    assert isinstance(fill, OrderFilled) and fill.fill_qty == D("0.070") and fill.cum_qty == D("0.100")


def test_cancel_and_amend_of_a_resting_order(venue: FillModel) -> None:
    venue.on_decision(approve(submit("r1", price="64999.80")))
    amend = AmendOrder(id="am1", ts_event=T0, ts_ingest=0, account="a", strategy="s", symbol="BTCUSDT",
                       intent_id="r1", price=D("64999.90"))
    [amended] = venue.on_decision(approve(amend))
    assert isinstance(amended, OrderAmended) and venue.orders["r1"].queue_ahead == D("0.500")
    cancel = CancelOrder(id="c1", ts_event=T0, ts_ingest=0, account="a", strategy="s", symbol="BTCUSDT",
                         intent_id="r1")
    [cancelled] = venue.on_decision(approve(cancel))
    assert isinstance(cancelled, OrderCancelled) and cancelled.reason == "CancelByUser"
    assert venue.on_decision(approve(cancel)) == []  # gone: the venue answers 110001, nothing is reported


def test_refusals_carry_the_venue_codes(venue: FillModel) -> None:
    [bad_step] = venue.on_decision(approve(submit("q1", qty="0.0005")))
    assert isinstance(bad_step, OrderRejected) and bad_step.ret_code == 10001
    [small] = venue.on_decision(approve(submit("q2", qty="0.001", price="1000.00")))
    assert isinstance(small, OrderRejected) and small.ret_code == 110094


def test_latency_delays_arrival_to_a_later_book() -> None:
    venue = FillModel(latency_ns=10 * MS)
    venue.on_step([BOOK])
    assert venue.on_decision(approve(submit("m1", qty="0.100", price=None, order_type="Market", tif="IOC"))) == []
    assert venue.on_step([book(T0 + 5 * MS, {"65000.00": "1.000"}, {"65000.50": "1.000"})]) == []
    events = venue.on_step([book(T0 + 20 * MS, {"65000.00": "1.000"}, {"65001.00": "1.000"})])
    fill = next(e for e in events if isinstance(e, OrderFilled))
    assert fill.fill_price == D("65000.50")  # the book that stood when it arrived, not the decision's


def test_an_intent_type_the_model_does_not_know_stops_the_run(venue: FillModel) -> None:
    class Unknown(Event, frozen=True, kw_only=True, tag="test.unknown"):
        account: str = "a"

    with pytest.raises(UnsupportedIntent, match="Unknown"):
        venue.on_decision(approve(Unknown(id="u1", ts_event=T0, ts_ingest=0)))


def test_funding_where_recorded_at_each_interval() -> None:
    from schemas.events import FundingSettled, TickerUpdated

    venue = FillModel(funding_interval_ns=100 * MS)
    venue.on_step([BOOK])
    venue.on_decision(approve(submit("m1", qty="0.300", price=None, order_type="Market", tif="IOC")))  # long 0.3
    ticker = TickerUpdated(id="k1", ts_event=T0 + 50 * MS, ts_ingest=0, symbol="BTCUSDT", funding_rate=D("0.0001"))
    assert venue.on_step([ticker]) == []  # before the settlement time
    later = book(T0 + 100 * MS, {"65000.00": "1.000"}, {"65000.30": "1.000"})
    [funding] = venue.on_step([later])
    assert isinstance(funding, FundingSettled) and funding.position_qty == D("0.300")
    assert funding.mark_price == D("65000.10")  # the mid on the tick (65000.15 floored)
    assert funding.amount == D("65000.10") * D("0.300") * D("0.0001")  # a long pays a positive rate
