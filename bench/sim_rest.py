"""Requests per second of the simulator's REST front: signed order creates and public book GETs.

The trading loop's hot path to the venue is a signed POST /v5/order/create per decision, over a
pooled keep-alive client (services/venues/bybit/rest.py holds 8 connections), plus reads such as the book.
This bench starts a simulator in its own process (lockstep, so no market tick loop competes for the
CPU; a process of its own, so the client's cost is not counted as the server's), lifts the per-key
rate limit there (it would answer 10006 after ten creates and measure nothing), and times N creates
and N GETs with httpx over keep-alive: one at a time (latency-bound, what one
order waits) and `concurrency` in flight (throughput). Run it against two trees to compare
servers, e.g. `PYTHONPATH=/path/to/old/tree python bench/sim_rest.py`.

    python bench/sim_rest.py [--orders 2000] [--gets 2000] [--concurrency 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal

import httpx
import orjson

from services.exchange_sim import private
from services.exchange_sim.server import SimConfig, Simulator
from services.venues.bybit.signing import rest_signature

KEY, SECRET = "bench-key", "bench-secret"


def signed_create(link_id: str) -> tuple[bytes, dict[str, str]]:
    """A resting limit buy far below the market (no fill, so the engine does constant work)."""
    body = orjson.dumps({"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit",
                         "qty": "0.001", "price": "50000.0", "timeInForce": "GTC", "orderLinkId": link_id})
    ts = str(int(time.time() * 1000))
    headers = {"X-BAPI-API-KEY": KEY, "X-BAPI-TIMESTAMP": ts, "X-BAPI-RECV-WINDOW": "5000",
               "X-BAPI-SIGN": rest_signature(SECRET, ts, KEY, "5000", body.decode()),
               "X-BAPI-SIGN-TYPE": "2", "Content-Type": "application/json"}
    return body, headers


async def timed(count: int, concurrency: int, call: Callable[[int], Awaitable[None]]) -> float:
    """Requests per second of `count` calls with `concurrency` in flight."""
    counter = iter(range(count))

    async def worker() -> None:
        for i in counter:
            await call(i)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - started)


def serve(ports: multiprocessing.Queue, stop: multiprocessing.Event) -> None:  # type: ignore[type-arg]
    """The simulator's process: start, report the REST port, serve until told to stop."""

    async def main() -> None:
        private.LIMITS["/v5/order/create"] = 10**9
        sim = Simulator(SimConfig(port=0, rest_port=0, symbols=("BTCUSDT",), lockstep=True,
                                  api_keys=(f"{KEY}:{SECRET}",), balance=Decimal(10**12)))
        await sim.start()
        ports.put(sim.rest_port)
        while not stop.is_set():
            await asyncio.sleep(0.1)
        await sim.stop()

    asyncio.run(main())


async def run(orders: int, gets: int, concurrency: int, rounds: int) -> dict[str, float]:
    context = multiprocessing.get_context("spawn")
    ports, stop = context.Queue(), context.Event()
    server = context.Process(target=serve, args=(ports, stop))
    server.start()
    port = ports.get(timeout=30)
    figures: dict[str, list[float]] = {}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5,
                                     limits=httpx.Limits(max_connections=concurrency,
                                                         max_keepalive_connections=concurrency)) as http:
            for round_ in range(rounds):
                for label, width in (("1 in flight", 1), (f"{concurrency} in flight", concurrency)):
                    async def create(i: int, tag: str = f"{round_}-{width}") -> None:
                        body, headers = signed_create(f"b{tag}-{i}")
                        response = await http.post("/v5/order/create", content=body, headers=headers)
                        assert response.json()["retCode"] == 0, response.text

                    async def book(_: int) -> None:
                        response = await http.get("/v5/market/orderbook?category=linear&symbol=BTCUSDT&limit=50")
                        assert response.json()["retCode"] == 0, response.text

                    figures.setdefault(f"order/create, {label}", []).append(await timed(orders, width, create))
                    figures.setdefault(f"market/orderbook, {label}", []).append(await timed(gets, width, book))
    finally:
        stop.set()
        server.join(10)
    return {name: statistics.median(values) for name, values in figures.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--gets", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results = asyncio.run(run(args.orders, args.gets, args.concurrency, args.rounds))
    for name, rate in results.items():
        print(f"{name:<34} {rate:8.0f} req/s (median of {args.rounds})")


if __name__ == "__main__":
    main()
