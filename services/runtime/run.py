"""The one service loop: consume → decode → step → produce → commit, exactly once.

Two commit modes (HEAN_COMMIT_MODE or ServiceDef.commit_mode; docs/COMMITS.md has the argument).
"idempotent": a batch's outputs are sent by an idempotent producer and acknowledged, then its
offsets are committed plainly like any other batch's, at the commit interval; a crash between
re-applies those records live and may send outputs again, with the same ids, which every reader
drops. "transaction" (below) is the other mode.
In "transaction" mode, a batch from `getmany` that has outputs (events or dead letters) is
committed in one Kafka transaction that carries them and every consumer offset not yet committed (consume-transform-
produce). A crash at any point either commits all of that or none of it; downstream readers use
read_committed. A batch without outputs needs no transaction: its offsets are committed plainly,
at most every `commit_interval_ms`. A crash before that commit re-applies those records live;
they produced nothing before the crash, and the order they are re-applied in is the log's.
Why: most market-data batches produce nothing, and a transaction per batch (five round trips and
a marker per partition) was the broker's main load and each hop's main latency.

Recovery (per shard, on assignment): load the Redis snapshot (state + the offsets it reflects),
seek there, and re-apply records up to the group's committed offset with outputs suppressed:
those outputs are already in the log. From the committed offset on, the service is live.
Snapshots are written only after a commit, so they never run ahead of the log.

Records are applied in merged input order (runtime/merge.py): by record time across the
partitions of a shard, exactly where the records are known to exist (recovery, replay), so a
replay, a recovery and the live run agree on the order, not only on the records.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas.topics import DLQ
from services.runtime.bus import (
    Rebalance,
    await_delivery,
    dead_letter,
    make_consumer,
    make_producer,
    partitions_of,
    send_keyed,
)
from services.runtime.codec import encode, typed_decoder
from services.runtime.errors import DecodeError, InvariantViolation, NotAccepted
from services.runtime.merge import FetchOrder, InputMerge
from services.runtime.metrics import ServiceMetrics
from services.runtime.service import ServiceDef, StartFrom, state_hash
from services.runtime.settings import RuntimeSettings
from services.runtime.snapshot import Snapshot, SnapshotStore, tp_key

__all__ = ["ReplayResult", "ServiceRunner", "replay", "run_until_signal"]

log = logging.getLogger(__name__)

FROM_SNAPSHOT = StartFrom()
FROM_BEGINNING = StartFrom("beginning")


class ServiceRunner:
    """Drives one `ServiceDef` on the real log until `stop` is set."""

    def __init__(
        self,
        definition: ServiceDef[Any],
        settings: RuntimeSettings,
        start: StartFrom = FROM_SNAPSHOT,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        self.definition = definition
        self.settings = settings
        self.start_from = start
        self.metrics = metrics or ServiceMetrics(definition.name)
        prefix = settings.topic_prefix
        self.inputs = tuple(prefix + t for t in definition.inputs)
        self.dlq_topic = prefix + DLQ
        self.prefix = prefix
        # An instance serving some accounts (HEAN_ACCOUNTS) is a group, a producer and a snapshot of
        # its own: "risk@acc-a"; see ServiceDef.account_of.
        self.accounts = frozenset(settings.accounts) if definition.account_of is not None else frozenset()
        self.scope = definition.scope_name(sorted(self.accounts))
        self.group_id = f"{prefix}hean.{self.scope}"
        self.snapshots = SnapshotStore(settings.redis_url, namespace=f"hean:{prefix}" if prefix else "hean")
        self.states: dict[int, Any] = {}
        self.applied: dict[int, int] = {}
        self.positions: dict[TopicPartition, int] = {}
        self.committed: dict[TopicPartition, int] = {}  # applied live up to here (or being recovered to)
        self.unflushed: dict[TopicPartition, int] = {}  # applied live, offset not yet committed in Kafka
        self._last_commit = time.monotonic()
        self._lag_updated = 0.0
        self.dirty: set[int] = set()
        self._events_since_snapshot = 0
        self._last_snapshot = time.monotonic()
        self._first_assignment = True
        self.consumer: AIOKafkaConsumer | None = None
        self.metrics_port: int | None = None
        self.live = asyncio.Event()
        self.merge: InputMerge | FetchOrder = FetchOrder() if definition.order_free \
            else InputMerge(self._shard, self.inputs)
        for topic in self.inputs:
            self.metrics.events_in.labels(definition.name, topic)
        self.commit_mode = settings.commit_mode or definition.commit_mode
        self.idempotent = self.commit_mode == "idempotent"
        self.metrics.read_gauges(lambda: [r for state in list(self.states.values())
                                          for r in definition.gauges(state)])

    # ------------------------------------------------------------------ lifecycle

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set, then snapshot every shard and leave the group cleanly."""
        self.metrics_port = self.metrics.serve(self.settings.metrics_port)
        transactional_id: str | None = f"{self.prefix}hean.{self.scope}.{self.settings.instance}"
        if self.idempotent:  # no transaction: the idempotent producer alone (docs/COMMITS.md)
            transactional_id = None
        producer = make_producer(self.settings.kafka_bootstrap, transactional_id)
        consumer = make_consumer(self.settings.kafka_bootstrap, self.group_id,
                                 session_timeout_ms=self.settings.session_timeout_ms)
        self.consumer = consumer
        await producer.start()
        await consumer.start()
        consumer.subscribe(list(self.inputs), listener=Rebalance(self))
        log.info("service started", extra={"group": self.group_id, "inputs": self.inputs,
                                           "transactional_id": transactional_id,
                                           "commit_mode": self.commit_mode,
                                           "metrics_port": self.metrics_port})
        self.metrics.up.labels(self.definition.name).set(1)
        unwatch_gc = self.metrics.watch_gc()
        try:
            while not stop.is_set():
                wait_ms = 100 if not self.unflushed else max(0, min(100, self._commit_due_in_ms()))
                batch = await consumer.getmany(timeout_ms=wait_ms, max_records=self.settings.batch_max_records)
                if batch or self.merge.holding():  # held records may wait on a partition's position only
                    await self._process(batch, producer)
                if self.unflushed and self._commit_due_in_ms() <= 0:
                    await self._commit_offsets()
                await self._maybe_snapshot()
                self._update_lag(consumer)
            await self._snapshot(set(self.states))
            log.info("service stopping", extra={"shards": sorted(self.states)})
        finally:
            unwatch_gc()
            self.metrics.up.labels(self.definition.name).set(0)
            self.metrics.ready.labels(self.definition.name).set(0)
            await consumer.stop()
            await producer.stop()
            await self.snapshots.close()

    # ------------------------------------------------------------------ the batch

    async def _process(self, batch: Mapping[TopicPartition, list[Any]], producer: Any) -> None:
        """Apply what the batch makes ready, in merged input order (runtime/merge.py), and commit
        its outputs and offsets in one transaction."""
        started = time.perf_counter()
        definition, metrics, name = self.definition, self.metrics, self.definition.name
        step, decode_event, state_after = definition.step, typed_decoder(definition.accepts), definition.state_after
        accounts, account_of = self.accounts, definition.account_of
        outgoing: list[tuple[str, bytes, bytes]] = []
        origins: list[int] = []
        classify = definition.classify
        kinds: list[str] = []
        unflushed = self.unflushed
        replayed = applied = 0
        for tp, records in batch.items():
            if self.committed.get(tp) is None or self._shard(tp) not in self.states:
                continue  # fetched before this partition was recovered; it is re-read after the seek
            self.merge.add(tp, records)
            metrics.events_in.labels(name, tp.topic).inc(len(records))
        consumer = self.consumer
        assert consumer is not None
        positions = {tp: await consumer.position(tp) for tp in self.merge.waiting_on()}
        t0 = time.perf_counter()
        for tp, record in self.merge.ready(positions):
            shard = self._shard(tp)
            caught_up_at = self.committed[tp]
            live = record.offset >= caught_up_at
            self.positions[tp] = record.offset + 1
            if live:
                unflushed[tp] = self.committed[tp] = record.offset + 1
            self.dirty.add(shard)
            try:
                event = decode_event(record.value)
            except NotAccepted:
                continue
            except DecodeError as exc:
                if live:
                    outgoing.append(self._dead_letter(record, exc.reason, str(exc)))
                continue
            if accounts and account_of is not None:
                owner = account_of(event)
                if owner is not None and owner not in accounts:
                    continue  # another instance's account
            try:
                if live:
                    self.states[shard], emits = step(self.states[shard], event)
                else:  # recovery: the outputs are already in the log
                    self.states[shard], emits = state_after(self.states[shard], event), ()
            except InvariantViolation:
                raise
            except Exception as exc:  # a step that fails on one event must not stop the service
                if live:
                    outgoing.append(self._dead_letter(record, "apply_failed", repr(exc)))
                log.warning("step failed; record dead-lettered",
                            extra={"topic": tp.topic, "partition": tp.partition, "offset": record.offset,
                                   "error": repr(exc)})
                continue
            applied += 1
            self.applied[shard] = self.applied.get(shard, 0) + 1
            if live:
                for emit in emits:
                    outgoing.append((self.prefix + emit.topic, emit.key.encode(), encode(emit.event)))
                    if emit.event.origin_ts:
                        origins.append(emit.event.origin_ts)
                    if classify is not None:
                        kinds.append(classify(emit.event))
            else:
                replayed += 1
        if applied:
            metrics.apply_hist.observe((time.perf_counter() - t0) / applied)
        if replayed:
            metrics.replayed.labels(name).inc(replayed)
        if outgoing and self.idempotent:
            # Acknowledged before their offsets are marked: an offset is never committed ahead of
            # the outputs of the records below it. The commit itself comes at the interval.
            await await_delivery(await send_keyed(producer, outgoing))
            self._chaos_crash()
        elif outgoing:
            async with producer.transaction():  # a refused batch aborts it: nothing is lost unseen
                delivered = await send_keyed(producer, outgoing)
                await producer.send_offsets_to_transaction(dict(unflushed), self.group_id)
                await await_delivery(delivered)
                self._chaos_crash()
            unflushed.clear()
            self._last_commit = time.monotonic()
        if outgoing:
            for kind in kinds:
                metrics.outputs.labels(name, kind).inc()
            if origins:
                now, hist = time.time_ns(), metrics.tick_to_emit.labels(name)
                for origin in origins:
                    hist.observe((now - origin) / 1e9)
            counts: dict[str, int] = {}
            for topic, _key, _value in outgoing:
                counts[topic] = counts.get(topic, 0) + 1
            for topic, n in counts.items():
                metrics.events_out.labels(name, topic).inc(n)
        if not self.live.is_set() and self._caught_up():
            self.live.set()
            log.info("caught up with the log; live", extra={"shards": sorted(self.states)})
        self._events_since_snapshot += sum(len(r) for r in batch.values())
        metrics.batch_seconds.labels(name).observe(time.perf_counter() - started)

    def _chaos_crash(self) -> None:
        """The chaos kill point "outputs sent, offsets not committed": SIGKILL this process once
        while HEAN_CHAOS_CRASH_DIR holds a file named after the scope (removed first, so the
        restart runs on)."""
        directory = self.settings.chaos_crash_dir
        if not directory:
            return
        try:
            os.unlink(os.path.join(directory, self.scope))
        except FileNotFoundError:
            return
        log.warning("chaos: killed after sending outputs, before committing offsets")
        os.kill(os.getpid(), signal.SIGKILL)

    def _commit_due_in_ms(self) -> float:
        return self.settings.commit_interval_ms - (time.monotonic() - self._last_commit) * 1000

    async def _commit_offsets(self) -> None:
        """Commit the offsets of applied batches that had no outputs (no transaction needed)."""
        consumer = self.consumer
        assert consumer is not None
        if self.unflushed:
            await consumer.commit(dict(self.unflushed))
            self.unflushed.clear()
        self._last_commit = time.monotonic()

    def _dead_letter(self, record: Any, reason: str, error: str) -> tuple[str, bytes, bytes]:
        self.metrics.dlq.labels(self.definition.name, reason).inc()
        return dead_letter(record, self.definition.name, reason, error, self.dlq_topic)

    # ------------------------------------------------------------------ shards, recovery

    def _shard(self, tp: TopicPartition) -> int:
        return tp.partition if self.definition.partitioned else 0

    def _caught_up(self) -> bool:
        return all(self.positions.get(tp, 0) >= c for tp, c in self.committed.items())

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        """Load each new shard's snapshot and seek its partitions (see the module docstring)."""
        consumer = self.consumer
        assert consumer is not None
        start = self.start_from if self._first_assignment else FROM_SNAPSHOT
        self._first_assignment = False
        new_tps = [tp for tp in assigned if tp not in self.committed]
        if not new_tps:
            return
        # The fetcher runs beside this listener: hold the new partitions until they are seeked,
        # so no record is applied to a shard whose snapshot is still loading.
        consumer.pause(*new_tps)
        beginnings = await consumer.beginning_offsets(new_tps)
        by_time: dict[TopicPartition, Any] = {}
        ends = await consumer.end_offsets(new_tps)
        if start.mode == "time":
            by_time = await consumer.offsets_for_times({tp: start.value for tp in new_tps})
        for shard in sorted({self._shard(tp) for tp in new_tps}):
            shard_tps = [tp for tp in new_tps if self._shard(tp) == shard]
            snapshot = await self.snapshots.load(self.scope, shard) if start.mode == "snapshot" else None
            committed = {tp: (await consumer.committed(tp)) for tp in shard_tps}
            committed = {tp: beginnings[tp] if c is None else c for tp, c in committed.items()}
            if snapshot is not None and any(
                snapshot.offsets.get(tp_key(tp.topic, tp.partition), 0) > committed[tp] for tp in shard_tps
            ):
                log.warning("snapshot is ahead of the committed offsets; rebuilding from the log",
                            extra={"shard": shard})
                snapshot = None
            if shard not in self.states:
                if snapshot is not None:
                    self.states[shard] = self.definition.decode_state(snapshot.state)
                    self.applied[shard] = snapshot.events_applied
                else:
                    self.states[shard] = self.definition.initial_state()
                    self.applied[shard] = 0
            for tp in shard_tps:
                if start.mode == "snapshot":
                    offset = snapshot.offsets.get(tp_key(tp.topic, tp.partition), beginnings[tp]) \
                        if snapshot is not None else beginnings[tp]
                elif start.mode == "beginning":
                    offset = beginnings[tp]
                elif start.mode == "offset":
                    offset = max(int(start.value or 0), beginnings[tp])
                else:
                    found = by_time.get(tp)
                    offset = found.offset if found is not None else ends[tp]
                # Within the log: a seek past the end would make the consumer reset to the start.
                offset = min(max(offset, beginnings[tp]), ends[tp])
                consumer.seek(tp, offset)
                self.positions[tp] = offset
                self.committed[tp] = committed[tp]
                # Idempotent mode re-applies live what a crash left uncommitted, and may send its
                # outputs again: merged exactly (the replay's order) up to the end, so they come
                # out as the replay would make them (docs/COMMITS.md).
                self.merge.reset(tp, target=max(ends[tp], committed[tp]) if self.idempotent else committed[tp])
            self.dirty.add(shard)
            consumer.resume(*shard_tps)
            self.metrics.ready.labels(self.definition.name).set(1)
            log.info("shard assigned", extra={
                "shard": shard, "from": start.mode, "snapshot": snapshot is not None,
                "seek": {tp_key(tp.topic, tp.partition): self.positions[tp] for tp in shard_tps},
                "committed": {tp_key(tp.topic, tp.partition): committed[tp] for tp in shard_tps},
            })
        self.live.clear()

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        """Snapshot and drop the shards leaving this instance, so their next owner resumes here."""
        if self.unflushed:  # the next owner starts from the committed offsets
            await self._commit_offsets()
        shards = {self._shard(tp) for tp in revoked if tp in self.committed}
        if self.definition.partitioned and shards:
            await self._snapshot(shards)
            for shard in shards:
                self.states.pop(shard, None)
                self.applied.pop(shard, None)
                self.dirty.discard(shard)
            for tp in [tp for tp in self.committed if self._shard(tp) in shards]:
                self.committed.pop(tp, None)
                self.unflushed.pop(tp, None)
                self.positions.pop(tp, None)
                self.merge.drop([tp])

    # ------------------------------------------------------------------ snapshots, metrics

    async def _maybe_snapshot(self) -> None:
        due_events = self._events_since_snapshot >= self.settings.snapshot_every_events
        due_time = time.monotonic() - self._last_snapshot >= self.settings.snapshot_every_seconds
        if self.dirty and (due_events or due_time):
            await self._snapshot(set(self.dirty))

    async def _snapshot(self, shards: set[int]) -> None:
        """Store state + positions of `shards`. Positions never exceed committed offsets here."""
        if self.unflushed:
            await self._commit_offsets()
        now = time.time_ns()
        for shard in sorted(shards):
            if shard not in self.states:
                continue
            offsets = {tp_key(tp.topic, tp.partition): pos for tp, pos in self.positions.items()
                       if self._shard(tp) == shard}
            await self.snapshots.save(Snapshot(
                service=self.scope, shard=shard,
                state=self.definition.encode_state(self.states[shard]),
                offsets=offsets, taken_at_ns=now, events_applied=self.applied.get(shard, 0),
            ))
            self.dirty.discard(shard)
        self._events_since_snapshot = 0
        self._last_snapshot = time.monotonic()
        self.metrics.mark_snapshot()

    def _update_lag(self, consumer: AIOKafkaConsumer) -> None:
        """Refresh the lag gauges, at most every 250 ms: a scrape reads them once a second or so."""
        now = time.monotonic()
        if now - self._lag_updated < 0.25:
            return
        self._lag_updated = now
        gauge, name = self.metrics.consumer_lag, self.definition.name
        for tp, position in self.positions.items():
            end = consumer.highwater(tp)
            if end is not None:
                gauge.labels(name, tp.topic, str(tp.partition)).set(max(0, end - position))

    def state_hash(self) -> str:
        return state_hash(self.states)



# ---------------------------------------------------------------------- replay without effects


REPLAY_BUFFER = 20_000  # records held per partition before its fetches wait for the others


class _GcSetting:
    depth = 0  # replays running in this process
    saved: tuple[int, ...] = gc.get_threshold()


def _fewer_gc_passes(begin: bool) -> None:
    """A replay allocates a few dozen short-lived objects per record and keeps few: collect the
    young generation 100x less often, and leave what existed before out of full collections.
    Nested or concurrent replays share the setting; the last to end restores the thresholds."""
    if begin:
        if _GcSetting.depth == 0:
            _GcSetting.saved = gc.get_threshold()
            gc.freeze()
            gc.set_threshold(70_000, *_GcSetting.saved[1:])
        _GcSetting.depth += 1
        return
    _GcSetting.depth -= 1
    if _GcSetting.depth == 0:
        gc.set_threshold(*_GcSetting.saved)
        gc.unfreeze()


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """States rebuilt from the log, how many records were folded, and the state hash."""

    states: dict[int, Any]
    records: int
    undecodable: int
    hash: str
    seconds: float


async def replay(
    definition: ServiceDef[Any],
    settings: RuntimeSettings,
    start: StartFrom = FROM_BEGINNING,
    to_offset: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    partitions: Collection[int] | None = None,
    ends_at: Mapping[TopicPartition, int] | None = None,
) -> ReplayResult:
    """Fold `definition` over its inputs from `start` to the end (or `to_offset`), producing nothing.

    Reads every partition of every input (no consumer group, no commits), so it can run beside
    the live service. The end is the last stable offset at the call, so it terminates.
    `partitions` limits the replay to those partition indices of every input and `ends_at` fixes
    the end offsets (services/runtime/parallel.py runs shards side by side with them).
    """
    inputs = [settings.topic_prefix + t for t in definition.inputs]
    consumer = make_consumer(settings.kafka_bootstrap, None)
    await consumer.start()
    began = time.perf_counter()
    _fewer_gc_passes(True)
    try:
        tps = await partitions_of(consumer, inputs)
        if not tps:
            raise DecodeError("missing_topic", f"No partitions for inputs {inputs}; run `hean topics create`")
        if partitions is not None:
            tps = [tp for tp in tps if tp.partition in partitions]
        consumer.assign(tps)
        beginnings = await consumer.beginning_offsets(tps)
        ends = dict(ends_at) if ends_at is not None else await consumer.end_offsets(tps)
        if to_offset is not None:
            ends = {tp: min(end, to_offset) for tp, end in ends.items()}
        if start.mode == "time":
            found = await consumer.offsets_for_times({tp: start.value for tp in tps})
        for tp in tps:
            if start.mode == "offset":
                offset = min(max(int(start.value or 0), beginnings[tp]), ends[tp])
            elif start.mode == "time":
                hit = found.get(tp)
                offset = hit.offset if hit is not None else ends[tp]
            else:
                offset = beginnings[tp]
            consumer.seek(tp, offset)
        shard_of = (lambda tp: tp.partition) if definition.partitioned else (lambda tp: 0)
        fold = definition.state_after if definition.fold is None else definition.fold  # one call less
        decode_event = typed_decoder(definition.accepts)
        states: dict[int, Any] = {shard_of(tp): definition.initial_state() for tp in tps}
        total = sum(max(0, ends[tp] - beginnings[tp]) for tp in tps)
        records = undecodable = 0
        merge = FetchOrder() if definition.order_free else InputMerge(shard_of, inputs)
        for tp in tps:
            merge.reset(tp, target=ends[tp])
        pending = {tp for tp in tps if await consumer.position(tp) < ends[tp]}
        while pending or merge.holding():
            # Fetch for the partitions that are not far ahead of the others (bounded memory).
            wanted = [tp for tp in pending if merge.buffered(tp) < REPLAY_BUFFER] or list(pending)
            batch = await consumer.getmany(*wanted, timeout_ms=500, max_records=5_000) if wanted else {}
            for tp, msgs in batch.items():
                end = ends[tp]
                merge.add(tp, msgs if msgs[-1].offset < end else [m for m in msgs if m.offset < end])
            positions = {tp: await consumer.position(tp) for tp in merge.waiting_on()}
            ready = merge.ready(positions)
            records += len(ready)
            for tp, record in ready:
                try:
                    event = decode_event(record.value)
                except NotAccepted:
                    continue
                except DecodeError:
                    undecodable += 1
                    continue
                shard = shard_of(tp)
                try:
                    states[shard] = fold(states[shard], event)
                except InvariantViolation:
                    raise
                except Exception:
                    undecodable += 1
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
            if progress is not None:
                progress(records, total)
        return ReplayResult(states, records, undecodable, state_hash(states), time.perf_counter() - began)
    finally:
        _fewer_gc_passes(False)
        await consumer.stop()


def run_until_signal(main: Callable[[asyncio.Event], Any]) -> None:
    """Run `main(stop)` on uvloop; SIGTERM and SIGINT set `stop` for a graceful shutdown."""
    import uvloop

    async def wrapper() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    uvloop.run(wrapper())
