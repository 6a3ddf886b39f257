"""The recorder shell: every topic → ClickHouse, exactly once without Kafka transactions.

The table is its own offset store: every row carries (_topic, _partition, _offset), and on
assignment the recorder reads max(_offset) per partition from each table the topic fills. Rows are
inserted so that every INSERT is a single day-partition (one part: atomic) and each Kafka
partition's rows go in offset order; a crash therefore leaves an exact prefix per partition and
table. md.book fills two tables (book_top, book_levels), whose prefixes may end at different
offsets after a crash: the recorder seeks to the lowest and skips, per table, the records that
table already holds. So a restart neither duplicates nor skips a row. Kafka commits are made too,
but only so `hean topics` shows the recorder's lag. A second record of one event (a repeat its
writer logged after a crash, same id) is dropped in the tables marked one_per_id
(services/recorder/repeats.py), so each event is one row there.
"""

from __future__ import annotations

import asyncio
import logging
import time
from bisect import bisect_right
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec
from aiokafka import TopicPartition
from prometheus_client import Counter, Histogram

from schemas.topics import DLQ
from services.recorder.columns import Columns, TableBuffer
from services.recorder.core import BY_TABLE, TOPIC_ACCEPTS, TOPIC_TABLES, TableSpec
from services.recorder.decoding import batch_decoder
from services.recorder.query import QueryLimits, QueryServer
from services.recorder.repeats import RecentIds, RepeatFilter
from services.recorder.store import ChdbStore, Store, max_offsets, open_store, recent_ids
from services.runtime.bus import (
    KAFKA_CLIENTS,
    Rebalance,
    RecordBatch,
    dead_letter,
    getmany_batches,
    make_consumer,
    make_producer,
    send_and_wait,
)
from services.runtime.codec import non_finite, typed_decoder
from services.runtime.errors import ConfigError, DecodeError
from services.runtime.metrics import ServiceMetrics
from services.runtime.settings import RuntimeSettings

log = logging.getLogger(__name__)


class RecorderConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Settings (env prefix RECORDER_). `store`: chdb://PATH (default: $HEAN_HOME/chdb) or
    clickhouse://user:password@host:8123/db. `query_port`: the loopback port of the read-only
    query endpoint `hean sql` uses while a chDB store is open here (0: any free port, -1: none)."""

    store: str = ""
    topics: tuple[str, ...] = tuple(TOPIC_TABLES)
    flush_rows: int = 50_000
    insert_max_rows: int = 200_000
    flush_seconds: float = 0.25
    query_port: int = 0
    query_timeout_seconds: float = 30.0
    query_max_result_bytes: int = 256 * 1024 * 1024
    kafka_client: str = "confluent"
    """The recorder's consumer, whatever HEAN_KAFKA_CLIENT says: it reads whole batches of values,
    which confluent-kafka hands over without an object per record (bus.getmany_batches); aiokafka
    built one per record and held the recorder's catch-up to ~100k rows/s (bench recorder_speed)."""

    def __post_init__(self) -> None:
        if self.kafka_client not in KAFKA_CLIENTS:
            raise ConfigError(f"kafka_client must be one of {', '.join(KAFKA_CLIENTS)}, was {self.kafka_client!r}")
        if not -1 <= self.query_port < 65536:
            raise ConfigError(f"query_port must be -1 (off), 0 (any) or a port, was {self.query_port}")
        if self.query_timeout_seconds <= 0 or self.query_max_result_bytes <= 0:
            raise ConfigError("query_timeout_seconds and query_max_result_bytes must be positive, were "
                              f"{self.query_timeout_seconds} and {self.query_max_result_bytes}")


class RecorderMetrics:
    def __init__(self) -> None:
        self.base = ServiceMetrics("recorder")
        r = self.base.registry
        self.rows = Counter("hean_recorder_rows_total", "Rows inserted, by table", ["service", "table"], registry=r)
        self.insert_seconds = Histogram("hean_recorder_insert_seconds", "Time of one INSERT", ["service"],
                                        registry=r)
        self.lag = Histogram("hean_recorder_lag_seconds", "Ingest time of an event → its row is visible",
                             ["service"], buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=r)
        for table in BY_TABLE:
            self.rows.labels("recorder", table)
        self.insert_seconds.labels("recorder")
        self.lag.labels("recorder")


class Recorder:
    """Consumes every recorded topic as group `hean.recorder` and writes the rows to the store."""

    def __init__(self, config: RecorderConfig, settings: RuntimeSettings, metrics: RecorderMetrics | None = None,
                 default_path: Path | None = None) -> None:
        self.config = config
        self.settings = settings
        self.metrics = metrics or RecorderMetrics()
        self.prefix = settings.topic_prefix
        self.group_id = f"{self.prefix}hean.recorder"
        self.default_path = default_path or Path(".hean/chdb")
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recorder-store")
        self.store: Store | None = None
        self.query_server: QueryServer | None = None
        self.buffer: dict[str, TableBuffer] = {}
        self.buffered = 0
        self.pending: asyncio.Future[None] | None = None
        """The INSERTs of the last flush, running on the store thread while the next batch is read."""
        self.ingest_times: list[int] = []
        self.recorded: dict[tuple[str, TopicPartition], int] = {}
        """(table, partition) → the last offset that table holds: records up to it are skipped."""
        self.positions: dict[TopicPartition, int] = {}
        self.ready: set[TopicPartition] = set()
        self._dead: list[tuple[str, bytes, bytes]] = []
        self.repeats = RepeatFilter()
        """The ids held per (table, partition) where a repeated id is not recorded (one_per_id)."""
        self._moved = False  # positions advanced since the last commit (also by records the tables held)

    def _tables(self, topic: str) -> tuple[TableSpec, ...]:
        return TOPIC_TABLES[topic[len(self.prefix):]]

    async def _in_store(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def run(self, stop: asyncio.Event) -> None:
        self.metrics.base.serve(self.settings.metrics_port)
        self.store = await self._in_store(open_store, self.config.store, self.default_path)
        topics = [self.prefix + t for t in self.config.topics]
        consumer = make_consumer(self.settings.kafka_bootstrap, self.group_id,
                                 session_timeout_ms=self.settings.session_timeout_ms, client=self.config.kafka_client)
        producer = make_producer(self.settings.kafka_bootstrap)
        await producer.start()
        await consumer.start()
        self.consumer = consumer
        consumer.subscribe(topics, listener=Rebalance(self))
        self.metrics.base.up.labels("recorder").set(1)
        log.info("recorder started", extra={"topics": topics, "store": self.config.store or str(self.default_path)})
        last_flush = time.monotonic()
        try:
            await self._serve_queries()
            while not stop.is_set():
                batches = await getmany_batches(consumer, timeout_ms=100, max_records=self.settings.batch_max_records)
                for tp, batch in batches.items():
                    if tp in self.ready:
                        self._take(tp, batch)
                due = time.monotonic() - last_flush >= self.config.flush_seconds
                if self.buffered >= self.config.flush_rows or (due and (self.buffered or self._dead or self._moved)):
                    await self.flush(consumer, producer)
                    last_flush = time.monotonic()
                elif due:
                    last_flush = time.monotonic()
                    self._update_lag(consumer)
            await self.flush(consumer, producer, wait=True)
        finally:
            self.metrics.base.up.labels("recorder").set(0)
            if self.pending is not None:  # stopped by an error: let the INSERT under way end first
                await asyncio.gather(self.pending, return_exceptions=True)
            if self.query_server is not None:  # before the store: its connection shares the engine
                await self.query_server.stop()
            await consumer.stop()
            await producer.stop()
            await self._in_store(self.store.close)
            self.executor.shutdown(wait=True)

    async def _serve_queries(self) -> None:
        """With chDB this process is the only one that can open the store, so it answers
        `hean sql` (read-only, limited) while it records; a ClickHouse server answers for itself."""
        if isinstance(self.store, ChdbStore) and self.config.query_port >= 0:
            limits = QueryLimits(self.config.query_timeout_seconds, self.config.query_max_result_bytes)
            self.query_server = QueryServer(self.store.path, self.config.query_port, limits)
            await self.query_server.start()

    def _take(self, tp: TopicPartition, batch: RecordBatch) -> None:
        """Decode one partition's records as a batch and append their rows to each table's columns,
        skipping, table by table, the records that table already holds."""
        tables = self._tables(tp.topic)
        held = [self.recorded.get((t.name, tp), -1) for t in tables]
        last = batch.offsets[-1]
        start = bisect_right(batch.offsets, min(held)) if batch.offsets[0] <= min(held) else 0
        if start < len(batch):
            events, offsets = self._decode(tp, batch, start, max(held))
            for spec, recorded in zip(tables, held, strict=True):
                taken, taken_offsets = events, offsets
                if offsets and offsets[0] <= recorded:
                    keep = [i for i, o in enumerate(offsets) if o > recorded]
                    taken, taken_offsets = [events[i] for i in keep], [offsets[i] for i in keep]
                if spec.one_per_id:
                    taken, taken_offsets = self.repeats.fresh(spec.name, tp.partition, taken, taken_offsets)
                buffer = self.buffer.get(spec.name)
                if buffer is None:
                    buffer = self.buffer[spec.name] = TableBuffer(spec)
                self.buffered += buffer.add(taken, taken_offsets, tp.topic, tp.partition)
            self.ingest_times.extend(e.ts_ingest for e in events[::16])
        self.positions[tp] = last + 1
        self._moved = True
        self.metrics.base.events_in.labels("recorder", tp.topic).inc(len(batch) - start)

    def _decode(self, tp: TopicPartition, batch: RecordBatch, start: int,
                dead_above: int) -> tuple[list[Any], list[int]]:
        """The events and offsets of the batch's records from `start` on: one batch decode, or, when
        a record in the batch is bad, one by one, dead-lettering each bad record once (not again
        when a resume re-reads it)."""
        topic = tp.topic[len(self.prefix):]
        values = batch.values[start:] if start else batch.values
        offsets = batch.offsets[start:] if start else batch.offsets
        events = batch_decoder(topic)(values)
        if events is not None:
            return events, offsets
        decode = typed_decoder(TOPIC_ACCEPTS[topic])
        events, kept = [], []
        for i, (offset, value) in enumerate(zip(offsets, values, strict=True), start):
            try:
                event = decode(value)
                if (where := non_finite(event)) is not None:
                    raise DecodeError("invalid", f"Not a valid HEAN event: {where} is not a finite number (NaN or "
                                                 "Infinity), which no table column takes")
                events.append(event)
            except DecodeError as exc:
                if offset > dead_above:
                    self._dead.append(self._dead_letter(batch.record(i), exc))
                continue
            kept.append(offset)
        return events, kept

    def _dead_letter(self, record: Any, exc: DecodeError) -> tuple[str, bytes, bytes]:
        self.metrics.base.dlq.labels("recorder", exc.reason).inc()
        return dead_letter(record, "recorder", exc.reason, str(exc), self.prefix + DLQ)

    async def flush(self, consumer: Any, producer: Any, wait: bool = False) -> None:
        """Dead letters first, then hand the buffered rows (prefix-preserving INSERTs) to the store
        thread and go on reading while they are written; the offsets are committed once they are.

        Dead letters go first because a record the tables have passed is never read again: a
        crash between the two may repeat a dead letter (same id) but never lose one. One flush's
        INSERTs run at a time, in order, on the one store thread, so the tables still grow by
        per-partition prefixes; the next flush waits for them before handing over its own."""
        assert self.store is not None
        if self._dead:
            await send_and_wait(producer, self._dead)
        self._dead.clear()
        jobs = [(buffer.spec, columns) for buffer in self.buffer.values()
                for columns in buffer.inserts(self.config.insert_max_rows)]
        ingest_times, self.ingest_times = self.ingest_times, []
        self.buffer = {}
        self.buffered = 0
        self._moved = False
        commit = {tp: pos for tp, pos in self.positions.items() if tp in self.ready}
        await self.wait_inserts()
        self.pending = asyncio.ensure_future(self._write(consumer, jobs, commit, ingest_times))
        if wait:
            await self.wait_inserts()

    async def wait_inserts(self) -> None:
        """Wait for the last flush's INSERTs (and its commit); their failure stops the recorder."""
        pending, self.pending = self.pending, None
        if pending is not None:
            await pending

    async def _write(self, consumer: Any, jobs: list[tuple[TableSpec, Columns]], commit: dict[TopicPartition, int],
                     ingest_times: list[int]) -> None:
        if jobs:
            await self._in_store(self._insert_all, jobs)
        now = time.time_ns()
        lag = self.metrics.lag.labels("recorder")
        for ts_ingest in ingest_times[:: max(1, len(ingest_times) // 100)]:
            lag.observe((now - ts_ingest) / 1e9)
        commit = {tp: pos for tp, pos in commit.items() if tp in self.ready}
        if commit:
            await consumer.commit(commit)
        self._update_lag(consumer)

    def _insert_all(self, jobs: list[tuple[TableSpec, Columns]]) -> None:
        """On the store thread: the INSERTs of one flush, in order."""
        assert self.store is not None
        for spec, columns in jobs:
            started = time.perf_counter()
            self.store.insert_columns(spec, columns)
            self.metrics.insert_seconds.labels("recorder").observe(time.perf_counter() - started)
            self.metrics.rows.labels("recorder", spec.name).inc(len(columns["_offset"]))

    def _update_lag(self, consumer: Any) -> None:
        for tp in self.ready:
            end = consumer.highwater(tp)
            if end is not None:
                gauge = self.metrics.base.consumer_lag.labels("recorder", tp.topic, str(tp.partition))
                gauge.set(max(0, end - self.positions.get(tp, 0)))

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        """Seek each new partition to the record after the last one all its tables hold."""
        new = [tp for tp in assigned if tp not in self.ready]
        if not new:
            return
        self.consumer.pause(*new)
        beginnings = await self.consumer.beginning_offsets(new)
        by_topic: dict[str, list[TopicPartition]] = defaultdict(list)
        for tp in new:
            by_topic[tp.topic].append(tp)
        for topic, tps in by_topic.items():
            held = {}
            for spec in self._tables(topic):
                held[spec.name] = recorded = await self._in_store(max_offsets, self.store, spec, topic)
                for tp in tps:
                    self.recorded[spec.name, tp] = recorded.get(tp.partition, -1)
                if spec.one_per_id:
                    ids = await self._in_store(recent_ids, self.store, spec, topic, RecentIds.floor)
                    for tp in tps:
                        self.repeats.load(spec.name, tp.partition, ids.get(tp.partition, ()))
            for tp in tps:
                lowest = min(self.recorded[spec.name, tp] for spec in self._tables(topic))
                offset = max(lowest + 1, beginnings[tp])
                self.consumer.seek(tp, offset)
                self.positions[tp] = offset
                self.ready.add(tp)
            log.info("resuming from the tables", extra={"topic": topic, "recorded": held})
        self._moved = True  # commit the seek positions, so a replay's lag shows 0 with nothing to insert
        self.consumer.resume(*new)
        self.metrics.base.ready.labels("recorder").set(1)

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        """Insert the buffered rows of partitions leaving this instance (after the INSERTs already
        under way), so the next owner resumes after them; the rest stay buffered."""
        await self.wait_inserts()
        leaving: dict[str, set[int]] = defaultdict(set)
        for tp in self.ready & revoked:
            for spec in self._tables(tp.topic):
                leaving[spec.name].add(tp.partition)
        if leaving and self.buffered:
            for table, buffer in self.buffer.items():
                if table in leaving:
                    jobs = [(buffer.spec, c) for c in buffer.inserts(self.config.insert_max_rows, leaving[table])]
                    await self._in_store(self._insert_all, jobs)
                    buffer.drop(leaving[table])
            self.buffered = sum(len(b) for b in self.buffer.values())
        self.ready -= revoked
        for tp in revoked:
            self.positions.pop(tp, None)
            for spec in self._tables(tp.topic):
                self.recorded.pop((spec.name, tp), None)
                self.repeats.drop(spec.name, tp.partition)
