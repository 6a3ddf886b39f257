"""The faust bars app on the local broker: its bars equal ClickHouse's candles (chDB) for the same
trades, and a SIGKILL mid-stream and a restart should publish every closed bar exactly once."""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from schemas.events import BarClosed, TradeReceived
from schemas.topics import DLQ, MD_BARS, MD_TRADES
from services.recorder.columns import TableBuffer
from services.recorder.core import BY_TABLE
from services.recorder.store import ChdbStore
from services.runtime.bus import group_offsets, make_consumer, partitions_of, read_to_end
from services.runtime.codec import decode_as
from services.tally.feed import produce_trades, synthetic_trades
from tests.conftest import create_topics

pytestmark = pytest.mark.timeout(300)
N = 600
SPACING_NS = 250_000_000  # 600 trades over 150 s of event time: ~100 one-second and 3 one-minute bars a symbol


def trades() -> list[TradeReceived]:
    start = 1_700_000_000_000_000_000
    return [msgspec.structs.replace(t, ts_event=start + i * SPACING_NS) for i, t in
            enumerate(synthetic_trades(N, seed=21))]


def start_bars(prefix: str, bootstrap: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HEAN_KAFKA_BOOTSTRAP": bootstrap, "HEAN_TOPIC_PREFIX": prefix, "BARS_SESSION_TIMEOUT_S": "3"}
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "services.bars"], env=env, stdout=out, stderr=out)


def candles(recorded: list[TradeReceived], tmp_path: Path) -> dict[tuple[str, int, int], tuple]:
    """(symbol, size, bucket ns) → (open, high, low, close, volume, trades, vwap) from chDB's views."""
    store = ChdbStore(tmp_path / "chdb")
    try:
        buffer = TableBuffer(BY_TABLE["trades"])
        buffer.add(recorded, range(len(recorded)), MD_TRADES, 0)
        store.insert_columns(BY_TABLE["trades"], buffer.columns)
        out = {}
        for size, view in ((1, "candles_1s"), (60, "candles_1m")):
            for row in store.query(f"SELECT symbol, toUnixTimestamp64Nano(toDateTime64(bucket, 9)), toString(open), "
                                   f"toString(high), toString(low), toString(close), toString(volume), trades, vwap "
                                   f"FROM hean.{view}"):
                symbol, bucket, *money, count, vwap = row
                out[symbol, size, int(bucket)] = (*map(Decimal, money), int(count), float(vwap))
        return out
    finally:
        store.close()


async def read_bars(bootstrap: str, prefix: str) -> list[BarClosed]:
    consumer = make_consumer(bootstrap, None)
    await consumer.start()
    try:
        tps = await partitions_of(consumer, [prefix + MD_BARS])
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        return [decode_as(r.value, BarClosed) async for _, records in read_to_end(consumer, tps) for r in records]
    finally:
        await consumer.stop()


def mismatches(bars: list[BarClosed], expected: dict[tuple[str, int, int], tuple]) -> list[tuple[str, int, int]]:
    """The bars that differ from their candle (or have none)."""
    wrong = []
    for bar in bars:
        key = (bar.symbol, bar.interval_s, bar.ts_event)
        o, h, low, c, volume, count, vwap = expected.get(key, (None,) * 7)
        if (bar.open, bar.high, bar.low, bar.close, bar.volume, bar.trades) != (o, h, low, c, volume, count) or \
                float(bar.vwap) != pytest.approx(vwap, rel=1e-12):
            wrong.append(key)
    return wrong


async def test_bars_equal_the_candles_and_a_sigkill_loses_and_duplicates_none(bootstrap: str, prefix: str,
                                                                              tmp_path: Path) -> None:
    """Before the SIGKILL every published bar must equal ClickHouse's candle (a plain assertion).
    After it, a bar published twice, missing or unequal is what faust-streaming's exactly_once
    does on this broker: the test then reports xfail with the counts, and passes the day it stops."""
    rng = random.Random(int(os.environ.get("HEAN_CRASH_SEED", random.randrange(1 << 30))))
    await create_topics(bootstrap, prefix, (MD_TRADES, MD_BARS, DLQ))
    recorded = trades()
    await produce_trades(bootstrap, prefix + MD_TRADES, recorded)
    expected = candles(recorded, tmp_path)
    last: dict[tuple[str, int], int] = {}
    for symbol, size, bucket in expected:
        last[symbol, size] = max(bucket, last.get((symbol, size), bucket))
    closed = {k for k in expected if k[2] != last[k[0], k[1]]}  # each symbol's last bar stays open
    log = tmp_path / "bars.log"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    target = rng.randint(N // 5, N // 2)
    try:
        proc = start_bars(prefix, bootstrap, log)
        while proc.poll() is None:
            offsets = (await group_offsets(admin, f"{prefix}hean.bars")).items()
            if sum(m.offset for tp, m in offsets if tp.topic == prefix + MD_TRADES and m.offset > 0) >= target:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(rng.uniform(0, 0.3))
        assert proc.poll() is None, log.read_text()[-3000:]
        proc.kill()
        proc.wait()
        before = await read_bars(bootstrap, prefix)
        assert before and not mismatches(before, expected)  # crash-free so far: bars == candles
        proc = start_bars(prefix, bootstrap, log)
        bars: list[BarClosed] = []
        for _ in range(240):
            bars = await read_bars(bootstrap, prefix)
            if len(bars) >= len(closed):
                break
            assert proc.poll() is None, log.read_text()[-3000:]
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.0)  # anything published after the expected count would be a duplicate
        bars = await read_bars(bootstrap, prefix)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        await admin.close()
    twice = len(bars) - len({b.id for b in bars})
    missing = len(closed - {(b.symbol, b.interval_s, b.ts_event) for b in bars})
    wrong = len(mismatches(bars, expected))
    if twice or missing or wrong:  # what faust-streaming 0.15.3 does (docs/DESIGN-NOTES.md, "Bars")
        pytest.xfail(f"faust-streaming exactly_once after a SIGKILL at committed offset {target} of {N}: "
                     f"{twice} bars published twice, {missing} missing, {wrong} unequal to the candles, of "
                     f"{len(closed)}: the restarted worker's tables (rebuilt from their changelogs) are not at "
                     "the input offsets it resumes from")
