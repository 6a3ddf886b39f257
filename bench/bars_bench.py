"""What the faust bars app costs: md.trades events/s through services/bars (faust-streaming,
exactly_once) against the tally service on HEAN's own runtime (consume → decode → fold → produce →
commit in transactions) over the same trades, in the same run.

faust is timed from its first committed input offset to the last, the runtime from its first
record applied to its last offset committed, so start-up (group join, table recovery) is left out
of both.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid

import msgspec

from schemas.topics import DEMO_TALLIES, DEMO_TRADES, DLQ, MD_BARS, MD_TRADES, spec
from services.runtime.bus import ensure_topics, group_offsets, make_admin, make_producer, send_keyed
from services.runtime.codec import encode
from services.runtime.run import ServiceRunner
from services.runtime.settings import RuntimeSettings
from services.tally.feed import synthetic_trades
from services.tally.shell import DEFINITION


async def _committed(admin: object, group: str, topic: str) -> int:
    return sum(m.offset for tp, m in (await group_offsets(admin, group)).items() if tp.topic == topic and m.offset > 0)


async def _time_group(admin: object, group: str, topic: str, n: int, alive: object, timeout: float = 600) -> float:
    """Seconds from the group's first committed offset on `topic` to all `n` records committed."""
    deadline = time.monotonic() + timeout
    while await _committed(admin, group, topic) == 0:
        if not alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{group} committed nothing on {topic}")
        await asyncio.sleep(0.02)
    started = time.perf_counter()
    while await _committed(admin, group, topic) < n:
        if not alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{group} stopped before committing {n} records of {topic}")
        await asyncio.sleep(0.05)
    return time.perf_counter() - started


async def bench_bars(settings: RuntimeSettings, n: int = 2_000) -> dict[str, float]:
    prefix = f"benchbars{uuid.uuid4().hex[:6]}."
    await ensure_topics(settings.kafka_bootstrap, [spec(t) for t in (MD_TRADES, MD_BARS, DLQ, DEMO_TRADES,
                                                                     DEMO_TALLIES)], prefix=prefix)
    trades = list(synthetic_trades(n, seed=9))
    producer = make_producer(settings.kafka_bootstrap)
    await producer.start()
    for topic in (MD_TRADES, DEMO_TRADES):
        await send_keyed(producer, ((prefix + topic, t.symbol.encode(), encode(t)) for t in trades))
    await producer.flush()
    await producer.stop()
    admin = make_admin(settings.kafka_bootstrap)
    await admin.start()
    try:
        env = {**os.environ, "HEAN_KAFKA_BOOTSTRAP": settings.kafka_bootstrap, "HEAN_TOPIC_PREFIX": prefix}
        proc = subprocess.Popen([sys.executable, "-m", "services.bars"], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            faust_s = await _time_group(admin, f"{prefix}hean.bars", prefix + MD_TRADES, n, lambda: proc.poll() is None)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        runner = ServiceRunner(DEFINITION, msgspec.structs.replace(settings, topic_prefix=prefix))
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))
        try:  # from its first record applied: it commits in transactions, often one for the whole input
            applied = runner.metrics.events_in.labels(DEFINITION.name, prefix + DEMO_TRADES)
            while applied._value.get() == 0 and not task.done():
                await asyncio.sleep(0.001)
            started = time.perf_counter()
            while await _committed(admin, f"{prefix}hean.{DEFINITION.name}", prefix + DEMO_TRADES) < n:
                if task.done():
                    task.result()
                await asyncio.sleep(0.005)
            runtime_s = time.perf_counter() - started
        finally:
            stop.set()
            await task
    finally:
        await admin.close()
    faust_rate, runtime_rate = n / faust_s, n / runtime_s
    return {"trades": n, "faust_bars_events_per_s": round(faust_rate),
            "runtime_tally_events_per_s": round(runtime_rate),
            "faust_to_runtime_ratio": round(faust_rate / runtime_rate, 3)}
