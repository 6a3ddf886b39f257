"""The recorder on the real stack: simulator → ingest → Kafka → recorder → chDB, and SIGKILLs."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from schemas.events import TradeReceived
from schemas.topics import DLQ, MD_BOOK, MD_TICKERS, MD_TRADES
from services.exchange_sim.server import SimConfig, Simulator
from services.ingest.shell import Ingest, IngestConfig
from services.recorder.shell import Recorder, RecorderConfig
from services.recorder.store import ChdbStore
from services.runtime.codec import decode
from services.runtime.settings import RuntimeSettings
from services.tally.feed import produce_trades, synthetic_trades
from tests.conftest import create_topics, group_offsets, read_topic, wait_caught_up

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


def start_recorder(prefix: str, bootstrap: str, path: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HEAN_KAFKA_BOOTSTRAP": bootstrap, "RECORDER_STORE": f"chdb://{path}",
           "RECORDER_FLUSH_ROWS": "3000", "RECORDER_FLUSH_SECONDS": "0.05", "HEAN_BATCH_MAX_RECORDS": "500",
           "HEAN_SESSION_TIMEOUT_MS": "6000", "HEAN_LOG_LEVEL": "WARNING", "RECORDER_TOPICS": "md.trades"}
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "services.cli.main", "run", "recorder", "--topic-prefix",
                                 prefix], env=env, stdout=out, stderr=out)


async def test_sigkill_at_random_points_leaves_no_duplicate_rows(bootstrap: str, prefix: str,
                                                                 tmp_path: Path) -> None:
    seed = int(os.environ.get("HEAN_CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print(f"recorder crash seed {seed}")
    await create_topics(bootstrap, prefix, MD)
    n = 60_000
    trades: list[TradeReceived] = list(synthetic_trades(n, seed=13))
    await produce_trades(bootstrap, prefix + MD_TRADES, trades)
    path, log = tmp_path / "chdb", tmp_path / "recorder.log"
    group = f"{prefix}hean.recorder"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    kills = []
    try:
        for _ in range(4):
            before = kills[-1] if kills else 0
            target = min(n - 2_000, before + rng.randint(2_000, 10_000))
            proc = start_recorder(prefix, bootstrap, path, log)
            while proc.poll() is None:
                committed = sum(m.offset for m in (await group_offsets(admin, group)).values() if m.offset > 0)
                if committed >= target:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(rng.uniform(0, 0.1))
            proc.kill()
            proc.wait()
            kills.append(sum(m.offset for m in (await group_offsets(admin, group)).values() if m.offset > 0))
        proc = start_recorder(prefix, bootstrap, path, log)
        waiter = asyncio.create_task(wait_caught_up(bootstrap, group, prefix + MD_TRADES, timeout=120))
        while not waiter.done():
            assert proc.poll() is None, f"recorder exited early: {log.read_text()[-3000:]}"
            await asyncio.sleep(0.1)
        await waiter
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        await admin.close()
    print(f"committed offsets at each SIGKILL: {kills}")
    assert all(0 < k < n for k in kills) and kills == sorted(kills), kills
    assert table_counts(path, "trades") == (n, n)
