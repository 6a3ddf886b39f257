"""Issue 4's figures: tick-to-order latency, accounting replay over >= 1M fills, strategy scaling.

- tick_to_order: the whole local stack (`hean up`'s supervisor: simulator, ingest, strategy, risk,
  execution, accounting) with the simulator's market at about 1k md events/s; the percentiles come
  from execution's hean_tick_to_order_seconds histogram (origin_ts at ingest → REST request sent),
  over the orders after a 15 s warm-up, interpolated within buckets as Prometheus does.
- accounting_replay: 1M OrderFilled events folded without effects by `hean replay accounting`
  (partition groups side by side, services/runtime/parallel.py) and by `--workers 1`, beside a
  raw consume of the same topic, each in a fresh process; the two replays must agree on the hash.
- strategy_scaling: the same trades through 1, then 2 `hean run strategy` processes in one group;
  records/s from the first committed offset to caught up.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from schemas.events import OrderFilled
from schemas.topics import DLQ, MD_BOOK, MD_TRADES, ORDERS_EVENTS, ORDERS_INTENTS, spec
from services.runtime.bus import ensure_topics, make_consumer, partitions_of, send_keyed
from services.runtime.codec import encode
from services.runtime.parallel import default_workers
from services.runtime.settings import RuntimeSettings
from services.supervisor.observe import histogram_quantile
from services.supervisor.stack import StackConfig, run_stack
from services.tally.feed import synthetic_trades

ROOT = Path(__file__).resolve().parents[1]
FILLS = 1_000_000


def _rate(n: float, seconds: float) -> float:
    return round(n / seconds) if seconds > 0 else 0.0


# ---------------------------------------------------------------------- tick to order


HISTOGRAMS = {"order": ("execution", "hean_tick_to_order_seconds"), "signal": ("strategy", "hean_tick_to_emit_seconds"),
              "decision": ("risk", "hean_tick_to_emit_seconds"), "ack": ("execution", "hean_order_ack_seconds")}


GC_WATCHED = ("strategy", "risk")


def _gc(samples: Any) -> tuple[float, float]:
    """Seconds the collector stopped a service so far, and how many of its pauses took over 5 ms."""
    buckets = samples.buckets("hean_gc_pause_seconds")
    total = buckets[-1][1] if buckets else 0.0
    under = max((count for le, count in buckets if le <= 5e-3), default=0.0)
    return samples.total("hean_gc_pause_seconds_sum"), total - under


def _since(end: list[tuple[float, float]], start: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Cumulative buckets of the observations made between two scrapes."""
    before = dict(start)
    return [(le, count - before.get(le, 0.0)) for le, count in end]


async def bench_tick_to_order(settings: RuntimeSettings, seconds: float = 60.0, market_rate: float = 140.0,
                              warmup: float = 15.0, client: str | None = None) -> dict[str, Any]:
    """Steady state: the percentiles cover the orders after `warmup` seconds (start-up, the first
    reconciliation and JIT-cold broker paths are left out), from the difference of two scrapes.
    `client` runs every service on that Kafka client (HEAN_KAFKA_CLIENT), else the default."""
    prefix = f"benchtto{uuid.uuid4().hex[:6]}."
    with tempfile.TemporaryDirectory() as home:
        config = StackConfig(home=Path(home), bootstrap=settings.kafka_bootstrap, redis_url=settings.redis_url,
                             prefix=prefix, symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT"), market_rate=market_rate,
                             recorder=False, extra_env={"HEAN_KAFKA_CLIENT": client} if client else {})
        seen: dict[str, float] = {}
        began = time.monotonic()
        at_warm: dict[str, list[tuple[float, float]]] = {}
        paced_at_warm: list[float] = []
        gc_at_warm: dict[str, tuple[float, float]] = {}

        def note(stack: Any) -> None:
            if time.monotonic() - began < warmup:
                return
            if not at_warm:
                at_warm.update({k: stack.services[s].samples.buckets(m) for k, (s, m) in HISTOGRAMS.items()})
                paced_at_warm.append(stack.services["execution"].samples.total("hean_rest_paced_seconds_total"))
                gc_at_warm.update({name: _gc(stack.services[name].samples) for name in GC_WATCHED})
            md = sum(t.end for t in stack.log.topics if t.name.startswith("md."))
            seen.setdefault("md_start", md)
            seen.setdefault("t_start", time.monotonic())
            seen["md_end"], seen["t_end"] = md, time.monotonic()

        stack, healthy = await run_stack(config, seconds, note)
    steady = {k: _since(stack.services[s].samples.buckets(m), at_warm[k]) for k, (s, m) in HISTOGRAMS.items()}
    execution = stack.services["execution"].samples
    buckets = steady["order"]
    ms = {q: histogram_quantile(q, buckets) for q in (0.5, 0.99, 0.999)}
    orders = buckets[-1][1] if buckets else 0.0  # the +Inf bucket counts every order since the warm-up
    paced = execution.total("hean_rest_paced_seconds_total") - paced_at_warm[0]
    return {
        **({"kafka_client": client} if client else {}),
        "md_events_per_s": _rate(seen["md_end"] - seen["md_start"], seen["t_end"] - seen["t_start"]),
        "steady_seconds": round(seen["t_end"] - seen["t_start"]),
        "orders": int(orders),
        # Time requests waited to stay within the venue's 10 orders/s, per order: part of tick-to-order.
        "rate_limit_wait_per_order_ms": round(paced / orders * 1000, 1) if orders else 0.0,
        "tick_to_order_p50_ms": round(ms[0.5] * 1000, 2) if ms[0.5] is not None else None,
        "tick_to_order_p99_ms": round(ms[0.99] * 1000, 2) if ms[0.99] is not None else None,
        "tick_to_order_p999_ms": round(ms[0.999] * 1000, 2) if ms[0.999] is not None else None,
        # Each hop's share (issue 17 §3): tick → strategy's intent committed → risk's decision
        # committed → execution's request sent (tick_to_order) → the venue's ack; p99 too, so the
        # hop where the tail grows is visible.
        **{f"{name}_{label}_ms": round((histogram_quantile(q, steady[key]) or 0) * 1000, 2)
           for name, key in (("tick_to_signal", "signal"), ("tick_to_decision", "decision"), ("order_ack", "ack"))
           for label, q in (("p50", 0.5), ("p99", 0.99))},
        "venue_rate_limited_answers": int(execution.total("hean_rest_responses_total", ret_code="10006")),
        # Garbage collection in the steady state: total stop time and the pauses over 5 ms, each a
        # candidate for a tail on its hop (issue 17 §3).
        **{f"{name}_gc_{figure}": value for name in GC_WATCHED for figure, value in zip(
            ("ms_total", "pauses_over_5ms"),
            (round((_gc(stack.services[name].samples)[0] - gc_at_warm[name][0]) * 1000, 1),
             int(_gc(stack.services[name].samples)[1] - gc_at_warm[name][1])), strict=True)},
        "stack_healthy": healthy,
    }


async def bench_tick_to_order_by_client(settings: RuntimeSettings, market_rate: float = 20.0) -> dict[str, Any]:
    """The light loop (~200 md events/s) once per Kafka client, in one run: the client's share of
    tick-to-order on the whole stack, beside kafka_hops' bare relays."""
    from services.runtime.bus import KAFKA_CLIENTS

    out: dict[str, Any] = {}
    for client in KAFKA_CLIENTS:
        figures = await bench_tick_to_order(settings, market_rate=market_rate, client=client)
        out.update({f"{client}_{name}": value for name, value in figures.items() if name != "kafka_client"})
    return out


# ---------------------------------------------------------------------- accounting replay


async def time_raw_consume(settings: RuntimeSettings, topic: str, n: int) -> float:
    """Seconds aiokafka alone takes to read the first `n` records of `topic`: the ceiling."""
    consumer = make_consumer(settings.kafka_bootstrap, None)
    await consumer.start()
    try:
        tps = await partitions_of(consumer, [topic])
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        t0 = time.perf_counter()
        seen = 0
        while seen < n:
            batch = await consumer.getmany(timeout_ms=1000, max_records=settings.batch_max_records)
            seen += sum(len(v) for v in batch.values())
        return time.perf_counter() - t0
    finally:
        await consumer.stop()


def fills(n: int) -> list[OrderFilled]:
    """Round trips on three symbols: each fill is exact Decimal money, like the venue's."""
    rng = random.Random(11)
    prices = {"BTCUSDT": 650000, "ETHUSDT": 35000, "SOLUSDT": 15000}  # in ticks of 0.1
    names = list(prices)
    out = []
    for i in range(n):
        symbol = names[i % 3]
        prices[symbol] += rng.randint(-5, 5)
        ts = 1_700_000_000_000_000_000 + i * 1_000_000
        out.append(OrderFilled(id=f"f{i}", ts_event=ts, ts_ingest=ts, origin_ts=ts, account="bench", symbol=symbol,
                               intent_id=f"i{i}", order_link_id=f"h-{i}", order_id=str(i), exec_id=f"e{i}",
                               side="Buy" if rng.random() < 0.5 else "Sell", fill_qty=Decimal(rng.randint(1, 5)) / 100,
                               fill_price=Decimal(prices[symbol]) / 10, fee=Decimal(rng.randint(1, 99)) / 1000,
                               is_maker=bool(i % 2), cum_qty=Decimal("0.05")))
    return out


async def bench_accounting_replay(settings: RuntimeSettings, n: int = FILLS) -> dict[str, Any]:
    prefix = f"benchacct{uuid.uuid4().hex[:6]}."
    await ensure_topics(settings.kafka_bootstrap, [spec(ORDERS_EVENTS), spec("md.tickers"), spec(DLQ)], prefix=prefix)
    topic = prefix + ORDERS_EVENTS
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=True, linger_ms=5,
                                max_batch_size=512 * 1024)
    await producer.start()
    try:
        await send_keyed(producer, ((topic, f.symbol.encode(), encode(f)) for f in fills(n)))
        await producer.flush()
    finally:
        await producer.stop()

    # Each figure in a fresh process, as an operator's `hean replay` runs: a long-lived bench process
    # (a big heap, and a heavy main module that every spawned worker re-imports) is slower at both.
    raw_s = float(_fresh([sys.executable, str(Path(__file__)), "raw-consume", settings.kafka_bootstrap, topic, str(n)]))
    cli = [sys.executable, "-m", "services.cli.main", "replay", "accounting", "--from-beginning", "--json",
           "--topic-prefix", prefix]
    split = orjson.loads(_fresh(cli, HEAN_KAFKA_BOOTSTRAP=settings.kafka_bootstrap))
    one = orjson.loads(_fresh([*cli, "--workers", "1"], HEAN_KAFKA_BOOTSTRAP=settings.kafka_bootstrap))
    if (one["hash"], one["records"]) != (split["hash"], split["records"]):
        raise AssertionError(f"split replay {split['hash']} != one-process replay {one['hash']}")
    raw, folded, single = _rate(n, raw_s), split["events_per_second"], one["events_per_second"]
    return {"fills": split["records"], "raw_consume_per_s": raw, "accounting_replay_per_s": folded,
            "replay_to_raw_consume_ratio": round(folded / raw, 3) if raw else 0.0,
            "replay_workers": default_workers(), "one_process_replay_per_s": single,
            "one_process_to_raw_consume_ratio": round(single / raw, 3) if raw else 0.0,
            "state_hash": split["hash"][:16]}


def _fresh(argv: list[str], **env: str) -> str:
    """Stdout of a command run from the repository root, logs quiet, with `env` added."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HEAN_LOG_LEVEL": "WARNING", "PYTHONPATH": path, **env})
    if done.returncode != 0:
        raise RuntimeError(f"{argv[:5]} failed: {done.stderr[-2000:]}")
    return done.stdout


# ---------------------------------------------------------------------- strategy scaling


async def committed(admin: AIOKafkaAdminClient, group: str, topic: str) -> int:
    """Records of `topic` the group has committed (0 while its coordinator is loading it)."""
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    except Exception:  # the coordinator is still loading the group
        return 0
    return sum(m.offset for tp, m in offsets.items() if tp.topic == topic and m.offset > 0)


async def _strategy_run(settings: RuntimeSettings, instances: int, trades: int) -> dict[str, Any]:
    prefix = f"benchstrat{instances}{uuid.uuid4().hex[:6]}."
    await ensure_topics(settings.kafka_bootstrap, [spec(t) for t in (MD_TRADES, MD_BOOK, ORDERS_EVENTS,
                                                                    ORDERS_INTENTS, DLQ)], prefix=prefix)
    topic = prefix + MD_TRADES
    symbols = {f"S{i}USDT": (Decimal("100.0"), Decimal("0.1")) for i in range(12)}
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=True, linger_ms=5,
                                max_batch_size=512 * 1024)
    await producer.start()
    await send_keyed(producer, ((topic, t.symbol.encode(), encode(t)) for t in synthetic_trades(trades, seed=9,
                                                                                                 symbols=symbols)))
    await producer.flush()
    await producer.stop()
    consumer = make_consumer(settings.kafka_bootstrap, None)
    await consumer.start()
    tps = await partitions_of(consumer, [topic])
    ends = await consumer.end_offsets(tps)
    await consumer.stop()
    total = sum(ends.values())
    used = sum(1 for tp in tps if ends[TopicPartition(tp.topic, tp.partition)] > 0)
    env = {**os.environ, "HEAN_KAFKA_BOOTSTRAP": settings.kafka_bootstrap, "HEAN_REDIS_URL": settings.redis_url,
           "STRATEGY_MAKER_SYMBOLS": "[]", "STRATEGY_EMA_FAST": "5", "STRATEGY_EMA_SLOW": "20",
           "HEAN_LOG_LEVEL": "WARNING", "HEAN_SNAPSHOT_EVERY_SECONDS": "5"}
    processes = [subprocess.Popen([sys.executable, "-m", "services.cli.main", "run", "strategy", "--instance", str(i),
                                   "--topic-prefix", prefix], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL) for i in range(instances)]
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    group = f"{prefix}hean.strategy"
    try:
        start_at, start_offset = None, 0
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            done = await committed(admin, group, topic)
            if start_at is None and done > 0:
                start_at, start_offset = time.perf_counter(), done
            if done >= total:
                break
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - (start_at or time.perf_counter())
    finally:
        await admin.close()
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
    return {"records_per_s": _rate(total - start_offset, elapsed), "partitions_used": used, "records": total}


async def bench_strategy_scaling(settings: RuntimeSettings, trades: int = 300_000) -> dict[str, Any]:
    one = await _strategy_run(settings, 1, trades)
    two = await _strategy_run(settings, 2, trades)
    return {"trades": one["records"], "partitions_used": one["partitions_used"],
            "one_instance_per_s": one["records_per_s"], "two_instances_per_s": two["records_per_s"],
            "speedup": round(two["records_per_s"] / one["records_per_s"], 2) if one["records_per_s"] else 0.0,
            "cpus": os.cpu_count()}


if __name__ == "__main__":  # `python bench/trading.py raw-consume BOOTSTRAP TOPIC N`: seconds, in a fresh process
    if sys.argv[1:2] != ["raw-consume"] or len(sys.argv) != 5:
        raise SystemExit("usage: trading.py raw-consume BOOTSTRAP TOPIC N")
    _bootstrap, _topic, _n = sys.argv[2], sys.argv[3], int(sys.argv[4])
    print(asyncio.run(time_raw_consume(RuntimeSettings(kafka_bootstrap=_bootstrap), _topic, _n)))
