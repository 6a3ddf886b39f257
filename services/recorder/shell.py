"""The recorder shell: every topic → ClickHouse, exactly once without Kafka transactions.

The table is its own offset store: every row carries (_topic, _partition, _offset), and on
assignment the recorder reads max(_offset) per partition from each table the topic fills. Rows are
inserted so that every INSERT is a single day-partition (one part: atomic) and each Kafka
partition's rows go in offset order; a crash therefore leaves an exact prefix per partition and
table. md.book fills two tables (book_top, book_levels), whose prefixes may end at different
offsets after a crash: the recorder seeks to the lowest and skips, per table, the records that
table already holds. So a restart neither duplicates nor skips a row. Kafka commits are made too,
but only so `hean topics` shows the recorder's lag.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec
from aiokafka import TopicPartition
from prometheus_client import Counter, Histogram

from schemas.topics import DLQ
from services.recorder.core import BY_TABLE, TOPIC_ACCEPTS, TOPIC_TABLES, TableSpec
from services.recorder.query import QueryLimits, QueryServer
from services.recorder.store import ChdbStore, Store, max_offsets, open_store
from services.runtime.bus import Rebalance, dead_letter, make_consumer, make_producer, send_and_wait
from services.runtime.codec import decode_as
from services.runtime.errors import ConfigError, DecodeError
from services.runtime.metrics import ServiceMetrics
from services.runtime.settings import RuntimeSettings

log = logging.getLogger(__name__)
DAY_NS = 86_400 * 10**9


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

    def __post_init__(self) -> None:
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


Entry = tuple[int, int, int, tuple[Any, ...]]


def insert_runs(entries: list[Entry], max_rows: int = 1 << 62) -> list[list[tuple[Any, ...]]]:
    """Split (partition, offset, ts_event, row) entries into INSERTs that keep the prefix property.

    Each INSERT holds one UTC day (one MergeTree partition → one atomic part); each Kafka
    partition's rows are inserted in offset order. Normally that is one INSERT per day present.
    An INSERT over `max_rows` is cut, between two records (never inside one record's book
    levels), into consecutive INSERTs: each one then still ends on a per-partition prefix, and no
    INSERT grows past the block size at which ClickHouse would write it as several parts.
    Entries of one partition must come in offset order (as the consumer delivers them).
    """
    runs: dict[int, list[tuple[int, list[Entry]]]] = defaultdict(list)
    for entry in entries:
        day = entry[2] // DAY_NS
        partition_runs = runs[entry[0]]
        if partition_runs and partition_runs[-1][0] == day:
            partition_runs[-1][1].append(entry)
        else:
            partition_runs.append((day, [entry]))
    inserts = []
    while runs:
        day = min(r[0][0] for r in runs.values())
        batch: list[Entry] = []
        for partition in sorted(runs):
            if runs[partition][0][0] == day:
                batch.extend(runs[partition].pop(0)[1])
                if not runs[partition]:
                    del runs[partition]
        inserts.extend(_cut(batch, max_rows))
    return inserts


def _cut(batch: list[Entry], max_rows: int) -> list[list[tuple[Any, ...]]]:
    out: list[list[tuple[Any, ...]]] = [[]]
    last: tuple[int, int] | None = None
    for partition, offset, _ts, row in batch:
        if len(out[-1]) >= max_rows and (partition, offset) != last:
            out.append([])
        out[-1].append(row)
        last = (partition, offset)
    return out


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
        self.buffer: dict[str, list[Entry]] = defaultdict(list)
        self.buffered = 0
        self.ingest_times: list[int] = []
        self.recorded: dict[tuple[str, TopicPartition], int] = {}
        """(table, partition) → the last offset that table holds: records up to it are skipped."""
        self.positions: dict[TopicPartition, int] = {}
        self.ready: set[TopicPartition] = set()
        self._dead: list[tuple[str, bytes, bytes]] = []
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
                                 session_timeout_ms=self.settings.session_timeout_ms)
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
                batch = await consumer.getmany(timeout_ms=100, max_records=self.settings.batch_max_records)
                for tp, records in batch.items():
                    if tp in self.ready:
                        self._take(tp, records)
                due = time.monotonic() - last_flush >= self.config.flush_seconds
                if self.buffered >= self.config.flush_rows or (due and (self.buffered or self._dead or self._moved)):
                    await self.flush(consumer, producer)
                    last_flush = time.monotonic()
                elif due:
                    last_flush = time.monotonic()
                    self._update_lag(consumer)
            await self.flush(consumer, producer)
        finally:
            self.metrics.base.up.labels("recorder").set(0)
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

    def _take(self, tp: TopicPartition, records: list[Any]) -> None:
        tables = self._tables(tp.topic)
        accepts = TOPIC_ACCEPTS[tp.topic[len(self.prefix):]]
        held = [(t, self.buffer[t.name], self.recorded.get((t.name, tp), -1)) for t in tables]
        skip_below = min(h[2] for h in held)
        for record in records:
            if record.offset <= skip_below:
                continue
            try:
                event = decode_as(record.value, accepts)
            except DecodeError as exc:
                if record.offset > max(h[2] for h in held):  # dead-lettered once, not on each resume
                    self._dead.append(self._dead_letter(record, exc))
                continue
            position = (tp.topic, tp.partition, record.offset)
            for spec, entries, recorded in held:
                if record.offset > recorded:
                    rows = spec.rows(event)
                    entries.extend((tp.partition, record.offset, event.ts_event, (*row, *position)) for row in rows)
                    self.buffered += len(rows)
            self.ingest_times.append(event.ts_ingest)
        self.positions[tp] = records[-1].offset + 1
        self._moved = True
        self.metrics.base.events_in.labels("recorder", tp.topic).inc(len(records))

    def _dead_letter(self, record: Any, exc: DecodeError) -> tuple[str, bytes, bytes]:
        self.metrics.base.dlq.labels("recorder", exc.reason).inc()
        return dead_letter(record, "recorder", exc.reason, str(exc), self.prefix + DLQ)

    async def flush(self, consumer: Any, producer: Any) -> None:
        """Dead letters first, then the buffered rows (prefix-preserving runs), then commit.

        Dead letters go first because a record the tables have passed is never read again: a
        crash between the two may repeat a dead letter (same id) but never lose one."""
        assert self.store is not None
        if self._dead:
            await send_and_wait(producer, self._dead)
        self._dead.clear()
        for table, entries in list(self.buffer.items()):
            spec = BY_TABLE[table]
            for rows in insert_runs(entries, self.config.insert_max_rows):
                started = time.perf_counter()
                await self._in_store(self.store.insert, spec, rows)
                self.metrics.insert_seconds.labels("recorder").observe(time.perf_counter() - started)
                self.metrics.rows.labels("recorder", table).inc(len(rows))
        now = time.time_ns()
        lag = self.metrics.lag.labels("recorder")
        for ts_ingest in self.ingest_times[:: max(1, len(self.ingest_times) // 100)]:
            lag.observe((now - ts_ingest) / 1e9)
        self.ingest_times.clear()
        self.buffer.clear()
        self.buffered = 0
        self._moved = False
        commit = {tp: pos for tp, pos in self.positions.items() if tp in self.ready}
        if commit:
            await consumer.commit(commit)
        self._update_lag(consumer)

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
        """Insert the buffered rows of partitions leaving this instance; the rest stay buffered."""
        leaving = {(spec.name, tp.partition) for tp in self.ready & revoked for spec in self._tables(tp.topic)}
        if leaving and self.buffered:
            for table, entries in list(self.buffer.items()):
                gone = [e for e in entries if (table, e[0]) in leaving]
                if gone:
                    for rows in insert_runs(gone, self.config.insert_max_rows):
                        await self._in_store(self.store.insert, BY_TABLE[table], rows)
                    self.buffer[table] = [e for e in entries if (table, e[0]) not in leaving]
            self.buffered = sum(len(v) for v in self.buffer.values())
        self.ready -= revoked
        for tp in revoked:
            self.positions.pop(tp, None)
            for spec in self._tables(tp.topic):
                self.recorded.pop((spec.name, tp), None)

