"""The matching engine's amend: the private `order` report it pushes, a crossing amend (PostOnly
cancelled, GTC taking), and the queue place a new price or a larger qty loses."""

from __future__ import annotations

from decimal import Decimal

from services.exchange_sim.matching import MatchingEngine
from tests.services.exchange_sim.test_matching import KEY, engine, executions, order  # noqa: F401 (fixture)


def orders(engine: MatchingEngine) -> list[dict]:  # noqa: F811
    return [data for _, topic, data in engine.reports if topic == "order"]


def test_an_amend_is_reported_on_the_order_stream(engine: MatchingEngine) -> None:  # noqa: F811
    engine.place(KEY, {**order(orderLinkId="m1"), "price": "64990.0"}, now_ms=1)
    engine.markets["BTCUSDT"].bids[649900] = 500  # 0.5 BTC rests at our price, ahead of us
    placed = engine.accounts[KEY].orders[engine.accounts[KEY].by_link_id["m1"]]
    placed.queue_ahead = 500
    assert engine.amend(KEY, {"symbol": "BTCUSDT", "orderLinkId": "m1", "qty": "0.050"}, now_ms=2)[0] == 0
    assert placed.queue_ahead == 500  # a smaller qty keeps its place
    code, _, result = engine.amend(KEY, {"symbol": "BTCUSDT", "orderLinkId": "m1", "price": "64980.0"}, now_ms=3)
    assert code == 0 and result["orderLinkId"] == "m1"
    report = orders(engine)[-1]
    assert (report["orderStatus"], report["price"], report["qty"], report["updatedTime"]) == (
        "New", "64980.00", "0.050", "3")
    assert placed.queue_ahead == 0  # a new price: the back of the (empty) queue there


def test_a_crossing_amend_takes_unless_post_only(engine: MatchingEngine) -> None:  # noqa: F811
    engine.place(KEY, order(orderLinkId="po", timeInForce="PostOnly"), now_ms=1)
    engine.place(KEY, order(orderLinkId="gtc"), now_ms=1)
    assert engine.amend(KEY, {"symbol": "BTCUSDT", "orderLinkId": "po", "price": "65000.1"}, now_ms=2)[0] == 0
    assert (orders(engine)[-1]["orderStatus"], orders(engine)[-1]["rejectReason"]) == (
        "Cancelled", "EC_PostOnlyWillTakeLiquidity")
    assert engine.amend(KEY, {"symbol": "BTCUSDT", "orderLinkId": "gtc", "price": "65000.1"}, now_ms=3)[0] == 0
    [fill] = executions(engine)
    assert (fill["orderLinkId"], fill["execPrice"], fill["isMaker"]) == ("gtc", "65000.10", False)
    assert Decimal(fill["execQty"]) == Decimal("0.100")
    assert engine.amend(KEY, {"symbol": "BTCUSDT", "orderLinkId": "gtc", "price": "64000.0"}, now_ms=4)[0] == 110001
