"""Lockstep mode over real sockets: the market moves only on /sim/step, on the step clock, and frames
wait for /sim/release; two simulators with one seed send the same bytes. Also the venue's own books
(/sim/ledger) and the execution list (GET /v5/execution/list, paged) that reconciliation reads."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import orjson
import pytest
import websockets

from services.exchange_sim.server import SimConfig, Simulator
from services.runtime.settings import Secret
from services.venues.bybit.rest import BybitRest
from tests.conftest import sim_get

KEY, SECRET = "lock-key", "lock-secret"


def lockstep_sim() -> Simulator:
    return Simulator(SimConfig(port=0, rest_port=0, rate=20, symbols=("BTCUSDT", "ETHUSDT"), seed=11,
                               lockstep=True, api_keys=(f"{KEY}:{SECRET}",)))


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = lockstep_sim()
    await simulator.start()
    yield simulator
    await simulator.stop()


async def frames_of(sim: Simulator, steps: int) -> list[str]:
    """Subscribe, then step BTCUSDT `steps` times, releasing one frame at a time; every frame received."""
    received: list[str] = []
    async with websockets.connect(f"{sim.url}/v5/public/linear") as ws:
        await ws.send(orjson.dumps({"op": "subscribe", "args": ["orderbook.50.BTCUSDT", "publicTrade.BTCUSDT",
                                                                 "tickers.BTCUSDT"]}))
        for _ in range(3):  # the ack and two snapshots (book, ticker)
            received.append(str(await ws.recv()))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.3)  # nothing moves by itself
        for _ in range(steps):
            held = (await sim_get(sim, "/sim/step", symbol="BTCUSDT")).json()["held"]
            for left in range(held - 1, -1, -1):
                released = (await sim_get(sim, "/sim/release")).json()
                assert released["held"] == left and len(released["released"]) == 1
                received.append(str(await asyncio.wait_for(ws.recv(), 5)))
    return [r for r in received if '"topic"' in r]


async def test_the_market_moves_only_when_stepped_and_the_same_seed_sends_the_same_bytes(sim: Simulator) -> None:
    start = (await sim_get(sim, "/sim/stats")).json()["venue_ms"]
    first = await frames_of(sim, 30)
    assert (await sim_get(sim, "/sim/stats")).json()["venue_ms"] == start + 30 * 50  # 1000/rate per step
    assert any("publicTrade" in f for f in first) and any('"delta"' in f for f in first)
    assert all(orjson.loads(f)["ts"] <= start + 30 * 50 for f in first)
    other = lockstep_sim()
    await other.start()
    try:
        assert await frames_of(other, 30) == first
    finally:
        await other.stop()


async def test_step_and_release_need_lockstep_mode_and_known_symbols(sim: Simulator) -> None:
    assert (await sim_get(sim, "/sim/step", symbol="DOGEUSDT")).status_code == 400
    assert (await sim_get(sim, "/sim/release")).json() == {"released": [], "held": 0}  # nothing subscribed
    free = Simulator(SimConfig(port=0, rest_port=0, symbols=("BTCUSDT",)))
    await free.start()
    try:
        answer = await sim_get(free, "/sim/step")
        assert answer.status_code == 400 and "lockstep" in answer.json()["error"]
    finally:
        await free.stop()


async def test_ledger_and_the_paged_execution_list(sim: Simulator) -> None:
    rest = BybitRest(f"http://127.0.0.1:{sim.rest_port}", KEY, Secret(SECRET))
    try:
        await rest.sync_time()
        # Each market order sweeps a few levels (one fill per level): 40 of them need a second page.
        for n in range(40):
            await rest.place_order({"category": "linear", "symbol": "ETHUSDT", "side": "Buy" if n % 2 else "Sell",
                                    "orderType": "Market", "qty": "5", "orderLinkId": f"m-{n}"})
        ledger = (await sim_get(sim, "/sim/ledger")).json()[KEY]
        executions = ledger["executions"]
        assert len(executions) > 100, "enough fills for a second page"
        assert [o["orderLinkId"] for o in ledger["orders"]] == [f"m-{n}" for n in range(40)]
        assert all(o["orderStatus"] == "Filled" for o in ledger["orders"])
        assert Decimal(ledger["wallet"]["coin"][0]["totalFee"]) == sum(Decimal(e["execFee"]) for e in executions)

        fills = await rest.executions("linear", "m-7")
        assert fills == [e for e in executions if e["orderLinkId"] == "m-7"], "all of one order's, oldest first"
        assert sum(Decimal(f["execQty"]) for f in fills) == Decimal("5")
        page = await rest.request("GET", "/v5/execution/list", query={"category": "linear", "limit": 100})
        assert len(page["list"]) == 100 and page["list"][0] == executions[-1] and page["nextPageCursor"] == "100"
        rest_page = await rest.request("GET", "/v5/execution/list", query={"category": "linear", "limit": 100,
                                                                            "cursor": "100"})
        assert page["list"] + rest_page["list"] == executions[::-1]
    finally:
        await rest.close()


def book_of(sim: Simulator, symbol: str, depth: int) -> tuple[list[list[str]], list[list[str]]]:
    """The market's own top `depth` levels, as the venue writes them."""
    market = sim.symbols[symbol]
    bids, asks = market.top(depth)
    inst = market.instrument
    return ([[inst.price_text(p), inst.qty_text(q)] for p, q in sorted(bids.items(), reverse=True)],
            [[inst.price_text(p), inst.qty_text(q)] for p, q in sorted(asks.items())])


async def test_streams_nobody_reads_catch_up_when_asked(sim: Simulator) -> None:
    """A stream without subscribers is not advanced on a step; the REST book and a first
    subscriber's snapshot are still the market as it is, and deltas chain onto that snapshot."""
    for _ in range(15):  # steps nobody listens to
        assert (await sim_get(sim, "/sim/step", symbol="ETHUSDT")).json()["held"] == 0
    rest = (await sim_get(sim, "/v5/market/orderbook", category="linear", symbol="ETHUSDT", limit="200")).json()
    assert (rest["result"]["b"], rest["result"]["a"]) == book_of(sim, "ETHUSDT", 200)
    async with websockets.connect(f"{sim.url}/v5/public/linear") as ws:
        await ws.send('{"op": "subscribe", "args": ["orderbook.50.ETHUSDT"]}')
        assert orjson.loads(await ws.recv())["success"] is True
        snapshot = orjson.loads(await ws.recv())
        assert snapshot["type"] == "snapshot"
        assert (snapshot["data"]["b"], snapshot["data"]["a"]) == book_of(sim, "ETHUSDT", 50)
        book = {"b": dict(snapshot["data"]["b"]), "a": dict(snapshot["data"]["a"])}
        u = snapshot["data"]["u"]
        for _ in range(10):
            if not (await sim_get(sim, "/sim/step", symbol="ETHUSDT")).json()["held"]:
                continue  # a step that changed nothing in the top 50
            await sim_get(sim, "/sim/release")
            delta = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
            assert delta["type"] == "delta" and delta["data"]["u"] == u + 1
            u = delta["data"]["u"]
            for side in ("b", "a"):
                for price, qty in delta["data"][side]:
                    if qty == "0":
                        book[side].pop(price)
                    else:
                        book[side][price] = qty
        bids, asks = book_of(sim, "ETHUSDT", 50)
        assert sorted(book["b"].items(), key=lambda level: -Decimal(level[0])) == [tuple(level) for level in bids]
        assert sorted(book["a"].items(), key=lambda level: Decimal(level[0])) == [tuple(level) for level in asks]
