"""The execution REST client against the simulator over real sockets: signing, time sync, 10006,
5xx, timeouts, lost acks (no duplicate order), the circuit breaker; and no secret in the logs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from services.exchange_sim.server import SimConfig, Simulator
from services.runtime.errors import TransientError
from services.runtime.settings import Secret
from services.venues.bybit.rest import BybitRest, VenueError

KEY, SECRET = "exec-key", "exec-secret-value"


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(SimConfig(port=0, rest_port=0, rate=20, symbols=("BTCUSDT",), seed=8,
                                    api_keys=(f"{KEY}:{SECRET}",)))
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def client(sim: Simulator) -> AsyncIterator[BybitRest]:
    rest = BybitRest(f"http://127.0.0.1:{sim.rest_port}", KEY, Secret(SECRET), timeout=1.0, backoff=0.01)
    yield rest
    await rest.close()


def order(link_id: str, **fields: object) -> dict:
    return {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit", "qty": "0.010",
            "price": "60000.0", "timeInForce": "GTC", "orderLinkId": link_id, **fields}


def created(sim: Simulator, link_id: str) -> int:
    return sim.private.created_link_ids.count(link_id)


async def test_place_find_cancel_positions(client: BybitRest, sim: Simulator) -> None:
    placed = await client.place_order(order("c-1"))
    assert placed["orderLinkId"] == "c-1" and placed["orderId"]
    assert (await client.find_order("linear", "c-1"))["orderStatus"] == "New"
    assert [o["orderLinkId"] for o in await client.open_orders("linear", "BTCUSDT")] == ["c-1"]
    assert (await client.cancel_order("linear", "BTCUSDT", "c-1"))["orderLinkId"] == "c-1"
    assert (await client.positions("linear", "BTCUSDT"))[0]["size"] == "0.000"
    assert client.rate_limits["/v5/order/create"].limit == 10


async def test_business_errors_are_not_retried(client: BybitRest) -> None:
    with pytest.raises(VenueError) as info:
        await client.place_order(order("c-2", qty="0.0001"))
    assert info.value.ret_code == 10001
    with pytest.raises(VenueError) as info:
        await client.cancel_order("linear", "BTCUSDT", "never-placed")
    assert info.value.ret_code == 110001


async def test_clock_skew_is_corrected_after_10002(client: BybitRest) -> None:
    client.time_offset_ms = -60_000  # our clock a minute behind the venue
    assert (await client.place_order(order("c-3")))["orderLinkId"] == "c-3"
    assert abs(client.time_offset_ms) < 1000 and client.ret_codes[10002] == 1


async def test_rate_limit_waits_and_succeeds(client: BybitRest, sim: Simulator) -> None:
    sim.inject("ratelimit", count=2)
    assert (await client.place_order(order("c-4")))["orderLinkId"] == "c-4"
    assert client.ret_codes[10006] == 2 and created(sim, "c-4") == 1


async def test_a_burst_is_paced_to_the_venue_limit_and_never_refused(client: BybitRest, sim: Simulator) -> None:
    """25 orders at once against the venue's 10 creates per second: all placed, no 10006, and the
    last leaves only after two more windows (the pacer spaced them; nothing was refused)."""
    started = asyncio.get_running_loop().time()
    placed = await asyncio.gather(*(client.place_order(order(f"b-{i}")) for i in range(25)))
    took = asyncio.get_running_loop().time() - started
    assert sorted(p["orderLinkId"] for p in placed) == sorted(f"b-{i}" for i in range(25))
    assert client.ret_codes.get(10006, 0) == 0
    assert all(created(sim, f"b-{i}") == 1 for i in range(25))
    assert took >= 2 * client.pace_window_s, took
    assert client.paced_seconds > 0


async def test_5xx_and_lost_acks_never_place_twice(client: BybitRest, sim: Simulator) -> None:
    sim.inject("http5xx")
    assert (await client.place_order(order("c-5")))["orderLinkId"] == "c-5"
    assert created(sim, "c-5") == 1
    sim.inject("dropack")
    assert (await client.place_order(order("c-6")))["orderLinkId"] == "c-6"
    assert created(sim, "c-6") == 1  # the answer was lost; the client found the order instead of resending
    sim.inject("timeout")
    assert (await client.place_order(order("c-7")))["orderLinkId"] == "c-7"
    assert created(sim, "c-7") == 1


async def test_duplicate_link_id_is_treated_as_placed(client: BybitRest, sim: Simulator) -> None:
    first = await client.place_order(order("c-8"))
    again = await client.place_order(order("c-8"))
    view = again.pop("venueView")
    assert again == first and created(sim, "c-8") == 1
    assert view["orderLinkId"] == "c-8" and view["orderId"] == first["orderId"]  # what the caller may have missed


async def test_circuit_breaker_opens_on_a_failing_venue(sim: Simulator) -> None:
    rest = BybitRest(f"http://127.0.0.1:{sim.rest_port}", KEY, Secret(SECRET), timeout=1.0, backoff=0.01,
                     max_attempts=2, breaker_failures=3, breaker_open_seconds=30)
    try:
        sim.inject("http5xx", count=10)
        for _ in range(2):
            with pytest.raises(TransientError):
                await rest.open_orders("linear", "BTCUSDT")
        with pytest.raises(TransientError, match="circuit open"):
            await rest.open_orders("linear", "BTCUSDT")
        assert sim.private.faults["http5xx"] == 7  # the open circuit sent nothing
    finally:
        await rest.close()


async def test_the_secret_never_reaches_the_logs(client: BybitRest, sim: Simulator,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sim.inject("dropack")
    await client.place_order(order("c-9"))
    await asyncio.sleep(0)
    assert SECRET not in caplog.text and SECRET not in repr(client.secret)
