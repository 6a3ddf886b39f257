"""The recorder on the real stack: simulator → ingest → Kafka → recorder → chDB, each row once.

SIGKILLs of the recorder, for every table, are tests/services/recorder/test_exactly_once.py."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

from schemas.topics import DLQ, MD_BOOK, MD_TICKERS, MD_TRADES
from services.exchange_sim.server import SimConfig, Simulator
from services.ingest.shell import Ingest, IngestConfig
from services.recorder.shell import Recorder, RecorderConfig
from services.recorder.store import ChdbStore
from services.runtime.codec import decode
from services.runtime.settings import RuntimeSettings
from tests.conftest import create_topics, read_topic, wait_caught_up

pytestmark = pytest.mark.integration
MD = (MD_TRADES, MD_BOOK, MD_TICKERS, DLQ)


async def unique_ids(bootstrap: str, topic: str) -> set[str]:
    return {decode(r.value).id for r in await read_topic(bootstrap, topic)}


def table_counts(path: Path, table: str) -> tuple[int, int]:
    store = ChdbStore(path)
    try:
        [[rows, distinct]] = store.query(f"SELECT count(), uniqExact(id) FROM hean.{table}")
        return int(rows), int(distinct)
    finally:
        store.close()


async def run_recorder(bootstrap: str, prefix: str, path: Path) -> Recorder:
    recorder = Recorder(RecorderConfig(store=f"chdb://{path}"),
                        RuntimeSettings(kafka_bootstrap=bootstrap, topic_prefix=prefix))
    stop = asyncio.Event()
    task = asyncio.create_task(recorder.run(stop))
    async def caught_up() -> None:
        for topic in (MD_TRADES, MD_BOOK, MD_TICKERS):
            await wait_caught_up(bootstrap, recorder.group_id, prefix + topic)

    waiter = asyncio.create_task(caught_up())
    try:
        done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:  # the recorder died: show why instead of a timeout
            waiter.cancel()
            task.result()
            raise AssertionError("recorder stopped before catching up")
        await waiter
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
    return recorder


async def test_simulated_market_lands_in_clickhouse_once(bootstrap: str, prefix: str, tmp_path: Path) -> None:
    await create_topics(bootstrap, prefix, MD)
    sim = Simulator(SimConfig(port=0, rest_port=0, rate=100, symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT"), seed=5))
    port = await sim.start()
    ingest = Ingest(IngestConfig(url=f"ws://127.0.0.1:{port}/v5/public/linear"),
                    RuntimeSettings(kafka_bootstrap=bootstrap, topic_prefix=prefix))
    stop = asyncio.Event()
    task = asyncio.create_task(ingest.run(stop))
    await asyncio.sleep(3)
    stop.set()
    await task
    await sim.stop()

    path = tmp_path / "chdb"
    await run_recorder(bootstrap, prefix, path)
    expected = {t: await unique_ids(bootstrap, prefix + t) for t in (MD_TRADES, MD_BOOK, MD_TICKERS)}
    assert all(expected.values())
    for topic, table in ((MD_TRADES, "trades"), (MD_BOOK, "book_top"), (MD_TICKERS, "tickers")):
        assert table_counts(path, table) == (len(expected[topic]), len(expected[topic])), table

    topic_trades = {e.id: (e.price, e.qty) for e in
                    (decode(r.value) for r in await read_topic(bootstrap, prefix + MD_TRADES))}
    again = await run_recorder(bootstrap, prefix, path)  # a restart re-reads nothing and adds nothing
    assert again.metrics.rows.labels("recorder", "trades")._value.get() == 0
    assert table_counts(path, "trades") == (len(expected[MD_TRADES]),) * 2

    store = ChdbStore(path)
    try:
        [[crossed]] = store.query("SELECT countIf(bid_price >= ask_price) FROM hean.book_top")
        assert int(crossed) == 0
        recorded = {i: (Decimal(p), Decimal(q)) for i, p, q in
                    store.query("SELECT id, toString(price), toString(qty) FROM hean.trades")}
    finally:
        store.close()
    assert recorded == topic_trades  # every price and quantity exactly as published
