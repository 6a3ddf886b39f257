"""Binance's aggTrades reader (services/venues/binance/trades.py) against the simulator's Binance
dialect over HTTP: a REST trade equals the stream's, and `since` returns exactly the ids after the
last published one — from the newest page, page by page, or, past its page budget or once the venue
no longer has the next id, the newest page with the gap said."""

from __future__ import annotations

from collections import deque

import httpx
import orjson
import pytest

from services.exchange_sim.server import SimConfig, Simulator
from services.venues.binance.streams import BinanceNormalizer
from services.venues.binance.trades import AggTradesRefused, BinanceAggTrades, parse_agg_trades

SYMBOL = "BTCUSDT"


@pytest.fixture
async def sim() -> Simulator:
    simulator = Simulator(SimConfig(port=0, rest_port=0, rate=20, symbols=(SYMBOL,), seed=7, lockstep=True,
                                    binance=True))
    await simulator.start()
    while simulator.binance.agg_id[SYMBOL] < 3500:
        simulator.step([SYMBOL])
    yield simulator
    await simulator.stop()


def ids(trades: list) -> list[int]:
    return [int(t.trade_id) for t in trades]


async def test_a_rest_trade_equals_the_stream_trade_it_repeats(sim: Simulator) -> None:
    row = sim.binance.agg_trades[SYMBOL][-1]
    frame = {"e": "aggTrade", "E": row[5] + 1, "s": SYMBOL, "a": row[0], "p": row[1], "q": row[2], "f": row[3],
             "l": row[4], "T": row[5], "m": row[6]}
    [(_, _, streamed)] = BinanceNormalizer((SYMBOL,), 50).on_frame(orjson.dumps(frame), 42).events
    async with httpx.AsyncClient() as client:
        [fetched] = await BinanceAggTrades(f"http://127.0.0.1:{sim.rest_port}", limit=1).page(client, SYMBOL, 42)
    assert fetched == streamed


async def test_since_returns_exactly_the_ids_after_the_last(sim: Simulator) -> None:
    last = sim.binance.agg_id[SYMBOL]
    source = BinanceAggTrades(f"http://127.0.0.1:{sim.rest_port}", max_pages=3)
    async with httpx.AsyncClient() as client:
        near, near_full = await source.since(client, SYMBOL, str(last - 10), 0)
        assert (ids(near), near_full) == (list(range(last - 9, last + 1)), False), "within the newest page"
        far, far_full = await source.since(client, SYMBOL, str(last - 2500), 0)
        assert (ids(far), far_full) == (list(range(last - 2499, last + 1)), False), "read forward, no repeats"
        none, _ = await source.since(client, SYMBOL, str(last), 0)
        assert none == []
        tight = BinanceAggTrades(source.rest_url, max_pages=2)
        beyond, beyond_full = await tight.since(client, SYMBOL, "5", 0)  # ~2500 before the newest page: 3 pages
        assert (ids(beyond), beyond_full) == (list(range(last - 999, last + 1)), True), "newest page, gap said"
        sim.binance.agg_trades[SYMBOL] = deque(list(sim.binance.agg_trades[SYMBOL])[-2000:])  # the venue forgot
        aged, aged_full = await BinanceAggTrades(source.rest_url, max_pages=10).since(client, SYMBOL, "5", 0)
        assert (ids(aged), aged_full) == (list(range(last - 999, last + 1)), True), "next id gone: a gap"
        with pytest.raises(AggTradesRefused, match="-1121"):
            await source.since(client, "DOGEUSDT", "1", 0)


def test_an_unreadable_answer_is_refused_whole() -> None:
    good = {"a": 1, "p": "100.5", "q": "0.01", "f": 1, "l": 1, "T": 5, "m": True}
    assert parse_agg_trades([good], SYMBOL, 0)[0].side == "Sell", "buyer was maker: the taker sold"
    for rows in ({"code": -1121}, [good, {**good, "p": "NaN", "a": 2}], [good, {**good, "m": "yes", "a": 2}],
                 [{**good, "a": 2}, good]):
        with pytest.raises(AggTradesRefused):
            parse_agg_trades(rows, SYMBOL, 0)
