"""ref.instruments on the real stack: ingest publishes the simulator's instruments-info into a
compacted topic before its streams, once per instrument, and again only when the venue changes one."""

from __future__ import annotations

import asyncio
import dataclasses
from decimal import Decimal

import httpx
import pytest
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from schemas.events import InstrumentDefined
from schemas.topics import DLQ, MD_BOOK, MD_TICKERS, MD_TRADES, REF_INSTRUMENTS
from services.domain.instrument import from_defined
from services.exchange_sim.server import SimConfig, Simulator
from services.ingest.shell import Ingest, IngestConfig
from services.runtime.bus import make_admin
from services.runtime.codec import decode
from services.runtime.settings import RuntimeSettings
from services.venues.bybit.instruments import parse_instruments
from tests.conftest import create_topics, read_topic

pytestmark = pytest.mark.integration


async def instruments(bootstrap: str, topic: str, count: int) -> list[InstrumentDefined]:
    for _ in range(100):
        found = [decode(r.value) for r in await read_topic(bootstrap, topic)]
        if len(found) >= count:
            return found  # type: ignore[return-value]
        await asyncio.sleep(0.1)
    raise AssertionError(f"expected {count} records on {topic}, found {len(found)}")


async def test_ingest_publishes_the_venues_instruments_and_their_changes(bootstrap: str, prefix: str) -> None:
    await create_topics(bootstrap, prefix, (MD_TRADES, MD_BOOK, MD_TICKERS, DLQ, REF_INSTRUMENTS))
    admin = make_admin(bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, prefix + REF_INSTRUMENTS)])
        configs = {c[0]: c[1] for c in described.resources[0][4]}
    finally:
        await admin.close()
    assert configs["cleanup.policy"] == "compact"

    sim = Simulator(SimConfig(port=0, rest_port=0, rate=20, symbols=("BTCUSDT", "ETHUSDT")))
    port = await sim.start()
    ingest = Ingest(IngestConfig(url=f"ws://127.0.0.1:{port}/v5/public/linear", symbols=("BTCUSDT", "ETHUSDT"),
                                 instruments_refresh_seconds=0.2),
                    RuntimeSettings(kafka_bootstrap=bootstrap, topic_prefix=prefix))
    stop = asyncio.Event()
    task = asyncio.create_task(ingest.run(stop))
    try:
        first = await instruments(bootstrap, prefix + REF_INSTRUMENTS, 2)
        async with httpx.AsyncClient() as client:  # what the venue says, read independently
            answer = (await client.get(f"http://127.0.0.1:{port}/v5/market/instruments-info",
                                       params={"category": "linear"})).json()
        assert {r.symbol: from_defined(r) for r in first} == {i.symbol: i for i in parse_instruments(answer)}
        await asyncio.sleep(0.6)  # refreshes of unchanged rules publish nothing
        assert len(await instruments(bootstrap, prefix + REF_INSTRUMENTS, 2)) == 2

        market = sim.symbols["BTCUSDT"]
        market.instrument = dataclasses.replace(market.instrument, min_notional=Decimal("10"))  # the venue changes
        records = await instruments(bootstrap, prefix + REF_INSTRUMENTS, 3)
    finally:
        stop.set()
        await task
        await sim.stop()
    assert len(records) == 3, "one new record, for the one instrument that changed"
    [changed] = [r for r in records if r.id not in {f.id for f in first}]
    assert (changed.symbol, changed.min_notional) == ("BTCUSDT", Decimal("10"))
