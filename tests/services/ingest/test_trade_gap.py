"""A trade gap ingest cannot fill is a control event, on the real broker (issue 13).

Ingest publishes a lockstep simulator's trades, stops, and while it is down the venue prints more
trades than its recent-trade page holds (Bybit answers the newest 1000). The restarted instance
fills what the page has and publishes exactly one TradeGapDetected on control naming both ends of
the hole: the last trade published before the outage and the oldest one recovered. md.trades is
the venue's record less exactly the trades in between, in order, none twice.
"""

from __future__ import annotations

import asyncio

import pytest

from schemas.events import TradeGapDetected, TradeReceived
from schemas.topics import CONTROL, DLQ, MD_BOOK, MD_TICKERS, MD_TRADES
from services.exchange_sim.server import SimConfig, Simulator
from services.ingest.shell import Ingest, IngestConfig
from services.runtime.codec import decode
from services.runtime.settings import RuntimeSettings
from services.venues.bybit.trades import MAX_LIMIT
from tests.conftest import create_topics, read_topic
from tests.services.ingest.test_trade_continuity import subscribed, until

pytestmark = pytest.mark.integration
SYMBOL = "BTCUSDT"
MS = 1_000_000


def ingest(sim: Simulator, prefix: str, bootstrap: str) -> Ingest:
    return Ingest(IngestConfig(url=f"ws://127.0.0.1:{sim.port}/v5/public/linear", symbols=(SYMBOL,), tickers=False,
                               backoff_initial=0.05), RuntimeSettings(kafka_bootstrap=bootstrap, topic_prefix=prefix))


async def published(bootstrap: str, prefix: str) -> list[TradeReceived]:
    return [decode(r.value) for r in await read_topic(bootstrap, prefix + MD_TRADES)]


async def test_an_outage_longer_than_the_page_is_one_gap_event_with_both_ends(bootstrap: str, prefix: str) -> None:
    await create_topics(bootstrap, prefix, (MD_TRADES, MD_BOOK, MD_TICKERS, DLQ, CONTROL))
    sim = Simulator(SimConfig(port=0, rest_port=0, rate=20, symbols=(SYMBOL,), seed=5, lockstep=True))
    await sim.start()

    async def step(n: int) -> None:
        for _ in range(n):
            sim.step([SYMBOL])
            sim.release(len(sim.held))
            await asyncio.sleep(0.005)

    try:
        first = ingest(sim, prefix, bootstrap)
        stop = asyncio.Event()
        task = asyncio.create_task(first.run(stop))
        await until(lambda: subscribed(sim, SYMBOL), "the first instance subscribed")
        await step(20)
        printed = len(sim.trades[SYMBOL])
        await until(lambda: first.published >= printed and printed > 0, "the first trades published")
        stop.set()
        await asyncio.wait_for(task, 20)
        before = await published(bootstrap, prefix)
        assert [t.trade_id for t in before] == [t["execId"] for t in sim.trades[SYMBOL]]

        while len(sim.trades[SYMBOL]) - len(before) < MAX_LIMIT["linear"] + 300:  # down: the page cannot cover it
            sim.step([SYMBOL])
        recoverable = list(sim.trades[SYMBOL])[-MAX_LIMIT["linear"]:]

        second = ingest(sim, prefix, bootstrap)
        stop = asyncio.Event()
        task = asyncio.create_task(second.run(stop))
        await until(lambda: subscribed(sim, SYMBOL), "the second instance subscribed")
        # The fill reads the page after subscribing: a trade printed before that read would move
        # the page's oldest trade by one, so the market waits until the gap has been found.
        await until(lambda: second.metrics.trade_gaps.labels("ingest", SYMBOL)._value.get() == 1, "the gap found")
        await step(20)
        record = list(sim.trades[SYMBOL])
        await until(lambda: published(bootstrap, prefix), "md.trades readable")

        async def caught_up() -> bool:
            got = await published(bootstrap, prefix)
            return bool(got) and got[-1].trade_id == record[-1]["execId"]

        await until(caught_up, "the live trades after the fill published")
        stop.set()
        await asyncio.wait_for(task, 20)
    finally:
        await sim.stop()

    gaps = [decode(r.value) for r in await read_topic(bootstrap, prefix + CONTROL)]
    assert len(gaps) == 1 and isinstance(gaps[0], TradeGapDetected), gaps
    gap = gaps[0]
    assert (gap.venue, gap.category, gap.symbol, gap.reason) == ("bybit", "linear", SYMBOL, "page_short")
    assert (gap.last_trade_id, gap.last_trade_ts) == (before[-1].trade_id, before[-1].ts_event)
    assert (gap.first_trade_id, gap.first_trade_ts) == (recoverable[0]["execId"], int(recoverable[0]["time"]) * MS)
    assert gap.ts_event == gap.first_trade_ts
    assert second.metrics.trade_gaps.labels("ingest", SYMBOL)._value.get() == 1

    ids = [t["execId"] for t in record]
    lost = ids[ids.index(gap.last_trade_id) + 1:ids.index(gap.first_trade_id)]
    assert len(lost) >= 300, "the outage printed more than the page holds"
    after = [t.trade_id for t in await published(bootstrap, prefix)]
    assert after == [i for i in ids if i not in set(lost)], "the venue's record less exactly the hole, in order"
