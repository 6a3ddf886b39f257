"""The simulator over real sockets with a plain client: REST envelope and errors, WS acks, the REST
book aligned with the WS book, spot shapes, and replay mode."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
import websockets

from services.exchange_sim.record import write_replay_file
from services.exchange_sim.server import SimConfig, Simulator
from tests.conftest import sim_get


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(SimConfig(port=0, rest_port=0, rate=50, symbols=("BTCUSDT", "ETHUSDT"), seed=2))
    await simulator.start()
    yield simulator
    await simulator.stop()


async def test_rest_envelope_and_endpoints(sim: Simulator) -> None:
    response = await sim_get(sim, "/v5/market/time")
    body = response.json()
    assert response.headers["content-type"] == "application/json"
    assert set(body) == {"retCode", "retMsg", "result", "retExtInfo", "time"}
    assert body["retCode"] == 0 and int(body["result"]["timeNano"]) // 10**9 == int(body["result"]["timeSecond"])

    info = (await sim_get(sim, "/v5/market/instruments-info", category="linear", symbol="BTCUSDT")).json()
    [btc] = info["result"]["list"]
    assert btc["priceFilter"]["tickSize"] == "0.10"
    assert btc["lotSizeFilter"] == {"maxOrderQty": "1190.000", "minOrderQty": "0.001", "qtyStep": "0.001",
                                    "minNotionalValue": "5"}
    spot = (await sim_get(sim, "/v5/market/instruments-info", category="spot")).json()
    assert {i["symbol"] for i in spot["result"]["list"]} == {"BTCUSDT", "ETHUSDT"}
    assert "basePrecision" in spot["result"]["list"][0]["lotSizeFilter"]


async def test_rest_errors(sim: Simulator) -> None:
    assert (await sim_get(sim, "/v5/market/orderbook", category="linear")).json()["retCode"] == 10001
    assert (await sim_get(sim, "/v5/market/orderbook", category="linear", symbol="BTCUSDT",
                      limit="x")).json()["retCode"] == 10001
    assert (await sim_get(sim, "/v5/market/instruments-info")).json()["retCode"] == 10001
    missing = await sim_get(sim, "/v5/nope")
    assert missing.status_code == 404 and missing.json()["retCode"] == 10017
    assert (await sim_get(sim, "/sim/fault", kind="meteor")).status_code == 400


async def test_rest_book_chains_onto_the_ws_deltas(sim: Simulator) -> None:
    """The REST book's u is the depth-200 WS stream's: deltas after it apply on top of it."""
    async with websockets.connect(f"ws://127.0.0.1:{sim.port}/v5/public/linear") as ws:
        await ws.send('{"op": "subscribe", "args": ["orderbook.200.BTCUSDT"]}')
        assert orjson.loads(await ws.recv())["success"] is True
        await ws.recv()  # the WS snapshot
        book = (await sim_get(sim, "/v5/market/orderbook", category="linear", symbol="BTCUSDT", limit="200")).json()
        rest_u = book["result"]["u"]
        while True:
            message = orjson.loads(await ws.recv())
            if message["data"]["u"] > rest_u:
                assert message["data"]["u"] == rest_u + 1
                break


async def test_ws_acks_pong_and_failures(sim: Simulator) -> None:
    async with websockets.connect(f"ws://127.0.0.1:{sim.port}/v5/public/linear") as ws:
        await ws.send('{"req_id": "p1", "op": "ping"}')
        pong = orjson.loads(await ws.recv())
        assert pong["success"] is True and pong["ret_msg"] == "pong" and pong["op"] == "ping"
        assert pong["req_id"] == "p1" and pong["conn_id"]
        for bad in ("not json", '{"op": "dance"}', '{"op": "subscribe", "args": []}',
                    '{"op": "subscribe", "args": ["orderbook.50.DOGEUSDT"]}'):
            await ws.send(bad)
            reply = orjson.loads(await ws.recv())
            assert reply["success"] is False and reply["ret_msg"], bad
        await ws.send('{"op": "subscribe", "req_id": "s1", "args": ["tickers.ETHUSDT"]}')
        assert orjson.loads(await ws.recv())["req_id"] == "s1"
        snapshot = orjson.loads(await ws.recv())
        assert snapshot["type"] == "snapshot" and "markPrice" in snapshot["data"]
        delta = orjson.loads(await ws.recv())
        assert delta["type"] == "delta" and set(delta["data"]) < set(snapshot["data"])
        await ws.send('{"op": "unsubscribe", "args": ["tickers.ETHUSDT"]}')
        while (reply := orjson.loads(await ws.recv())).get("op") != "unsubscribe":
            pass
        assert reply["success"] is True


async def test_spot_shapes(sim: Simulator) -> None:
    async with websockets.connect(f"ws://127.0.0.1:{sim.port}/v5/public/spot") as ws:
        await ws.send('{"op": "subscribe", "args": ["orderbook.50.BTCUSDT"]}')
        ack = orjson.loads(await ws.recv())
        assert ack["ret_msg"] == "subscribe" and "req_id" not in ack
        raw = await ws.recv()
        assert raw.index('"ts"') < raw.index('"type"')  # spot puts ts before type


async def test_level_one_is_snapshot_only(sim: Simulator) -> None:
    async with websockets.connect(f"ws://127.0.0.1:{sim.port}/v5/public/linear") as ws:
        await ws.send('{"op": "subscribe", "args": ["orderbook.1.BTCUSDT"]}')
        await ws.recv()
        kinds = {orjson.loads(await ws.recv())["type"] for _ in range(5)}
        assert kinds == {"snapshot"}


async def test_replay_mode_plays_recorded_frames(tmp_path: Path) -> None:
    replay = tmp_path / "frames.jsonl"
    frames = write_replay_file(replay, 50, symbols=("BTCUSDT",))
    simulator = Simulator(SimConfig(port=0, rest_port=0, symbols=("BTCUSDT",), replay_file=str(replay),
                                    replay_speed=100))
    await simulator.start()
    try:
        async with websockets.connect(f"ws://127.0.0.1:{simulator.port}/v5/public/linear") as ws:
            await ws.send('{"op": "subscribe", "args": ["orderbook.50.BTCUSDT", "publicTrade.BTCUSDT"]}')
            received = []
            while True:
                try:
                    received.append(orjson.loads(await asyncio.wait_for(ws.recv(), 2)))
                except TimeoutError:
                    break
    finally:
        await simulator.stop()
    played = [m for m in received if "topic" in m]
    recorded = [orjson.loads(line)["frame"] for line in replay.read_bytes().splitlines()]
    wanted = [orjson.loads(f) for f in recorded if orjson.loads(f)["topic"] in ("orderbook.50.BTCUSDT",
                                                                             "publicTrade.BTCUSDT")]
    assert frames == len(recorded)
    assert played[-len(wanted):] == wanted  # after the live snapshot on subscribe, every frame in order
