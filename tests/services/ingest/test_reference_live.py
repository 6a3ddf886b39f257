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
from services.ingest.binance import BinanceIngest
from services.ingest.shell import Ingest, IngestConfig
from services.runtime.bus import make_admin
from services.runtime.codec import decode
from services.runtime.settings import RuntimeSettings
from services.venues.binance.instruments import parse_exchange_info
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


async def test_a_binance_ingest_publishes_binances_rules_beside_bybits(bootstrap: str, prefix: str) -> None:
    """Both venues list BTCUSDT: each venue's rules get their own compaction key, so neither
    replaces the other, and each equals what its venue's own endpoint answers."""
    await create_topics(bootstrap, prefix, (MD_TRADES, MD_BOOK, MD_TICKERS, DLQ, REF_INSTRUMENTS))
    sim = Simulator(SimConfig(port=0, rest_port=0, rate=20, symbols=("BTCUSDT", "ETHUSDT"), binance=True))
    port = await sim.start()
    settings = RuntimeSettings(kafka_bootstrap=bootstrap, topic_prefix=prefix)
    ingests = [Ingest(IngestConfig(url=f"ws://127.0.0.1:{port}/v5/public/linear", symbols=("BTCUSDT", "ETHUSDT")),
                      settings),
               BinanceIngest(IngestConfig(venue="binance", url=f"ws://127.0.0.1:{port}/stream",
                                          symbols=("BTCUSDT", "ETHUSDT")), settings)]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(i.run(stop)) for i in ingests]
    try:
        await instruments(bootstrap, prefix + REF_INSTRUMENTS, 4)
        async with httpx.AsyncClient() as client:
            info = (await client.get(f"http://127.0.0.1:{port}/fapi/v1/exchangeInfo")).json()
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await sim.stop()
    records = await read_topic(bootstrap, prefix + REF_INSTRUMENTS)
    by_key = {r.key: decode(r.value) for r in records}
    assert sorted(by_key) == [b"BTCUSDT", b"ETHUSDT", b"binance:BTCUSDT", b"binance:ETHUSDT"]
    binance = {k: from_defined(e) for k, e in by_key.items() if k.startswith(b"binance:")}  # type: ignore[arg-type]
    assert {str(i.id): i for i in binance.values()} == {
        str(i.id): i for i in parse_exchange_info(info, ["BTCUSDT", "ETHUSDT"])}
    assert {e.venue for k, e in by_key.items() if not k.startswith(b"binance:")} == {"bybit"}  # type: ignore[attr-defined]
