"""Scaling, shown: three `hean run strategy` processes share a 6-partition topic.

Every partition is served by exactly one instance; one is SIGKILLed mid-stream, its partitions
move to the others (with their per-partition snapshots), and the intents equal, record for record,
those of a single instance fed the same trades. In the idempotent commit mode (the default,
docs/COMMITS.md) the kill may repeat an intent, but only as a copy equal to the first of its id;
with transactions nothing repeats.
"""

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
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.partitioner import murmur2

from schemas.events import TradeReceived
from schemas.topics import DLQ, MD_BOOK, MD_TRADES, ORDERS_EVENTS, ORDERS_INTENTS
from services.runtime.codec import decode, encode
from services.runtime.run import ServiceRunner
from services.runtime.settings import RuntimeSettings, load_settings
from services.strategy.config import StrategyConfig
from services.strategy.shell import definition
from tests.conftest import create_topics, read_topic, wait_caught_up, wait_no_open_transactions

pytestmark = pytest.mark.integration
PARTITIONS = 6
TRADES_PER_SYMBOL = 1_500
ENV = {"STRATEGY_EMA_FAST": "3", "STRATEGY_EMA_SLOW": "8", "STRATEGY_MAKER_SYMBOLS": "[]"}


def symbols_covering_every_partition(per_partition: int = 2) -> list[str]:
    chosen: dict[int, list[str]] = {p: [] for p in range(PARTITIONS)}
    n = 0
    while any(len(v) < per_partition for v in chosen.values()):
        name = f"S{n}USDT"
        partition = (murmur2(name.encode()) & 0x7FFFFFFF) % PARTITIONS
        if len(chosen[partition]) < per_partition:
            chosen[partition].append(name)
        n += 1
    return sorted(s for v in chosen.values() for s in v)


def trades(symbols: list[str]) -> list[TradeReceived]:
    """Random walks, interleaved across symbols, with enough EMA crosses to trade often."""
    rng = random.Random(5)
    prices = {s: 1000 for s in symbols}
    out = []
    for i in range(TRADES_PER_SYMBOL):
        for s in symbols:
            prices[s] = max(1, prices[s] + rng.choice((-3, -2, -1, 1, 2, 3)))
            ts = 1_700_000_000_000_000_000 + i * 1_000_000
            out.append(TradeReceived(id=f"{s}-{i}", ts_event=ts, ts_ingest=ts, origin_ts=ts, symbol=s,
                                     trade_id=str(i), side="Buy" if i % 2 else "Sell",
                                     price=Decimal(prices[s]) / 10, qty=Decimal("0.1")))
    return out


async def produce(bootstrap: str, topic: str, events: list[TradeReceived], pause_every: int = 0) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        for n, event in enumerate(events, 1):
            await producer.send(topic, encode(event), key=event.symbol.encode())
            if pause_every and n % pause_every == 0:
                await producer.flush()
                await asyncio.sleep(0.05)
        await producer.flush()
    finally:
        await producer.stop()


async def assignment(bootstrap: str, group: str) -> list[list[int]]:
    """The md.trades partitions of each live member of `group` (from the group coordinator)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    members = []
    for described in response.to_object()["groups"]:
        for member in described["members"]:
            if not member["member_assignment"]:
                continue  # joined, not assigned yet
            decoded = ConsumerProtocolMemberAssignment.decode(member["member_assignment"])
            members.append(sorted(p for topic, ps in decoded.assignment if topic.endswith(MD_TRADES) for p in ps))
    return sorted(members)


async def wait_for_members(bootstrap: str, group: str, count: int, timeout: float = 60) -> list[list[int]]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        members = await assignment(bootstrap, group)
        if len(members) == count and sorted(p for m in members for p in m) == list(range(PARTITIONS)):
            return members
        if loop.time() > deadline:
            raise TimeoutError(f"{group}: expected {count} members over all partitions, saw {members}")
        await asyncio.sleep(0.5)


def commit_mode() -> str:
    """The strategy processes' commit mode: HEAN_COMMIT_MODE, else STRATEGY_COMMIT_MODE, else the default."""
    return os.environ.get("HEAN_COMMIT_MODE") or load_settings(StrategyConfig, "STRATEGY").commit_mode


def firsts(intents: list) -> list:
    """The first intent of each id, in log order; every later one must be an equal copy."""
    first: dict[str, object] = {}
    for intent in intents:
        assert first.setdefault(intent.id, intent) == intent, f"{intent.id} repeated with other content"
    return list(first.values())


def intents_by_symbol(records: list) -> dict[str, list]:
    out: dict[str, list] = {}
    for record in records:
        intent = decode(record.value)
        out.setdefault(intent.symbol, []).append(intent)
    return out


async def test_three_instances_share_partitions_and_survive_a_kill(bootstrap: str, redis_url: str,
                                                                   tmp_path: Path) -> None:
    run = f"scale{os.getpid()}{random.randrange(10**6)}."
    reference = f"ref{os.getpid()}{random.randrange(10**6)}."
    topics = (MD_TRADES, MD_BOOK, ORDERS_EVENTS, ORDERS_INTENTS, DLQ)
    await create_topics(bootstrap, run, topics)
    await create_topics(bootstrap, reference, topics)
    symbols = symbols_covering_every_partition()
    feed = trades(symbols)
    half = len(feed) // 2
    env = {**os.environ, **ENV, "HEAN_KAFKA_BOOTSTRAP": bootstrap, "HEAN_REDIS_URL": redis_url,
           "HEAN_SNAPSHOT_EVERY_SECONDS": "0.5", "HEAN_SESSION_TIMEOUT_MS": "3000", "HEAN_LOG_LEVEL": "WARNING"}
    processes = [subprocess.Popen([sys.executable, "-m", "services.cli.main", "run", "strategy", "--instance",
                                   str(i), "--topic-prefix", run], env=env, stdout=subprocess.DEVNULL,
                                  stderr=(tmp_path / f"strategy{i}.log").open("wb")) for i in range(3)]
    group = f"{run}hean.strategy"
    try:
        before = await wait_for_members(bootstrap, group, 3)
        assert [len(m) for m in before] == [2, 2, 2], before  # each partition served once, evenly
        await produce(bootstrap, run + MD_TRADES, feed[:half])
        await wait_caught_up(bootstrap, group, run + MD_TRADES)
        # The second half arrives while one instance dies without warning.
        feeding = asyncio.create_task(produce(bootstrap, run + MD_TRADES, feed[half:], pause_every=500))
        await asyncio.sleep(0.5)
        processes[1].send_signal(signal.SIGKILL)
        processes[1].wait()
        await feeding
        after = await wait_for_members(bootstrap, group, 2)
        assert [len(m) for m in after] == [3, 3], after
        await wait_caught_up(bootstrap, group, run + MD_TRADES, timeout=90)
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(timeout=30)

    # The same trades through one in-process instance.
    await produce(bootstrap, reference + MD_TRADES, feed)
    settings = RuntimeSettings(kafka_bootstrap=bootstrap, redis_url=redis_url, topic_prefix=reference)
    config = StrategyConfig(ema_fast=3, ema_slow=8, maker_symbols=())
    single = ServiceRunner(definition(config), settings)
    stop = asyncio.Event()
    task = asyncio.create_task(single.run(stop))
    await wait_caught_up(bootstrap, single.group_id, reference + MD_TRADES, timeout=90)
    stop.set()
    await task

    # The killed instance may have died inside a transaction: wait until the broker aborted it.
    await wait_no_open_transactions(bootstrap, run + ORDERS_INTENTS)
    scaled = intents_by_symbol(await read_topic(bootstrap, run + ORDERS_INTENTS))
    alone = intents_by_symbol(await read_topic(bootstrap, reference + ORDERS_INTENTS))
    assert set(alone) == set(symbols), "every symbol traded"
    assert sum(len(v) for v in alone.values()) > 100
    all_ids = [i.id for v in scaled.values() for i in v]
    if commit_mode() == "transaction":
        assert len(all_ids) == len(set(all_ids)), "no intent duplicated by the kill"
    scaled = {symbol: firsts(intents) for symbol, intents in scaled.items()}
    assert scaled == alone, "three instances and a kill give exactly the single instance's intents"
