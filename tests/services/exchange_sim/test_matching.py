"""The simulator's matching engine: given requests, expect fills, codes and exact money."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.exchange_sim.market import DEFAULT_INSTRUMENTS, SymbolMarket
from services.exchange_sim.matching import MAKER_FEE, TAKER_FEE, MatchingEngine

KEY = "key-1"


@pytest.fixture
def engine() -> MatchingEngine:
    market = SymbolMarket(DEFAULT_INSTRUMENTS["BTCUSDT"], seed=1, levels=20)
    market.bids = {650000 - i: 1000 for i in range(20)}  # 65000.0 down, 1.000 BTC a level
    market.asks = {650001 + i: 1000 for i in range(20)}  # 65000.1 up
    return MatchingEngine({"BTCUSDT": market}, {KEY: Decimal("100000")})


def order(**fields: object) -> dict[str, object]:
    return {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit", "qty": "0.100",
            "price": "64000.0", "timeInForce": "GTC", **fields}


def executions(engine: MatchingEngine) -> list[dict]:
    return [data for _, topic, data in engine.reports if topic == "execution"]


def test_resting_limit_then_maker_fill_when_the_market_trades_through(engine: MatchingEngine) -> None:
    code, _, result = engine.place(KEY, order(orderLinkId="a1"), now_ms=1)
    assert code == 0 and result["orderLinkId"] == "a1"
    assert executions(engine) == []
    market = engine.markets["BTCUSDT"]
    market.bids = {639999: 5}
    market.asks = {639990: 5}  # the market fell through 64000.0
    engine.on_market_step("BTCUSDT", now_ms=2)
    [fill] = executions(engine)
    assert fill["isMaker"] is True and fill["execPrice"] == "64000.00" and fill["execQty"] == "0.100"
    assert Decimal(fill["execFee"]) == Decimal("6400.000") * MAKER_FEE
    [view] = engine.open_orders(KEY, {"orderLinkId": "a1"})[2]["list"]
    assert view["orderStatus"] == "Filled" and view["leavesQty"] == "0.000"


def test_market_order_sweeps_levels_and_takes_public_liquidity(engine: MatchingEngine) -> None:
    code, _, _ = engine.place(KEY, order(orderType="Market", qty="2.500", price=None), now_ms=1)
    assert code == 0
    fills = executions(engine)
    assert [f["execPrice"] for f in fills] == ["65000.10", "65000.20", "65000.30"]
    assert [f["execQty"] for f in fills] == ["1.000", "1.000", "0.500"]
    assert all(f["isMaker"] is False for f in fills)
    market = engine.markets["BTCUSDT"]
    assert 650001 not in market.asks and market.asks[650003] == 500  # our trade moved the public book
    value = Decimal("65000.1") + Decimal("65000.2") + Decimal("65000.3") / 2
    account = engine.accounts[KEY]
    assert account.fees_paid == value * TAKER_FEE
    assert account.balance == Decimal("100000") - value * TAKER_FEE


def test_round_trip_pnl_is_exact(engine: MatchingEngine) -> None:
    engine.place(KEY, order(orderType="Market", qty="1.000", price=None), now_ms=1)  # buy 1 @ 65000.1
    engine.place(KEY, order(side="Sell", orderType="Market", qty="1.000", price=None), now_ms=2)  # sell @ 65000.0
    account = engine.accounts[KEY]
    position = account.positions["BTCUSDT"]
    assert position.size == 0 and position.realized == Decimal("-0.1")
    fees = (Decimal("65000.1") + Decimal("65000.0")) * TAKER_FEE
    assert account.balance == Decimal("100000") - Decimal("0.1") - fees
    [view] = engine.positions(KEY, {"symbol": "BTCUSDT"})[2]["list"]
    assert view["side"] == "" and view["size"] == "0.000" and view["cumRealisedPnl"] == "-0.1"


def test_time_in_force_rules(engine: MatchingEngine) -> None:
    engine.place(KEY, order(price="65000.2", qty="1.500", timeInForce="IOC", orderLinkId="ioc"), now_ms=1)
    [ioc] = engine.open_orders(KEY, {"orderLinkId": "ioc"})[2]["list"]
    assert ioc["cumExecQty"] == "1.500" and ioc["orderStatus"] == "Filled"
    engine.place(KEY, order(price="65000.3", qty="50.000", timeInForce="FOK", orderLinkId="fok"), now_ms=2)
    [fok] = engine.open_orders(KEY, {"orderLinkId": "fok"})[2]["list"]
    assert fok["orderStatus"] == "Cancelled" and fok["cumExecQty"] == "0.000"
    assert (fok["cancelType"], fok["rejectReason"]) == ("UNKNOWN", "EC_CancelForNoFullFill")
    engine.place(KEY, order(price="65100.0", timeInForce="PostOnly", orderLinkId="po"), now_ms=3)
    [post] = engine.open_orders(KEY, {"orderLinkId": "po"})[2]["list"]
    # Bybit's row for this case (docs/v5/order/order-list.mdx): Cancelled, UNKNOWN, the reason in rejectReason
    assert (post["orderStatus"], post["cancelType"], post["rejectReason"]) == (
        "Cancelled", "UNKNOWN", "EC_PostOnlyWillTakeLiquidity")
    # 0.5 left at 65000.2, 1.0 at 65000.3 and 65000.4: an IOC for 5 fills 2.5 and cancels the rest
    engine.place(KEY, order(price="65000.4", qty="5.000", timeInForce="IOC", orderLinkId="part"), now_ms=4)
    [part] = engine.open_orders(KEY, {"orderLinkId": "part"})[2]["list"]
    assert (part["orderStatus"], part["cancelType"], part["rejectReason"]) == (
        "Cancelled", "UNKNOWN", "EC_NoImmediateQtyToFill")
    assert part["cumExecQty"] == "2.500" and part["leavesQty"] == "0.000"


def test_cancel_by_user_and_leverage(engine: MatchingEngine) -> None:
    engine.place(KEY, order(orderLinkId="c1"), now_ms=1)
    assert engine.cancel(KEY, {"orderLinkId": "c1"}, now_ms=2)[0] == 0
    [view] = engine.order_history(KEY, {"orderLinkId": "c1"})[2]["list"]
    assert (view["orderStatus"], view["cancelType"], view["rejectReason"]) == ("Cancelled", "CancelByUser",
                                                                               "EC_NoError")
    lever = {"symbol": "BTCUSDT", "buyLeverage": "5", "sellLeverage": "5"}
    assert engine.set_leverage(KEY, lever, now_ms=3)[0] == 0
    assert engine.set_leverage(KEY, lever, now_ms=4)[0] == 110043  # not modified
    assert engine.set_leverage(KEY, {**lever, "sellLeverage": "6"}, now_ms=5)[0] == 10001
    assert engine.set_leverage(KEY, {**lever, "buyLeverage": "101", "sellLeverage": "101"}, now_ms=5)[0] == 10001
    [position] = engine.positions(KEY, {"symbol": "BTCUSDT"})[2]["list"]
    assert position["leverage"] == "5"


def test_codes(engine: MatchingEngine) -> None:
    assert engine.place(KEY, order(orderLinkId="dup"), now_ms=1)[0] == 0
    assert engine.place(KEY, order(orderLinkId="dup"), now_ms=2)[0] == 110072
    assert engine.place(KEY, order(qty="0.0005"), now_ms=3)[0] == 10001
    assert engine.place(KEY, order(price="64000.05"), now_ms=3)[0] == 10001
    assert engine.place(KEY, order(symbol="DOGEUSDT"), now_ms=3)[0] == 10001
    assert engine.place(KEY, order(orderLinkId="x" * 37), now_ms=3)[0] == 10001
    assert engine.place(KEY, order(qty="0.001", price="100.0"), now_ms=3)[0] == 110094
    assert engine.place(KEY, order(side="Sell", reduceOnly=True), now_ms=3)[0] == 110017
    assert engine.cancel(KEY, {"orderLinkId": "nope"}, now_ms=4)[0] == 110001
    assert engine.cancel(KEY, {"orderLinkId": "dup"}, now_ms=4)[0] == 0
    assert engine.cancel(KEY, {"orderLinkId": "dup"}, now_ms=5)[0] == 110001


def test_reduce_only_caps_at_the_position(engine: MatchingEngine) -> None:
    engine.place(KEY, order(orderType="Market", qty="0.300", price=None), now_ms=1)
    code, _, _ = engine.place(KEY, order(side="Sell", orderType="Market", qty="1.000", price=None,
                                         reduceOnly=True), now_ms=2)
    assert code == 0
    assert engine.accounts[KEY].positions["BTCUSDT"].size == 0


def test_flip_keeps_the_remainder_at_the_fill_price(engine: MatchingEngine) -> None:
    engine.place(KEY, order(orderType="Market", qty="0.500", price=None), now_ms=1)  # long 0.5 @ 65000.1
    engine.place(KEY, order(side="Sell", orderType="Market", qty="1.500", price=None), now_ms=2)
    position = engine.accounts[KEY].positions["BTCUSDT"]
    assert position.size == -1000
    [view] = engine.positions(KEY, {"symbol": "BTCUSDT"})[2]["list"]
    assert view["side"] == "Sell" and view["size"] == "1.000"
    assert position.realized == (Decimal("65000.0") - Decimal("65000.1")) / 2
