"""`make bench`: HEAN's speed figures, written to bench/results/latest.json (+ latest.md).

Measures, in one run on this machine against the local broker:
  codec      encode, decode+validate (events/s), msgspec vs msgpack-python, plus format variants
  kafka raw  aiokafka produce (per-message send, and HEAN's batched send_keyed) and consume
             (events/s): the ceiling
  runtime    the tally service end to end (consume → decode → step → produce → commit, in
             transactions) and its ratio to raw consume
  replay     the tally fold from the beginning, no effects (events/s)
  book, ingest, recorder   market-data figures (bench/marketdata.py)
  tick_to_order, accounting_replay, strategy_scaling   trading-loop figures (bench/trading.py)
  account_scaling   risk and accounting: one instance vs one per account (bench/scaling.py)
  ingest_scaling    ingest: one instance vs one per symbol, events/s into md.* (bench/scaling.py;
                    execution has no such figure: its extra instances are standbys)
  storage    bytes per trade row, candle query times over 1M trades (bench/recorder_bench.py)
  recorder_speed   the recorder end to end from the topic vs a bare insert of the same rows (same file)
  bars       the faust bars app's events/s against the tally service on the runtime (bench/bars_bench.py)
  kafka_hops   the floor under tick-to-order: relays that only consume and re-produce (bench/hops.py),
               with each Kafka client
  tick_to_order_by_client  the light loop once per Kafka client (aiokafka, confluent)
  backtest   the backtester's ticks/s (EMA cross, 1M trades) vs NautilusTrader's EMA cross example on the
             same trades, same run (bench/backtest_bench.py; Nautilus in bench/.venv-nautilus)
"""

from __future__ import annotations

import asyncio
import json
import platform
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import msgpack
import msgspec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import backtest_bench  # noqa: E402  (bench/backtest_bench.py: HEAN's backtester vs NautilusTrader)
import bars_bench  # noqa: E402  (bench/bars_bench.py: the faust bars app against the plain runtime)
import hops  # noqa: E402  (bench/hops.py: the Kafka-hop floor under tick-to-order)
import marketdata  # noqa: E402  (bench/marketdata.py: issue 3's figures)
import recorder_bench  # noqa: E402  (bench/recorder_bench.py: bytes per trade row, candle query times)
import requotes  # noqa: E402  (bench/requotes.py: the maker's venue requests, cancel + new vs amend)
import scaling  # noqa: E402  (bench/scaling.py: risk and accounting, one instance vs one per account)
import trading  # noqa: E402  (bench/trading.py: issue 4's figures)
from aiokafka import AIOKafkaProducer  # noqa: E402

from schemas.events import TradeReceived  # noqa: E402
from schemas.topics import DEMO_TALLIES, DEMO_TRADES, DLQ, spec  # noqa: E402
from services.runtime.bus import delete_topics_with, ensure_topics, send_keyed  # noqa: E402
from services.runtime.codec import decode, encode  # noqa: E402
from services.runtime.run import ServiceRunner, replay  # noqa: E402
from services.runtime.service import StartFrom  # noqa: E402
from services.runtime.settings import RuntimeSettings, load_settings  # noqa: E402
from services.tally.feed import synthetic_trades  # noqa: E402
from services.tally.shell import DEFINITION  # noqa: E402

RESULTS = ROOT / "bench" / "results"
SCRATCH_PREFIX = "bench"  # every benchmark topic is named bench…; they are deleted after a run
KAFKA_EVENTS = 200_000


def rate(n: int, seconds: float) -> float:
    return round(n / seconds) if seconds > 0 else 0.0


def best_of(fn: Any, n: int, repeat: int = 3) -> float:
    """Events/s of the best of `repeat` runs of `fn(n)` (the least disturbed by the other core)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(n)
        times.append(time.perf_counter() - t0)
    return rate(n, min(times))


def bench_codec() -> dict[str, float]:
    trade = next(synthetic_trades(1, seed=1))
    data = encode(trade)
    as_dict = msgspec.to_builtins(trade)
    packed = msgpack.packb(as_dict)
    n = 200_000

    def loop_encode(k: int) -> None:
        for _ in range(k):
            encode(trade)

    def loop_decode(k: int) -> None:
        for _ in range(k):
            decode(data)

    def loop_msgpack_encode(k: int) -> None:
        for _ in range(k):
            msgpack.packb(msgspec.to_builtins(trade))

    def loop_msgpack_decode(k: int) -> None:
        for _ in range(k):
            msgspec.convert(msgpack.unpackb(packed), TradeReceived)

    out = {
        "msgspec_encode_per_s": best_of(loop_encode, n),
        "msgspec_decode_validate_per_s": best_of(loop_decode, n),
        "msgpack_python_encode_per_s": best_of(loop_msgpack_encode, n),
        "msgpack_python_decode_validate_per_s": best_of(loop_msgpack_decode, n),
        "trade_bytes": len(data),
    }
    out.update(_format_variants(n))
    return out


def _format_variants(n: int) -> dict[str, float]:
    """Decode+validate of the same trade in other layouts, to show what the chosen one costs."""
    results = {}
    for array_like in (False, True):
        for money in (Decimal, int):
            class Base(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", array_like=array_like):
                id: str
                version: int = 1
                ts_event: int
                ts_ingest: int
                origin_ts: int = 0

            trade_type = msgspec.defstruct(
                "Trade",
                [("venue", str, "bybit"), ("category", str, "linear"), ("symbol", str), ("trade_id", str),
                 ("side", Literal["Buy", "Sell"]), ("price", money), ("qty", money)],
                bases=(Base,), tag="md.trade", frozen=True, kw_only=True,
            )
            p, q = (Decimal("65000.1"), Decimal("0.123")) if money is Decimal else (6500010, 123)
            t = trade_type(id="a" * 32, ts_event=1, ts_ingest=2, origin_ts=3, symbol="BTCUSDT", trade_id="1-1",
                      side="Buy", price=p, qty=q)
            raw = msgspec.msgpack.encode(t)
            decoder = msgspec.msgpack.Decoder(trade_type)

            def loop(k: int, decoder: Any = decoder, raw: bytes = raw) -> None:
                for _ in range(k):
                    decoder.decode(raw)

            layout = "array" if array_like else "map"
            results[f"variant_{layout}_{money.__name__.lower()}_decode_per_s"] = best_of(loop, n)
    return results


async def bench_kafka(settings: RuntimeSettings) -> dict[str, float]:
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    await ensure_topics(settings.kafka_bootstrap, [spec(DEMO_TRADES), spec(DEMO_TALLIES), spec(DLQ)], prefix=prefix)
    topic = prefix + DEMO_TRADES
    trades = list(synthetic_trades(KAFKA_EVENTS, seed=3))
    payloads = [(t.symbol.encode(), encode(t)) for t in trades]

    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=True, linger_ms=5,
                                max_batch_size=512 * 1024)
    await producer.start()
    t0 = time.perf_counter()
    for key, value in payloads:
        await producer.send(topic, value, key=key)
    await producer.flush()
    produce_s = time.perf_counter() - t0
    batched_topic = prefix + DEMO_TALLIES
    t0 = time.perf_counter()
    await send_keyed(producer, ((batched_topic, key, value) for key, value in payloads))
    await producer.flush()
    produce_batched_s = time.perf_counter() - t0
    await producer.stop()

    consume_s = await trading.time_raw_consume(settings, topic, KAFKA_EVENTS)

    # The runtime: the tally service over the same input, timed from its first record to caught up.
    bench_settings = msgspec.structs.replace(settings, topic_prefix=prefix, snapshot_every_events=50_000,
                                             snapshot_every_seconds=5.0)
    runner = ServiceRunner(DEFINITION, bench_settings)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    counter = runner.metrics.events_in.labels("tally", topic)
    while counter._value.get() == 0:
        await asyncio.sleep(0.001)
    t0 = time.perf_counter()
    while counter._value.get() < KAFKA_EVENTS:
        await asyncio.sleep(0.002)
        if task.done():
            task.result()
    runtime_s = time.perf_counter() - t0
    stop.set()
    await task

    result = await replay(DEFINITION, bench_settings, StartFrom("beginning"))
    raw_consume = rate(KAFKA_EVENTS, consume_s)
    runtime = rate(KAFKA_EVENTS, runtime_s)
    return {
        "events": KAFKA_EVENTS,
        "raw_produce_per_s": rate(KAFKA_EVENTS, produce_s),
        "raw_produce_batched_per_s": rate(KAFKA_EVENTS, produce_batched_s),
        "raw_consume_per_s": raw_consume,
        "runtime_tally_per_s": runtime,
        "runtime_to_raw_consume_ratio": round(runtime / raw_consume, 3) if raw_consume else 0.0,
        "replay_tally_per_s": rate(result.records, result.seconds),
        "replay_to_raw_consume_ratio": round(rate(result.records, result.seconds) / raw_consume, 3),
    }


def table(figures: dict[str, dict[str, Any]]) -> str:
    lines = ["| group | figure | value |", "|---|---|---|"]
    for group, values in figures.items():
        if group == "machine":
            continue
        for name, value in values.items():
            shown = f"{value:,.0f}" if isinstance(value, int | float) and value > 10 else value
            lines.append(f"| {group} | {name} | {shown} |")
    return "\n".join(lines)


def main(only: list[str]) -> int:
    """Every group, or only the named ones (merged into the existing latest.json)."""
    settings = load_settings(RuntimeSettings, "HEAN")
    groups: dict[str, Any] = {
        "codec": bench_codec,
        "kafka": lambda: asyncio.run(bench_kafka(settings)),
        "book": marketdata.bench_book,
        "ingest": lambda: asyncio.run(marketdata.bench_ingest(settings, figures["kafka"]["raw_produce_per_s"])),
        "recorder": lambda: asyncio.run(marketdata.bench_recorder(settings)),
        "accounting_replay": lambda: asyncio.run(trading.bench_accounting_replay(settings)),
        "strategy_scaling": lambda: asyncio.run(trading.bench_strategy_scaling(settings)),
        "account_scaling": lambda: asyncio.run(scaling.bench_account_scaling(settings)),
        "ingest_scaling": lambda: asyncio.run(scaling.bench_ingest_scaling(settings)),
        "storage": lambda: recorder_bench.measure(1_000_000),
        "recorder_speed": lambda: asyncio.run(recorder_bench.measure_speed(settings)),
        "bars": lambda: asyncio.run(bars_bench.bench_bars(settings)),
        "tick_to_order": lambda: asyncio.run(trading.bench_tick_to_order(settings)),
        "tick_to_order_light": lambda: asyncio.run(trading.bench_tick_to_order(settings, market_rate=20.0)),
        "tick_to_order_by_client": lambda: asyncio.run(trading.bench_tick_to_order_by_client(settings)),
        "kafka_hops": lambda: asyncio.run(hops.bench_kafka_hops(settings.kafka_bootstrap)),
        "requote_requests": lambda: asyncio.run(requotes.bench_requote_requests(settings)),
        "backtest": lambda: backtest_bench.measure(1_000_000),
    }
    unknown = set(only) - set(groups)
    if unknown:
        print(f"unknown groups {sorted(unknown)}; known: {', '.join(groups)}", file=sys.stderr)
        return 2
    latest = RESULTS / "latest.json"
    figures: dict[str, dict[str, Any]] = json.loads(latest.read_text()) if only and latest.exists() else {}
    figures["machine"] = {"python": platform.python_version(), "platform": platform.platform(),
                          "cpus": __import__("os").cpu_count(), "msgspec": msgspec.__version__,
                          "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        for name, run in groups.items():
            if not only or name in only:
                figures[name] = run()
    finally:  # every group writes to topics named bench*: scratch, dropped so the broker stays small
        asyncio.run(delete_topics_with(settings.kafka_bootstrap, [SCRATCH_PREFIX]))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(figures, indent=2) + "\n")
    text = table(figures)
    (RESULTS / "latest.md").write_text("# make bench — latest\n\n" + text + "\n")
    print(text)
    print(f"\nwritten: {RESULTS / 'latest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
