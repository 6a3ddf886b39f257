"""The simulator's Binance USDⓈ-M futures dialect, as a Binance client sees it over real sockets:
combined and raw streams, SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS and their errors, and the
depth snapshot REST with Binance's error codes."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from services.exchange_sim.server import SimConfig, Simulator


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(SimConfig(port=0, rest_port=0, rate=50, symbols=("BTCUSDT",), seed=3, binance=True))
    await simulator.start()
    yield simulator
    await simulator.stop()


async def test_combined_stream_chains_depth_by_pu_and_wraps_each_payload(sim: Simulator) -> None:
    url = f"ws://127.0.0.1:{sim.port}/stream?streams=btcusdt@depth@100ms/btcusdt@aggTrade/btcusdt@bookTicker"
    seen: dict[str, list[dict]] = {}
    async with websockets.connect(url) as ws:
        while len(seen.get("btcusdt@depth@100ms", [])) < 5:
            message = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
            seen.setdefault(message["stream"], []).append(message["data"])
    depth = seen["btcusdt@depth@100ms"]
    assert all(d["e"] == "depthUpdate" and d["U"] <= d["u"] for d in depth)
    assert all(b["pu"] == a["u"] and b["U"] == a["u"] + 1 for a, b in itertools.pairwise(depth))
    assert {d["e"] for d in seen.get("btcusdt@bookTicker", [])} <= {"bookTicker"}
    assert "btcusdt@aggTrade" not in seen, "the unrouted endpoint carries public streams only, as Binance's"


async def test_subscribe_list_unsubscribe_and_their_errors(sim: Simulator) -> None:
    async with websockets.connect(f"ws://127.0.0.1:{sim.port}/ws/btcusdt@aggTrade") as ws:
        async def ask(request: object) -> dict:
            await ws.send(orjson.dumps(request).decode())
            while True:  # skip stream payloads until the reply
                message = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
                if "e" not in message:
                    return message

        ok = {"result": None, "id": 1}
        assert await ask({"method": "SUBSCRIBE", "params": ["btcusdt@bookTicker"], "id": 1}) == ok
        listed = await ask({"method": "LIST_SUBSCRIPTIONS", "id": 2})
        assert listed == {"result": ["btcusdt@aggTrade", "btcusdt@bookTicker"], "id": 2}
        assert await ask({"method": "UNSUBSCRIBE", "params": ["btcusdt@aggTrade"], "id": 3}) == {**ok, "id": 3}
        assert (await ask({"method": "LIST_SUBSCRIPTIONS", "id": 4}))["result"] == ["btcusdt@bookTicker"]
        bad = await ask({"method": "SUBSCRIBE", "params": ["dogeusdt@aggTrade"], "id": 5})
        assert bad["code"] == 2 and bad["id"] == 5 and "invalid stream" in bad["msg"]
        assert (await ask({"method": "FLY", "id": 6}))["code"] == 2
        await ws.send("{not json")
        assert orjson.loads(await asyncio.wait_for(ws.recv(), 5))["code"] == 3
    with pytest.raises(ConnectionClosed):  # an unknown stream in the URL is refused outright
        async with websockets.connect(f"ws://127.0.0.1:{sim.port}/ws/nope@aggTrade") as ws:
            await asyncio.wait_for(ws.recv(), 5)


async def test_depth_snapshot_rest_and_binance_error_codes(sim: Simulator) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{sim.rest_port}") as http:
        book = (await http.get("/fapi/v1/depth", params={"symbol": "BTCUSDT", "limit": 5})).json()
        assert len(book["bids"]) == len(book["asks"]) == 5 and isinstance(book["lastUpdateId"], int)
        assert float(book["bids"][0][0]) < float(book["asks"][0][0])
        for params, status, code in [({"symbol": "DOGEUSDT"}, 400, -1121), ({}, 400, -1102),
                                     ({"symbol": "BTCUSDT", "limit": 7}, 400, -1130)]:
            response = await http.get("/fapi/v1/depth", params=params)
            assert (response.status_code, response.json()["code"]) == (status, code), params
        assert (await http.get("/fapi/v1/ping")).json() == {}
        assert (await http.post("/fapi/v1/depth")).status_code == 405


async def test_agg_trades_rest_answers_by_id_and_time_as_binance_does(sim: Simulator) -> None:
    """/fapi/v1/aggTrades: the rows the aggTrade stream printed, in Binance's REST shape, oldest first;
    fromId is inclusive and exact, limit is 1..1000 (default 500), errors carry Binance's codes."""
    url = f"ws://127.0.0.1:{sim.port}/market/ws/btcusdt@aggTrade"
    streamed: list[dict] = []
    async with websockets.connect(url) as ws:
        while len(streamed) < 30:
            streamed.append(orjson.loads(await asyncio.wait_for(ws.recv(), 5)))
    rest_of = {k: v for k, v in streamed[0].items() if k not in ("e", "E", "s")}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{sim.rest_port}") as http:
        async def get(**params: object) -> httpx.Response:
            return await http.get("/fapi/v1/aggTrades", params={"symbol": "BTCUSDT", **params})

        from_first = (await get(fromId=streamed[0]["a"], limit=30)).json()
        assert from_first[0] == rest_of and set(from_first[0]) == {"a", "p", "q", "f", "l", "T", "m"}
        assert [r["a"] for r in from_first] == [s["a"] for s in streamed], "fromId inclusive, ids one by one"
        assert all(b["f"] == a["l"] + 1 for a, b in itertools.pairwise(from_first)), "trade ids chain too"
        newest = (await get()).json()
        assert len(newest) == min(500, sim.binance.agg_id["BTCUSDT"]) and newest[-1]["a"] >= streamed[-1]["a"]
        assert [r["a"] for r in newest] == sorted(r["a"] for r in newest)
        t0 = from_first[5]["T"]
        timed = (await get(startTime=t0, endTime=t0)).json()
        assert timed and {r["T"] for r in timed} == {t0}
        assert len((await get(limit=1000)).json()) == min(1000, sim.binance.agg_id["BTCUSDT"])
        for params, code in [({"symbol": "DOGEUSDT"}, -1121), ({"limit": 1001}, -1130), ({"limit": 0}, -1130),
                             ({"fromId": "x"}, -1100), ({"startTime": 0, "endTime": 3_600_000}, -1127)]:
            response = await get(**params)
            assert (response.status_code, response.json()["code"]) == (400, code), params
        missing = await http.get("/fapi/v1/aggTrades")
        assert (missing.status_code, missing.json()["code"]) == (400, -1102)


async def test_a_stock_binance_client_reads_agg_trades_and_their_errors(sim: Simulator) -> None:
    """binance-futures-connector (Binance's own Python connector for USDⓈ-M) pointed at the dialect."""
    from binance.error import ClientError
    from binance.um_futures import UMFutures

    while sim.binance.agg_id["BTCUSDT"] < 20:
        await asyncio.sleep(0.05)
    client = UMFutures(base_url=f"http://127.0.0.1:{sim.rest_port}")
    rows = await asyncio.to_thread(client.agg_trades, "BTCUSDT", fromId=5, limit=10)
    assert [r["a"] for r in rows] == list(range(5, 15))
    for kwargs, code in [({"symbol": "DOGEUSDT"}, -1121), ({"symbol": "BTCUSDT", "limit": 5000}, -1130)]:
        with pytest.raises(ClientError) as refused:
            await asyncio.to_thread(lambda kw=kwargs: client.agg_trades(**kw))
        assert (refused.value.status_code, refused.value.error_code) == (400, code)
        assert refused.value.error_message in ("Invalid symbol.", "Data sent for parameter 'limit' is not valid.")
