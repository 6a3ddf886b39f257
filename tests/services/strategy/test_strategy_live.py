"""The strategy service on the runtime, fed by the live simulator through ingest and Kafka."""

from __future__ import annotations

import asyncio

import pytest

from schemas.events import AmendOrder, SubmitOrder
from schemas.topics import DLQ, MD_BOOK, MD_TICKERS, MD_TRADES, ORDERS_EVENTS, ORDERS_INTENTS, REF_INSTRUMENTS
from services.exchange_sim.server import SimConfig, Simulator
from services.ingest.shell import Ingest, IngestConfig
from services.runtime.codec import decode
from services.runtime.run import ServiceRunner, replay
from services.runtime.service import StartFrom
from services.runtime.settings import RuntimeSettings
from services.strategy.config import StrategyConfig
from services.strategy.shell import definition
from tests.conftest import create_topics, read_topic, wait_caught_up

pytestmark = pytest.mark.integration


async def test_strategy_trades_the_live_feed_and_replays_to_the_same_state(bootstrap: str, redis_url: str,
                                                                            prefix: str) -> None:
    await create_topics(bootstrap, prefix, (MD_TRADES, MD_BOOK, MD_TICKERS, DLQ, ORDERS_EVENTS, ORDERS_INTENTS,
                                            REF_INSTRUMENTS))
    sim = Simulator(SimConfig(port=0, rest_port=0, rate=100, symbols=("BTCUSDT", "ETHUSDT"), seed=6))
    port = await sim.start()
    settings = RuntimeSettings(kafka_bootstrap=bootstrap, redis_url=redis_url, topic_prefix=prefix,
                               snapshot_every_seconds=0.5)
    ingest = Ingest(IngestConfig(url=f"ws://127.0.0.1:{port}/v5/public/linear", symbols=("BTCUSDT", "ETHUSDT")),
                    settings)
    service = definition(StrategyConfig(ema_fast=3, ema_slow=8, maker_symbols=("BTCUSDT",)))
    runner = ServiceRunner(service, settings)
    stop_ingest, stop_strategy = asyncio.Event(), asyncio.Event()
    tasks = [asyncio.create_task(ingest.run(stop_ingest)), asyncio.create_task(runner.run(stop_strategy))]
    await asyncio.sleep(4)
    stop_ingest.set()
    await tasks[0]
    await sim.stop()
    for topic in (MD_TRADES, MD_BOOK):
        await wait_caught_up(bootstrap, runner.group_id, prefix + topic)
    stop_strategy.set()
    await tasks[1]

    intents = [decode(r.value) for r in await read_topic(bootstrap, prefix + ORDERS_INTENTS)]
    submits = [i for i in intents if isinstance(i, SubmitOrder)]
    assert {i.strategy for i in submits} == {"ema", "maker"}
    assert any(isinstance(i, AmendOrder) for i in intents), "the maker re-quotes by amending"
    assert all(i.symbol == "BTCUSDT" for i in submits if i.strategy == "maker")
    assert len({i.id for i in intents}) == len(intents)

    rebuilt = await replay(service, settings, StartFrom("beginning"))
    assert rebuilt.hash == runner.state_hash()
