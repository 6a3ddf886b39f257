"""Risk and accounting scaled by account (HEAN_ACCOUNTS): one instance for both accounts against one
instance per account, over the same log, each a `hean run` process as in production; ingest scaled
by symbol set: one instance for both symbols against one per symbol (`bench_ingest_scaling`).
Execution has no such figure: its extra instances are standbys on the account's lease and add no
throughput (an account's orders go through its one active executor).

An instance per account still reads every record (the topics are keyed by symbol) and applies
only its account's and the market's, so the figure shows what splitting the apply cost buys
on this machine: records of the input topic per second until every instance has committed all.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from aiokafka.admin import AIOKafkaAdminClient
from trading import committed  # bench/trading.py, a sibling module when run as bench/run.py

from schemas.events import OrderFilled, SubmitOrder
from schemas.topics import (
    ACCOUNTING_POSITIONS,
    CONTROL,
    DLQ,
    MD_BOOK,
    MD_TICKERS,
    MD_TRADES,
    ORDERS_DECISIONS,
    ORDERS_EVENTS,
    ORDERS_INTENTS,
    spec,
)
from services.runtime.bus import ensure_topics, make_producer, send_and_wait
from services.runtime.codec import encode
from services.runtime.settings import RuntimeSettings

ROOT = Path(__file__).resolve().parents[1]
ACCOUNTS = ("acc-a", "acc-b")
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
TOPICS = {"risk": (ORDERS_INTENTS, ORDERS_DECISIONS, ORDERS_EVENTS, MD_BOOK, ACCOUNTING_POSITIONS, CONTROL, DLQ),
          "accounting": (ORDERS_EVENTS, MD_TICKERS, ACCOUNTING_POSITIONS, DLQ)}
FEED = {"risk": ORDERS_INTENTS, "accounting": ORDERS_EVENTS}
JOIN_SECONDS = 8.0


def _feed(service: str, n: int) -> list[tuple[str, bytes, bytes]]:
    """n intents (risk) or fills (accounting) of both accounts, spread over the symbols."""
    out = []
    prices = {"BTCUSDT": Decimal("65000.0"), "ETHUSDT": Decimal("3200.00"), "SOLUSDT": Decimal("150.000")}
    for i in range(n):
        symbol, account, ts = SYMBOLS[i % 3], ACCOUNTS[(i // 3) % 2], 1_700_000_000_000_000_000 + i * 1_000_000
        if service == "risk":
            event: Any = SubmitOrder(id=f"b{i}", ts_event=ts, ts_ingest=ts, account=account, strategy="bench",
                                     symbol=symbol, side="Buy" if i % 2 else "Sell", order_type="Limit",
                                     qty=Decimal("0.001") if symbol == "BTCUSDT" else Decimal("0.01"),
                                     price=prices[symbol])
        else:
            event = OrderFilled(id=f"f{i}", ts_event=ts, ts_ingest=ts, account=account, symbol=symbol,
                                intent_id=f"i{i}", order_link_id=f"h-i{i}", order_id=f"o{i}", exec_id=f"x{i}",
                                side="Buy" if i % 2 else "Sell", fill_qty=Decimal("0.01"), fill_price=prices[symbol],
                                fee=Decimal("0.01"), is_maker=False, cum_qty=Decimal("0.01"))
        out.append((FEED[service], symbol.encode(), encode(event)))
    return out


async def _run(settings: RuntimeSettings, service: str, per_account: bool, feed: list[tuple[str, bytes, bytes]],
               ) -> float:
    """Records/s of the feed topic through one instance, or one instance per account: the
    instances start and join first, then the feed is produced, and the clock runs from its first
    record until every instance has committed the last."""
    prefix = f"benchacct{service[:4]}{int(per_account)}{uuid.uuid4().hex[:6]}."
    await ensure_topics(settings.kafka_bootstrap, [spec(t) for t in TOPICS[service]], prefix=prefix)
    scopes = [(a, f"{prefix}hean.{service}@{a}") for a in ACCOUNTS] if per_account \
        else [("", f"{prefix}hean.{service}")]
    env = {**os.environ, "HEAN_KAFKA_BOOTSTRAP": settings.kafka_bootstrap, "HEAN_REDIS_URL": settings.redis_url,
           "HEAN_LOG_LEVEL": "WARNING", "HEAN_SNAPSHOT_EVERY_SECONDS": "5", "HEAN_TOPIC_PREFIX": prefix,
           "RISK_RATE_PER_SECOND": "1000000", "RISK_MAX_OPEN_ORDERS": "100000000",
           "RISK_MAX_POSITION_NOTIONAL": "1e15", "RISK_MAX_GROSS_EXPOSURE": "1e15"}
    processes = [subprocess.Popen([sys.executable, "-m", "services.cli.main", "run", service, "--instance",
                                   account or "0"], env={**env, "HEAN_ACCOUNTS": account}, cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for account, _ in scopes]
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    topic, total = prefix + FEED[service], len(feed)
    producer = make_producer(settings.kafka_bootstrap)
    await producer.start()
    try:
        await asyncio.sleep(JOIN_SECONDS)  # imports, group joins, recovery: not part of the figure
        started = time.perf_counter()
        for start in range(0, len(feed), 5_000):
            await send_and_wait(producer, [(prefix + t, k, v) for t, k, v in feed[start:start + 5_000]])
        deadline = time.monotonic() + 600
        while min([await committed(admin, group, topic) for _, group in scopes]) < total:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{service}: {scopes} did not consume {total} records in 600 s")
            await asyncio.sleep(0.02)
        elapsed = time.perf_counter() - started
    finally:
        await producer.stop()
        await admin.close()
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
    return round(total / elapsed)


async def bench_account_scaling(settings: RuntimeSettings, fills: int = 100_000,
                                intents: int = 10_000) -> dict[str, Any]:
    """Fewer intents than fills: every approved intent stays working here (no fills come back), and
    risk's per-account state of working orders grows with each one."""
    figures: dict[str, Any] = {"fills": fills, "intents": intents, "accounts": len(ACCOUNTS), "cpus": os.cpu_count()}
    for service in ("accounting", "risk"):
        feed = _feed(service, fills if service == "accounting" else intents)
        one = await _run(settings, service, False, feed)
        two = await _run(settings, service, True, feed)
        figures[f"{service}_one_instance_per_s"] = one
        figures[f"{service}_instance_per_account_per_s"] = two
        figures[f"{service}_speedup"] = round(two / one, 2) if one else 0.0
    return figures


INGEST_SYMBOLS = ("BTCUSDT", "ETHUSDT")  # two, so two instances split the frames evenly
REPLAY_DELAY_MS = 8_000  # every frame is due this long after the first subscription: all instances are on


async def _md_total(consumer: Any, tps: list[Any]) -> int:
    return sum((await consumer.end_offsets(tps)).values())


async def _ingest_run(settings: RuntimeSettings, replay: Path, instances: int) -> tuple[int, float]:
    """(events into md.*, events/s) of `instances` `hean run ingest` processes splitting the symbols,
    fed by one simulator replaying `replay` at full speed. The clock runs from the first replayed
    md.* record to the last (the end offsets stop moving for two seconds)."""
    from services.runtime.bus import make_consumer, partitions_of
    from services.supervisor.stack import free_port

    prefix = f"benchingest{instances}{uuid.uuid4().hex[:6]}."
    await ensure_topics(settings.kafka_bootstrap, prefix=prefix)
    port = free_port()
    env = {**os.environ, "HEAN_KAFKA_BOOTSTRAP": settings.kafka_bootstrap, "HEAN_TOPIC_PREFIX": prefix,
           "HEAN_LOG_LEVEL": "WARNING"}
    sim = subprocess.Popen([sys.executable, "-m", "services.cli.main", "run", "exchange-sim"], cwd=ROOT, env={
        **env, "EXCHANGE_SIM_PORT": str(port), "EXCHANGE_SIM_REST_PORT": "0", "EXCHANGE_SIM_REPLAY_FILE": str(replay),
        "EXCHANGE_SIM_SYMBOLS": ",".join(INGEST_SYMBOLS)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    processes = [subprocess.Popen(
        [sys.executable, "-m", "services.cli.main", "run", "ingest", "--instance", str(i), "--metrics-port", "0"],
        cwd=ROOT, env={**env, "INGEST_URL": f"ws://127.0.0.1:{port}/v5/public/linear", "INGEST_STALE_AFTER": "60",
                       "INGEST_SYMBOLS": ",".join(INGEST_SYMBOLS[i::instances])},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(instances)]
    consumer = make_consumer(settings.kafka_bootstrap, None)
    await consumer.start()
    try:
        tps = await partitions_of(consumer, [prefix + t for t in (MD_TRADES, MD_BOOK, MD_TICKERS)])
        deadline = time.monotonic() + 120
        # The venue answers each subscription with a book and a ticker snapshot of its own at once;
        # the replayed frames follow REPLAY_DELAY_MS later, and the clock starts with them.
        answered = 2 * len(INGEST_SYMBOLS)
        while (total := await _md_total(consumer, tps)) <= answered:
            if time.monotonic() > deadline or any(p.poll() is not None for p in (sim, *processes)):
                raise RuntimeError("ingest published nothing: did the simulator and every instance start?")
            await asyncio.sleep(0.005)
        started = last_change = time.perf_counter()
        at_start = total
        while time.perf_counter() - last_change < 2.0:
            await asyncio.sleep(0.02)
            now = await _md_total(consumer, tps)
            if now != total:
                total, last_change = now, time.perf_counter()
    finally:
        await consumer.stop()
        for process in (*processes, sim):
            process.terminate()
        for process in (*processes, sim):
            process.wait(timeout=30)
    return total, round((total - at_start) / max(last_change - started, 1e-9))


async def bench_ingest_scaling(settings: RuntimeSettings, steps: int = 30_000) -> dict[str, Any]:
    """Ingest scaled by symbol set: one instance for both symbols against one instance per symbol,
    over the same replayed frames (so both must publish the same number of events)."""
    from services.exchange_sim.record import write_replay_file

    with tempfile.TemporaryDirectory() as tmp:
        replay = Path(tmp) / "frames.jsonl"
        frames = write_replay_file(replay, steps, symbols=INGEST_SYMBOLS)
        lines = [orjson.loads(line) for line in replay.read_bytes().splitlines()]
        replay.write_bytes(b"".join(orjson.dumps({**line, "t": REPLAY_DELAY_MS}) + b"\n" for line in lines))
        one_events, one = await _ingest_run(settings, replay, 1)
        two_events, two = await _ingest_run(settings, replay, 2)
    if one_events != two_events:
        raise RuntimeError(f"one instance published {one_events} events, two {two_events}: not the same frames")
    return {"frames": frames, "events": one_events, "symbols": len(INGEST_SYMBOLS), "cpus": os.cpu_count(),
            "ingest_one_instance_events_per_s": one, "ingest_two_instances_events_per_s": two,
            "ingest_speedup": round(two / one, 2) if one else 0.0,
            "execution_note": "no 1-vs-2 figure: a second executor of an account is a standby on its lease "
                              "and adds no throughput"}
