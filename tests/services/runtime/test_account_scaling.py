"""Scaling by account, shown for risk and accounting: two `hean run` processes, one per account
(HEAN_ACCOUNTS), share the topics; one is SIGKILLed mid-stream and restarted from its snapshot.
Their outputs, record for record, and their joined state (`hean state`) equal those of one
instance serving both accounts, and `hean replay` of the log.

The inputs of each service sit in one partition (symbols chosen by the partitioner), so the one
instance and the two see every input in the same order and their outputs must agree exactly.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiokafka.partitioner import murmur2

from schemas.events import BookSnapshotReceived, OrderFilled, SubmitOrder, TickerUpdated
from schemas.topics import (
    ACCOUNTING_POSITIONS,
    CONTROL,
    DLQ,
    MD_BOOK,
    MD_TICKERS,
    ORDERS_DECISIONS,
    ORDERS_EVENTS,
    ORDERS_INTENTS,
    REF_INSTRUMENTS,
)
from services.registry import definition
from services.runtime.bus import make_producer, send_and_wait
from services.runtime.codec import decode, encode
from services.runtime.run import ServiceRunner
from services.runtime.settings import RuntimeSettings
from services.runtime.snapshot import SnapshotStore
from tests.conftest import create_topics, read_topic, wait_consumed, wait_no_open_transactions
from tests.samples import instrument_defined

pytestmark = pytest.mark.integration
D = Decimal
ACCOUNTS = ("acc-a", "acc-b")
OUTPUT = {"risk": ORDERS_DECISIONS, "accounting": ACCOUNTING_POSITIONS}
INPUTS = {"risk": (ORDERS_INTENTS, ORDERS_DECISIONS, ORDERS_EVENTS, MD_BOOK, MD_TICKERS, ACCOUNTING_POSITIONS,
                  CONTROL, REF_INSTRUMENTS),
          "accounting": (ORDERS_EVENTS, MD_TICKERS)}
FEED_TOPIC = {"risk": ORDERS_INTENTS, "accounting": ORDERS_EVENTS}


def same_partition_symbols(count: int, partitions: int = 6) -> list[str]:
    found: list[str] = []
    n = 0
    while len(found) < count:
        name = f"P{n}USDT"
        if (murmur2(name.encode()) & 0x7FFFFFFF) % partitions == 0:
            found.append(name)
        n += 1
    return found


def risk_feed() -> tuple[list[tuple[str, str, Any]], list[tuple[str, str, Any]]]:
    """A book first (the price band needs a mid), then intents of both accounts, interleaved:
    most pass, the large ones break max_notional, bursts run into the rate limit."""
    symbol = "BTCUSDT"  # its rules come first, on ref.instruments
    book = BookSnapshotReceived(id="book", ts_event=1, ts_ingest=1, symbol=symbol, depth=50, update_id=1, seq=1,
                                bids=[(D("64999.9"), D(10))], asks=[(D("65000.1"), D(10))],
                                best_bid=(D("64999.9"), D(10)), best_ask=(D("65000.1"), D(10)))
    rng = random.Random(3)
    intents = []
    ts = 1_000_000_000
    for n in range(160):
        account = ACCOUNTS[rng.randrange(2)]
        qty = D("5.000") if n % 9 == 0 else D(rng.randrange(1, 20)) / 1000
        ts += rng.choice((1_000_000, 50_000_000, 300_000_000))  # event time moves on, in bursts
        intents.append((ORDERS_INTENTS, symbol, SubmitOrder(
            id=f"i{n}", ts_event=ts, ts_ingest=ts, account=account, strategy="s", symbol=symbol,
            side=rng.choice(("Buy", "Sell")), order_type="Limit", qty=qty, price=D("65000.0"))))
    return [(REF_INSTRUMENTS, symbol, instrument_defined(symbol)), (MD_BOOK, symbol, book)], intents


def accounting_feed() -> tuple[list[tuple[str, str, Any]], list[tuple[str, str, Any]]]:
    """Marks of two symbols first (outputs value positions at the mark, and marks come on another
    topic, whose interleaving with the fills no instance controls), then fills of both accounts."""
    symbols = same_partition_symbols(2)
    rng = random.Random(4)
    marks = [(MD_TICKERS, s, TickerUpdated(id=f"k{s}", ts_event=1, ts_ingest=1, symbol=s, last_price=D("100.5"),
                                           mark_price=D("100.5"))) for s in symbols]
    fills: list[tuple[str, str, Any]] = []
    for n in range(240):
        symbol, account = symbols[n % 2], ACCOUNTS[rng.randrange(2)]
        qty = D(rng.randrange(1, 30)) / 100
        fills.append((ORDERS_EVENTS, symbol, OrderFilled(
            id=f"f{n}", ts_event=n, ts_ingest=n, account=account, symbol=symbol, intent_id=f"i{n}",
            order_link_id=f"h-i{n}", order_id=f"o{n}", exec_id=f"x{n}", side=rng.choice(("Buy", "Sell")),
            fill_qty=qty, fill_price=D(rng.randrange(900, 1100)) / 10, fee=D("0.01"), is_maker=False,
            cum_qty=qty)))
    return marks, fills


async def produce(bootstrap: str, prefix: str, records: list[tuple[str, str, Any]], pause_every: int = 0) -> None:
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        for start in range(0, len(records), pause_every or len(records) or 1):
            chunk = records[start:start + (pause_every or len(records))]
            await send_and_wait(producer, [(prefix + t, k.encode(), encode(e)) for t, k, e in chunk])
            if pause_every:
                await asyncio.sleep(0.05)
    finally:
        await producer.stop()


async def wait_snapshot(redis_url: str, prefix: str, scope: str, after_ns: int, timeout: float = 60) -> None:
    """Until `scope` has saved a snapshot taken after `after_ns` (it assigned its inputs and runs)."""
    store = SnapshotStore(redis_url, namespace=f"hean:{prefix}")
    deadline = time.monotonic() + timeout
    try:
        while (snapshot := await store.load(scope, 0)) is None or snapshot.taken_at_ns <= after_ns:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{scope} saved no snapshot within {timeout} s of its restart")
            await asyncio.sleep(0.1)
    finally:
        await store.close()


def cli(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "services.cli.main", *args, "--json"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return msgspec.json.decode(done.stdout.strip().splitlines()[-1])


def outputs(records: list[Any]) -> list[dict[str, Any]]:
    """Output events as plain data, in log order (one partition: one order)."""
    return [msgspec.to_builtins(decode(r.value)) for r in records]


def firsts(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first event of each id, in log order; every later one must be an equal copy (the
    idempotent commit mode may repeat an output after a kill, docs/COMMITS.md)."""
    first: dict[str, dict[str, Any]] = {}
    for event in events:
        assert first.setdefault(event["id"], event) == event, f"{event['id']} repeated with other content"
    return list(first.values())


@pytest.mark.parametrize("service", ["risk", "accounting"])
async def test_one_instance_per_account_equals_one_for_all(service: str, bootstrap: str, redis_url: str,
                                                           tmp_path: Path) -> None:
    tag = f"{os.getpid()}{random.randrange(10**6)}"
    run, reference = f"acct{tag}.", f"accref{tag}."
    for p in (run, reference):
        await create_topics(bootstrap, p, (*INPUTS[service], OUTPUT[service], DLQ))
    first, feed = risk_feed() if service == "risk" else accounting_feed()
    half = len(feed) // 2
    env = {**os.environ, "HEAN_KAFKA_BOOTSTRAP": bootstrap, "HEAN_REDIS_URL": redis_url,
           "HEAN_SNAPSHOT_EVERY_SECONDS": "0.3", "HEAN_SESSION_TIMEOUT_MS": "3000", "HEAN_LOG_LEVEL": "WARNING",
           "HEAN_TOPIC_PREFIX": run}

    def start(account: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "services.cli.main", "run", service, "--instance", account],
                                env={**env, "HEAN_ACCOUNTS": account}, stdout=subprocess.DEVNULL,
                                stderr=(tmp_path / f"{service}-{account}.log").open("ab"))

    groups = [f"{run}hean.{service}@{a}" for a in ACCOUNTS]
    feed_topic = run + FEED_TOPIC[service]
    processes = {a: start(a) for a in ACCOUNTS}
    try:
        await produce(bootstrap, run, first)
        await asyncio.sleep(1.0)  # the market before the first order (separate topics)
        await produce(bootstrap, run, feed[:half])
        for group in groups:
            await wait_consumed(bootstrap, group, feed_topic)
        feeding = asyncio.create_task(produce(bootstrap, run, feed[half:], pause_every=10))
        await asyncio.sleep(0.4)
        processes["acc-a"].send_signal(signal.SIGKILL)  # mid-stream, without warning
        processes["acc-a"].wait()
        await feeding
        restarted_at = time.time_ns()
        processes["acc-a"] = start("acc-a")  # its accounts wait for it; it recovers from its snapshot
        # Running, not only started: with nothing left to apply (the killed one had committed it
        # all) the groups look consumed at once, and a SIGTERM while it imports leaves no snapshot.
        await wait_snapshot(redis_url, run, f"{service}@acc-a", restarted_at)
        for group in groups:
            await wait_consumed(bootstrap, group, feed_topic, timeout=90)
        if service == "risk":  # its own decisions are an input too: read back before the state is taken
            for group in groups:
                await wait_consumed(bootstrap, group, run + ORDERS_DECISIONS, timeout=90)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            process.wait(timeout=30)

    settings = RuntimeSettings(kafka_bootstrap=bootstrap, redis_url=redis_url, topic_prefix=reference)
    single = ServiceRunner(definition(service), settings)
    stop = asyncio.Event()
    task = asyncio.create_task(single.run(stop))
    await produce(bootstrap, reference, first)
    await asyncio.sleep(1.0)
    await produce(bootstrap, reference, feed)
    await wait_consumed(bootstrap, single.group_id, reference + FEED_TOPIC[service], timeout=90)
    if service == "risk":
        await wait_consumed(bootstrap, single.group_id, reference + ORDERS_DECISIONS, timeout=90)
    stop.set()
    await task

    await wait_no_open_transactions(bootstrap, run + OUTPUT[service])
    scaled = outputs(await read_topic(bootstrap, run + OUTPUT[service]))
    alone = outputs(await read_topic(bootstrap, reference + OUTPUT[service]))
    assert len(alone) > 100, "enough outputs to prove anything"
    if (os.environ.get("HEAN_COMMIT_MODE") or definition(service).commit_mode) == "transaction":
        assert len({o["id"] for o in scaled}) == len(scaled), "no output duplicated by the kill"
    scaled = firsts(scaled)
    for account in ACCOUNTS:
        mine = [o for o in scaled if (o.get("intent") or o).get("account") == account]
        assert mine == [o for o in alone if (o.get("intent") or o).get("account") == account], account
    assert sorted(o["id"] for o in scaled) == sorted(o["id"] for o in alone)
    if service == "risk":
        rules = {o.get("rule") for o in alone}
        assert {None, "max_notional"} <= rules, f"approvals and rejections both: {rules}"

    joined = cli(["state", service, "--topic-prefix", run], env)
    rebuilt = cli(["replay", service, "--from-beginning", "--topic-prefix", run], env)
    assert set(joined["shards"]) == {f"{service}@{a}:0" for a in ACCOUNTS}
    assert joined["hash"] == single.state_hash() == rebuilt["hash"], "two instances hold what one does"
