"""Order operations beyond place and cancel, asked by the stock client pybit over real sockets:
amend, batch place / amend / cancel with per-item codes, cancel-all, with Bybit's codes, and the
venue's request count per route (/sim/stats)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pybit.exceptions
import pybit.unified_trading
import pytest

from services.exchange_sim.server import SimConfig, Simulator

pytestmark = pytest.mark.integration

KEY, SECRET = "ops", "ops-secret"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(SimConfig(port=0, rest_port=0, rate=20, symbols=("BTCUSDT", "ETHUSDT"), seed=5,
                                    api_keys=(f"{KEY}:{SECRET}",)))
    await simulator.start()
    simulator.stalled_until = float("inf")  # a still market: prices asked below stay where they are
    yield simulator
    await simulator.stop()


def _session(sim: Simulator) -> pybit.unified_trading.HTTP:
    http = pybit.unified_trading.HTTP(testnet=False, api_key=KEY, api_secret=SECRET, max_retries=1)
    http.endpoint = f"http://127.0.0.1:{sim.rest_port}"
    return http


def _refused(call: Any, code: int, **kwargs: Any) -> str:
    """The message of a call pybit raises for with Bybit's `code`."""
    with pytest.raises(pybit.exceptions.InvalidRequestError) as caught:
        call(**kwargs)
    assert caught.value.status_code == code, caught.value.message
    return str(caught.value.message)


async def test_amend_batches_and_cancel_all_with_pybit(sim: Simulator) -> None:
    def calls() -> dict[str, Any]:
        http = _session(sim)
        out: dict[str, Any] = {}
        base = dict(category="linear", symbol="BTCUSDT")
        http.place_order(**base, side="Buy", orderType="Limit", qty="0.010", price="50000.0", orderLinkId="a")
        out["amend"] = http.amend_order(**base, orderLinkId="a", price="50001.0", qty="0.020")
        out["unchanged"] = _refused(http.amend_order, 10001, **base, orderLinkId="a", price="50001.0")
        _refused(http.amend_order, 10001, **base, orderLinkId="a", price="50001.05")  # off the tick grid
        _refused(http.amend_order, 110001, **base, orderLinkId="nope", price="50002.0")
        http.place_order(**base, side="Buy", orderType="Market", qty="0.010", orderLinkId="filled")
        _refused(http.amend_order, 110001, **base, orderLinkId="filled", qty="0.020")
        http.place_order(**base, side="Buy", orderType="Limit", qty="0.010", price="50000.0",
                         timeInForce="PostOnly", orderLinkId="po")
        ask = http.get_orderbook(**base, limit=1)["result"]["a"][0][0]
        out["po_cross"] = http.amend_order(**base, orderLinkId="po", price=ask)  # accepted, then cancelled
        out["batch"] = http.place_batch_order(category="linear", request=[
            {"symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit", "qty": "0.010", "price": "49000.0",
             "orderLinkId": "b1"},
            {"symbol": "ETHUSDT", "side": "Sell", "orderType": "Limit", "qty": "0.10", "price": "9000.00",
             "orderLinkId": "b2"},
            {"symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit", "qty": "0.010", "price": "49000.0",
             "orderLinkId": "b1"}])  # duplicate orderLinkId: refused alone
        out["amend_batch"] = http.amend_batch_order(category="linear", request=[
            {"symbol": "BTCUSDT", "orderLinkId": "b1", "price": "49010.0"},
            {"symbol": "BTCUSDT", "orderLinkId": "filled", "price": "49010.0"}])
        out["cancel_batch"] = http.cancel_batch_order(category="linear", request=[
            {"symbol": "BTCUSDT", "orderLinkId": "b1"}, {"symbol": "BTCUSDT", "orderLinkId": "b1"}])
        out["no_scope"] = _refused(http.cancel_all_orders, 10001, category="linear")
        out["cancel_all"] = http.cancel_all_orders(category="linear", symbol="BTCUSDT")
        out["history"] = {o["orderLinkId"]: o for o in http.get_order_history(category="linear", limit=50)
                          ["result"]["list"]}
        return out

    out = await asyncio.to_thread(calls)
    history = out["history"]
    assert out["amend"]["result"]["orderLinkId"] == "a"
    assert "remains unchanged" in out["unchanged"]
    assert (history["po"]["orderStatus"], history["po"]["rejectReason"]) == ("Cancelled",
                                                                            "EC_PostOnlyWillTakeLiquidity")
    assert [s["code"] for s in out["batch"]["retExtInfo"]["list"]] == [0, 0, 110072]
    assert out["batch"]["result"]["list"][2]["orderId"] == ""
    assert [s["code"] for s in out["amend_batch"]["retExtInfo"]["list"]] == [0, 110001]
    assert [s["code"] for s in out["cancel_batch"]["retExtInfo"]["list"]] == [0, 110001]
    assert "symbol, baseCoin or settleCoin" in out["no_scope"]
    # cancel-all on BTCUSDT took the one BTC order still open ("a"), not ETH's "b2"
    assert [o["orderLinkId"] for o in out["cancel_all"]["result"]["list"]] == ["a"]
    assert (history["a"]["price"], history["a"]["qty"], history["a"]["cancelType"]) == ("50001.00", "0.020",
                                                                                      "CancelByUser")
    assert history["b1"]["price"] == "49010.00" and history["b2"]["orderStatus"] == "New"
    async with httpx.AsyncClient() as client:
        counted = (await client.get(f"http://127.0.0.1:{sim.port}/sim/stats")).json()["requests"]
    assert {path: counted[path] for path in ("/v5/order/amend", "/v5/order/amend-batch", "/v5/order/cancel-batch",
                                             "/v5/order/cancel-all", "/v5/order/create-batch")} == {
        "/v5/order/amend": 6, "/v5/order/amend-batch": 1, "/v5/order/cancel-batch": 1, "/v5/order/cancel-all": 2,
        "/v5/order/create-batch": 1}
