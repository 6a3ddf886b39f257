"""The simulator's private side over real sockets: signed REST (checked by pybit's own client and by
hand-signed requests), rate limits, batch orders, faults, and the authenticated private WebSocket."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import orjson
import pybit.exceptions
import pybit.unified_trading
import pytest
import websockets

from services.exchange_sim.server import SimConfig, Simulator
from services.venues.bybit.signing import rest_signature, ws_auth_signature

KEY, SECRET = "k1", "s1-secret"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(SimConfig(port=0, rest_port=0, rate=20, symbols=("BTCUSDT",), seed=4,
                                    api_keys=(f"{KEY}:{SECRET}",)))
    await simulator.start()
    yield simulator
    await simulator.stop()


async def signed(sim: Simulator, method: str, path: str, body: dict | None = None, query: str = "",
                 key: str = KEY, secret: str = SECRET, timestamp: int | None = None,
                 client: httpx.AsyncClient | None = None) -> httpx.Response:
    ts = str(timestamp if timestamp is not None else int(time.time() * 1000))
    payload = orjson.dumps(body).decode() if body is not None else query
    headers = {"X-BAPI-API-KEY": key, "X-BAPI-TIMESTAMP": ts, "X-BAPI-RECV-WINDOW": "5000",
               "X-BAPI-SIGN": rest_signature(secret, ts, key, "5000", payload), "Content-Type": "application/json"}
    url = f"http://127.0.0.1:{sim.rest_port}{path}" + (f"?{query}" if query else "")
    content = payload if body is not None else None
    if client is not None:  # a new client costs tens of ms: rate-limit tests need their burst in one second
        return await client.request(method, url, content=content, headers=headers)
    async with httpx.AsyncClient(timeout=2) as own:
        return await own.request(method, url, content=content, headers=headers)


def limit_order(link_id: str, **fields: object) -> dict:
    return {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit", "qty": "0.010",
            "price": "60000.0", "timeInForce": "GTC", "orderLinkId": link_id, **fields}


async def test_pybit_places_queries_and_cancels(sim: Simulator) -> None:
    """pybit signs with its own JSON formatting; the simulator verifies the exact bytes it got."""
    def session_calls() -> tuple[dict, dict, dict, dict]:
        session = pybit.unified_trading.HTTP(testnet=False, api_key=KEY, api_secret=SECRET, max_retries=1)
        session.endpoint = f"http://127.0.0.1:{sim.rest_port}"
        placed = session.place_order(category="linear", symbol="BTCUSDT", side="Buy", orderType="Limit",
                                     qty="0.010", price="60000.0", orderLinkId="pybit-1")
        found = session.get_open_orders(category="linear", orderLinkId="pybit-1")
        cancelled = session.cancel_order(category="linear", symbol="BTCUSDT", orderLinkId="pybit-1")
        positions = session.get_positions(category="linear", symbol="BTCUSDT")
        with pytest.raises(pybit.exceptions.InvalidRequestError, match="110072"):
            session.place_order(category="linear", symbol="BTCUSDT", side="Buy", orderType="Limit",
                                qty="0.010", price="60000.0", orderLinkId="pybit-1")
        return placed, found, cancelled, positions

    placed, found, cancelled, positions = await asyncio.to_thread(session_calls)
    assert placed["retCode"] == 0 and placed["result"]["orderLinkId"] == "pybit-1"
    assert found["result"]["list"][0]["orderStatus"] == "New"
    assert cancelled["result"]["orderId"] == placed["result"]["orderId"]
    assert positions["result"]["list"][0]["size"] == "0.000"


async def test_auth_errors(sim: Simulator) -> None:
    assert (await signed(sim, "POST", "/v5/order/create", limit_order("a"), key="nope")).json()["retCode"] == 10003
    stale = await signed(sim, "POST", "/v5/order/create", limit_order("a"), timestamp=int(time.time() * 1000) - 9000)
    assert stale.json()["retCode"] == 10002 and "recv_window[5000]" in stale.json()["retMsg"]
    future = await signed(sim, "POST", "/v5/order/create", limit_order("a"), timestamp=int(time.time() * 1000) + 3000)
    assert future.json()["retCode"] == 10002
    bad = await signed(sim, "POST", "/v5/order/create", limit_order("a"), secret="wrong")
    assert bad.json()["retCode"] == 10004 and "origin_string" in bad.json()["retMsg"]
    query = await signed(sim, "GET", "/v5/order/realtime", query="category=linear&symbol=BTCUSDT")
    assert query.json()["retCode"] == 0 and query.json()["result"]["list"] == []


async def test_rate_limit_headers_and_10006(sim: Simulator) -> None:
    codes, statuses = [], []
    async with httpx.AsyncClient() as client:
        for i in range(12):
            response = await signed(sim, "POST", "/v5/order/create", limit_order(f"r{i}"), client=client)
            codes.append(response.json()["retCode"])
            statuses.append(int(response.headers["x-bapi-limit-status"]))
            assert response.headers["x-bapi-limit"] == "10"
    assert codes[:10] == [0] * 10 and codes[10:] == [10006, 10006]
    assert statuses[:10] == list(range(9, -1, -1))
    assert int(response.headers["x-bapi-limit-reset-timestamp"]) > int(time.time() * 1000) - 1000


async def test_batch_create_reports_each_item(sim: Simulator) -> None:
    body = {"category": "linear", "request": [
        {k: v for k, v in limit_order("b1").items() if k != "category"},
        {k: v for k, v in limit_order("b2", qty="0.0001").items() if k != "category"},
    ]}
    response = (await signed(sim, "POST", "/v5/order/create-batch", body)).json()
    assert response["retCode"] == 0
    assert [s["code"] for s in response["retExtInfo"]["list"]] == [0, 10001]
    assert response["result"]["list"][0]["orderId"] and response["result"]["list"][1]["orderId"] == ""


async def test_faults_5xx_dropped_ack_and_timeout(sim: Simulator) -> None:
    sim.inject("http5xx")
    assert (await signed(sim, "POST", "/v5/order/create", limit_order("f0"))).status_code == 502
    sim.inject("dropack")
    with pytest.raises(httpx.HTTPError):
        await signed(sim, "POST", "/v5/order/create", limit_order("f1"))
    found = await signed(sim, "GET", "/v5/order/realtime", query="category=linear&orderLinkId=f1")
    assert found.json()["result"]["list"][0]["orderLinkId"] == "f1"  # placed although the ack was lost
    sim.inject("timeout")
    with pytest.raises(httpx.TimeoutException):
        await signed(sim, "POST", "/v5/order/create", limit_order("f2"))
    sim.inject("ratelimit", count=2)
    assert (await signed(sim, "POST", "/v5/order/create", limit_order("f3"))).json()["retCode"] == 10006


async def test_private_websocket_auth_and_streams(sim: Simulator) -> None:
    async with websockets.connect(f"ws://127.0.0.1:{sim.port}/v5/private") as ws:
        await ws.send('{"op": "subscribe", "args": ["order"]}')
        assert orjson.loads(await ws.recv())["success"] is False  # not authenticated yet
        expires = int(time.time() * 1000) + 5000
        await ws.send(orjson.dumps({"op": "auth", "args": [KEY, expires, "0" * 64]}).decode())
        assert orjson.loads(await ws.recv())["ret_msg"] == "Invalid sign"
        await ws.send(orjson.dumps({"req_id": "a1", "op": "auth",
                                    "args": [KEY, expires, ws_auth_signature(SECRET, expires)]}).decode())
        auth = orjson.loads(await ws.recv())
        assert auth == {"req_id": "a1", "success": True, "ret_msg": "", "op": "auth", "conn_id": auth["conn_id"]}
        await ws.send('{"op": "subscribe", "args": ["order", "execution", "position", "wallet"]}')
        assert orjson.loads(await ws.recv())["success"] is True
        await ws.send('{"req_id": "p", "op": "ping"}')
        assert orjson.loads(await ws.recv())["op"] == "pong"
        placed = await signed(sim, "POST", "/v5/order/create",
                              limit_order("ws-1", orderType="Market", price=None, qty="0.020"))
        assert placed.json()["retCode"] == 0
        topics = []
        while len(topics) < 4 or "wallet" not in topics:
            message = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
            topics.append(message["topic"])
            if message["topic"] == "execution":
                assert message["data"][0]["orderLinkId"] == "ws-1" and message["data"][0]["isMaker"] is False
        assert {"order", "execution", "position", "wallet"} <= set(topics)
