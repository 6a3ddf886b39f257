"""The venue port's TradeHistory contract (services/venues/port.py), one suite for every adapter,
each against the simulator's own dialect over HTTP: Bybit's newest page, Binance's aggTrades.

What ingest's gap fill relies on, whatever the venue: the answer is a run of the venue's record
with no hole and no repeat, oldest first, ending at the newest trade; when it says nothing may be
missing, it holds every trade after the last published one; when the hole is more than the venue
will give, it says so; and an answer it cannot read is a ValueError naming it, never an empty page.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from services.exchange_sim.server import SimConfig, Simulator
from services.venues import port
from services.venues.binance.trades import BinanceAggTrades
from services.venues.bybit.trades import BybitRecentTrades

SYMBOL = "BTCUSDT"
PRINTED = 2_500  # trades of each dialect before the checks: more than one page of either venue


@pytest.fixture(scope="module")
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(SimConfig(port=0, rest_port=0, rate=20, symbols=(SYMBOL,), seed=11, lockstep=True,
                                    binance=True))
    await simulator.start()
    while min(len(simulator.trades[SYMBOL]), simulator.binance.agg_id[SYMBOL]) < PRINTED:
        simulator.step([SYMBOL])
    yield simulator
    await simulator.stop()


class Bybit:
    venue = "bybit"

    def adapter(self, sim: Simulator) -> Any:
        return BybitRecentTrades(f"http://127.0.0.1:{sim.rest_port}", "linear")

    def record(self, sim: Simulator) -> list[str]:
        return [t["execId"] for t in sim.trades[SYMBOL]]


class Binance:
    venue = "binance"

    def adapter(self, sim: Simulator) -> Any:
        return BinanceAggTrades(f"http://127.0.0.1:{sim.rest_port}", max_pages=1)

    def record(self, sim: Simulator) -> list[str]:
        return [str(row[0]) for row in sim.binance.agg_trades[SYMBOL]]


@pytest.fixture(params=[Bybit(), Binance()], ids=lambda v: v.venue)
def venue(request: pytest.FixtureRequest) -> Any:
    return request.param


def run_of(record: list[str], answer: list[Any]) -> range:
    """Where `answer` sits in `record`: a contiguous run of it, oldest first, or the test fails."""
    ids = [t.trade_id for t in answer]
    assert ids, "an empty answer from a venue that printed trades"
    first = record.index(ids[0])
    assert ids == record[first:first + len(ids)], "the answer is not a run of the venue's record"
    return range(first, first + len(ids))


async def test_the_adapter_is_a_trade_history(sim: Simulator, venue: Any) -> None:
    adapter = venue.adapter(sim)
    assert isinstance(adapter, port.TradeHistory)
    assert (adapter.venue, adapter.category) == (venue.venue, "linear") and adapter.limit > 0


async def test_a_hole_within_reach_is_answered_whole(sim: Simulator, venue: Any) -> None:
    record = venue.record(sim)
    async with httpx.AsyncClient() as client:
        trades, may_miss = await venue.adapter(sim).since(client, SYMBOL, record[-10], 7)
    got = run_of(record, trades)
    assert not may_miss
    assert got.stop == len(record), "ends at the newest trade"
    assert got.start <= len(record) - 9, "every trade after the last published one"
    assert {(t.venue, t.category, t.symbol, t.ts_ingest) for t in trades} == {(venue.venue, "linear", SYMBOL, 7)}


async def test_up_to_date_is_nothing_after_the_last(sim: Simulator, venue: Any) -> None:
    record = venue.record(sim)
    async with httpx.AsyncClient() as client:
        trades, may_miss = await venue.adapter(sim).since(client, SYMBOL, record[-1], 7)
    assert not may_miss
    ids = [t.trade_id for t in trades]
    assert set(ids) <= set(record) and len(ids) == len(set(ids)), "trades of the record, none twice"
    assert not ids or ids[-1] == record[-1], "nothing after the newest, which was the last published"


async def test_a_hole_beyond_reach_is_said_and_the_newest_still_come(sim: Simulator, venue: Any) -> None:
    record = venue.record(sim)
    async with httpx.AsyncClient() as client:
        trades, may_miss = await venue.adapter(sim).since(client, SYMBOL, record[0], 7)
    got = run_of(record, trades)
    assert may_miss, "more is missing than the venue gives: the fill must say so"
    assert got.stop == len(record) and got.start > 1


async def test_an_unknown_symbol_is_a_refusal_naming_it(sim: Simulator, venue: Any) -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(ValueError, match=r"NOPEUSDT|symbol"):
            await venue.adapter(sim).since(client, "NOPEUSDT", "1", 7)
