"""Recorder figures in chDB. `measure`: on 1M synthetic trades, bytes per trade row (after a merge,
from system.columns) and the cost of the candle views, which deduplicate at query time.
`measure_speed`: the recorder end to end from the topic (rows/s from its first record read to its
last row inserted) against a bare insert of the same rows, in the same batches, into the same
engine, in the same run (issue 15: ≥ 300k rows/s and ≥ 0.8 of the bare insert). The bare insert
takes the columns the recorder itself builds (its own decode, Decimal fields as text), so it
measures the store alone; raw consume figures of the same topic (aiokafka records, confluent
batches as the recorder reads them) show the Kafka client's ceiling.

Run: .venv/bin/python -m bench.recorder_bench [rows]
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

import msgspec

from schemas.events import TradeReceived
from schemas.topics import MD_TRADES, spec
from services.recorder.columns import TableBuffer
from services.recorder.core import BY_TABLE, TOPIC_TABLES
from services.recorder.decoding import batch_decoder
from services.recorder.shell import Recorder, RecorderConfig
from services.recorder.store import ChdbStore
from services.runtime.bus import ensure_topics, getmany_batches, make_consumer, make_producer, partitions_of, send_keyed
from services.runtime.codec import encode, typed_batch_decoder
from services.runtime.settings import RuntimeSettings
from services.tally.feed import synthetic_trades

SPEED_GOAL_ROWS_PER_S = 300_000
SPEED_GOAL_RATIO = 0.8


def measure(n: int = 1_000_000) -> dict[str, float]:
    """Insert n trades, merge to one part per day, and time the candle queries (best of 3)."""
    spec = BY_TABLE["trades"]
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = ChdbStore(Path(tmp) / "chdb")
        try:
            rows = [(*spec.rows(t)[0], "md.trades", i % 6, i) for i, t in enumerate(synthetic_trades(n, seed=3))]
            started = time.perf_counter()
            for i in range(0, n, 200_000):
                store.insert(spec, rows[i:i + 200_000])
            figures["insert_rows_per_second"] = n / (time.perf_counter() - started)
            store.query("OPTIMIZE TABLE hean.trades FINAL")
            [[compressed, uncompressed]] = store.query(
                "SELECT sum(data_compressed_bytes), sum(data_uncompressed_bytes) FROM system.columns "
                "WHERE database = 'hean' AND table = 'trades'")
            figures["bytes_per_trade_row"] = int(compressed) / n
            figures["uncompressed_bytes_per_trade_row"] = int(uncompressed) / n
            for name, sql in (("candles_1m_all_symbols_seconds", "SELECT count() FROM (SELECT * FROM hean.candles_1m)"),
                              ("candles_1s_all_symbols_seconds", "SELECT count() FROM (SELECT * FROM hean.candles_1s)"),
                              ("candles_1m_one_symbol_seconds",
                               "SELECT count() FROM (SELECT * FROM hean.candles_1m WHERE symbol = 'BTCUSDT')"),
                              ("raw_1m_no_dedup_seconds",
                               "SELECT count() FROM (SELECT symbol, toStartOfMinute(ts_event) m, sum(qty) "
                               "FROM hean.trades GROUP BY symbol, m)")):
                best = float("inf")
                for _ in range(3):
                    started = time.perf_counter()
                    store.query(sql)
                    best = min(best, time.perf_counter() - started)
                figures[name] = best
            per_column = store.query("SELECT name, data_compressed_bytes FROM system.columns WHERE database = 'hean' "
                                     "AND table = 'trades' ORDER BY data_compressed_bytes DESC")
            for name, size in per_column:
                figures[f"bytes_per_row.{name}"] = int(size) / n
        finally:
            store.close()
    return figures


async def measure_speed(settings: RuntimeSettings, n: int = 300_000) -> dict[str, float | str]:
    """The recorder (every topic subscribed, default settings) on `n` trades already in the log,
    then the same rows, cut into its flush size, inserted bare into a fresh store of the same engine.
    The ratio is what consuming, decoding and buffering cost on top of the insert itself."""
    import trading  # bench/trading.py: the raw consume of the same topic, the Kafka client's ceiling

    prefix = f"benchrecs{uuid.uuid4().hex[:6]}."
    await ensure_topics(settings.kafka_bootstrap, [spec(t) for t in TOPIC_TABLES], prefix=prefix)
    values = [encode(t) for t in synthetic_trades(n, seed=5)]
    producer = make_producer(settings.kafka_bootstrap)
    await producer.start()
    events = typed_batch_decoder(TradeReceived)(values)
    assert events is not None
    keyed = zip(events, values, strict=True)
    await send_keyed(producer, ((prefix + MD_TRADES, e.symbol.encode(), v) for e, v in keyed))
    await producer.flush()
    await producer.stop()
    config = RecorderConfig(query_port=-1)
    with tempfile.TemporaryDirectory() as tmp:
        recorder = Recorder(msgspec.structs.replace(config, store=f"chdb://{tmp}/e2e"),
                            RuntimeSettings(kafka_bootstrap=settings.kafka_bootstrap, topic_prefix=prefix))
        stop = asyncio.Event()
        task = asyncio.create_task(recorder.run(stop))
        taken = recorder.metrics.base.events_in.labels("recorder", prefix + MD_TRADES)
        rows = recorder.metrics.rows.labels("recorder", "trades")
        while taken._value.get() == 0:
            await asyncio.sleep(0.001)
            if task.done():
                task.result()
        started = time.perf_counter()
        while rows._value.get() < n:
            await asyncio.sleep(0.002)
            if task.done():
                task.result()
        end_to_end = n / (time.perf_counter() - started)
        client = type(recorder.consumer).__name__
        stop.set()
        await task

        store = ChdbStore(Path(tmp) / "bare")
        try:
            trades = BY_TABLE["trades"]
            batches = []
            for i in range(0, n, config.flush_rows):
                buffer = TableBuffer(trades)
                recorded = batch_decoder(MD_TRADES)(values[i:i + config.flush_rows])  # as the recorder decodes
                assert recorded is not None
                buffer.add(recorded, range(i, min(n, i + config.flush_rows)), MD_TRADES, 0)
                batches.append(buffer.columns)
            started = time.perf_counter()
            for columns in batches:
                store.insert_columns(trades, columns)
            bare = n / (time.perf_counter() - started)
            [[count]] = store.query("SELECT count() FROM hean.trades")
            assert int(count) == n
        finally:
            store.close()
    raw_consume = n / await trading.time_raw_consume(settings, prefix + MD_TRADES, n)
    raw_batches = n / await time_batch_consume(settings, prefix + MD_TRADES, n)
    return {"kafka_consumer": client, "rows": n,
            "recorder_end_to_end_rows_per_s": round(end_to_end), "goal_rows_per_s": SPEED_GOAL_ROWS_PER_S,
            "bare_insert_rows_per_s": round(bare), "end_to_end_to_bare_insert_ratio": round(end_to_end / bare, 3),
            "goal_ratio": SPEED_GOAL_RATIO, "raw_consume_same_topic_per_s": round(raw_consume),
            "raw_consume_confluent_batches_per_s": round(raw_batches)}


async def time_batch_consume(settings: RuntimeSettings, topic: str, n: int) -> float:
    """Seconds confluent-kafka takes to hand over the first `n` records of `topic` as the recorder
    reads them (bus.getmany_batches, no object per record): the recorder's Kafka ceiling."""
    consumer = make_consumer(settings.kafka_bootstrap, None, client="confluent")
    await consumer.start()
    try:
        tps = await partitions_of(consumer, [topic])
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        started, seen = time.perf_counter(), 0
        while seen < n:
            batches = await getmany_batches(consumer, timeout_ms=1000, max_records=settings.batch_max_records)
            seen += sum(map(len, batches.values()))
        return time.perf_counter() - started
    finally:
        await consumer.stop()


if __name__ == "__main__":
    for key, value in measure(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000).items():
        print(f"{key:45} {value:,.4f}")
