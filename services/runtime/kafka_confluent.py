"""The confluent-kafka (librdkafka) consumer behind bus.py (the producer is in
kafka_confluent_producer.py), with the calls HEAN's shells make of a consumer (the aiokafka-shaped
bus interface, `bus.Consumer` / `bus.Producer`).

Why an adapter and not a rewrite of every shell: the runtime, recorder, ingest, execution and the
supervisor already speak that interface; the adapter keeps them client-agnostic while librdkafka
does the fetching, batching and acknowledging in its own C threads.

Threads, so the asyncio loop is never blocked for long:
- each consumer polls in one thread of its own: a blocking `poll` with a short timeout, then
  `consume(n, 0)` drains what is already fetched without waiting. Rebalance callbacks fire inside
  that poll: an assignment is taken paused and the owner's listener runs on the loop from the next
  getmany (librdkafka answers no committed-offset query inside the callback), so no record of a new
  partition is returned before the listener has seeked it; a revocation runs the listener on the
  loop while the poll thread waits and makes the consumer calls the listener asks for;
- every other blocking call (commit, committed, watermarks) runs in the loop's default executor.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import uuid
import weakref
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from itertools import groupby, repeat
from operator import is_not
from typing import Any, NamedTuple

import confluent_kafka as ck
from aiokafka.structs import TopicPartition  # the bus interface's partition type, for both clients
from confluent_kafka import KafkaError as _CkError
from confluent_kafka import KafkaException

from services.runtime.errors import ConfigError

__all__ = ["NO_REBOOTSTRAP", "ConfluentConsumer", "OffsetAndTimestamp", "Record", "RecordBatch", "TopicPartition",
           "blocking", "ck_partitions", "group_member", "group_metadata"]

log = logging.getLogger(__name__)

POLL_TIMEOUT_S = 0.1  # the longest a poll may wait inside one getmany, unless its timeout is shorter
LATEST, EARLIEST = -1, -2  # ListOffsets' logical times: the end (last stable offset) and the start
CALL_TIMEOUT_S = 30.0  # a broker call (commit, committed, watermarks) that takes longer has failed
NO_REBOOTSTRAP = {"metadata.recovery.strategy": "none"}
"""Every client of the adapter keeps the brokers it learned when they all go down at once.

Why: librdkafka's default (`rebootstrap`, KIP-899) decommissions every known broker once none is
reachable and starts over from bootstrap.servers. After a broker SIGKILL and restart, a
transactional producer's send_offsets_to_transaction then sent its TxnOffsetCommit to the
decommissioned handle of the group coordinator, which never connects again nor fails the
request: the call waited past its own timeout without end (librdkafka 2.16; the service stalled
with its batch uncommitted). HEAN's brokers keep their addresses, so re-bootstrapping gains
nothing (tests/services/runtime/test_confluent_broker_restart.py)."""


class OffsetAndTimestamp(NamedTuple):
    offset: int
    timestamp: int


class Record:
    """One consumed record with the attributes the shells read (aiokafka's ConsumerRecord's names);
    `timestamp` is in ms."""

    __slots__ = ("key", "offset", "partition", "timestamp", "topic", "value")

    def __init__(self, topic: str, partition: int, offset: int, timestamp: int, key: bytes | None,
                 value: bytes | None) -> None:
        self.topic, self.partition, self.offset = topic, partition, offset
        self.timestamp, self.key, self.value = timestamp, key, value

    def __repr__(self) -> str:
        return f"Record({self.topic}:{self.partition}:{self.offset})"


def _record(m: ck.Message) -> Record:
    return Record(m.topic(), m.partition(), m.offset(), m.timestamp()[1], m.key(), m.value())


class RecordBatch:
    """One partition's records of one fetch as columns: their offsets and values, in offset
    order. `record(i)` gives the i-th whole (a dead letter needs its key, time and position).

    Why: a reader that only wants the values of many records (the recorder) need not pay for an
    object per record; the lists are built by `map` over the messages, in C."""

    __slots__ = ("_items", "offsets", "partition", "topic", "values")

    def __init__(self, topic: str, partition: int, offsets: list[int], values: list[bytes | None],
                 items: list[Any]) -> None:
        self.topic, self.partition, self.offsets, self.values, self._items = topic, partition, offsets, values, items

    @classmethod
    def of_messages(cls, topic: str, partition: int, messages: list[ck.Message]) -> RecordBatch:
        return cls(topic, partition, list(map(ck.Message.offset, messages)), list(map(ck.Message.value, messages)),
                   messages)

    @classmethod
    def of_records(cls, topic: str, partition: int, records: list[Any]) -> RecordBatch:
        """Records with aiokafka's attributes (`offset`, `value`, ...), as a batch."""
        return cls(topic, partition, [r.offset for r in records], [r.value for r in records], records)

    def __len__(self) -> int:
        return len(self.offsets)

    def record(self, i: int) -> Any:
        item = self._items[i]
        return _record(item) if isinstance(item, ck.Message) else item

    def __repr__(self) -> str:
        return f"RecordBatch({self.topic}:{self.partition}:{self.offsets[:1]}..+{len(self.offsets)})"


def ck_partitions(offsets: Mapping[Any, Any]) -> list[ck.TopicPartition]:
    return [ck.TopicPartition(tp.topic, tp.partition, int(getattr(o, "offset", o))) for tp, o in offsets.items()]


async def blocking(function: Any, *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, function, *args)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


_GROUPS: weakref.WeakValueDictionary[str, ConfluentConsumer] = weakref.WeakValueDictionary()
"""This process's consumer of each group: a transaction's offsets are sent with the consumer's
group metadata (generation and member id, which fence a zombie), and the bus interface names the
group by its id."""


class ConfluentConsumer:
    """A manual-commit, read_committed consumer (see bus.make_consumer for the settings' reasons)."""

    def __init__(self, bootstrap: str, group_id: str | None, *topics: str, session_timeout_ms: int = 10_000,
                 fetch_max_wait_ms: int = 50) -> None:
        self.group_id = group_id
        self._topics = list(topics)
        self._config = {
            "bootstrap.servers": bootstrap,
            # librdkafka wants a group id even for a consumer that only assigns; that one never commits.
            "group.id": group_id if group_id is not None else f"hean.unused.{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "partition.assignment.strategy": "range",
            "max.partition.fetch.bytes": 4 * 1024 * 1024,
            "fetch.max.bytes": 32 * 1024 * 1024,
            "receive.message.max.bytes": 33 * 1024 * 1024,
            "fetch.wait.max.ms": fetch_max_wait_ms,
            "session.timeout.ms": session_timeout_ms,
            "heartbeat.interval.ms": max(1_000, session_timeout_ms // 3),
            "enable.partition.eof": True,  # the end of a partition moves its position past markers
            # A partition whose fetched records fill the local queue (64 MB) waits this long before
            # it is fetched again; librdkafka's 1000 ms held a reader of a long backlog (the
            # recorder catching up) to ~175k records/s, 1 ms let the same read run at ~600k/s.
            "fetch.queue.backoff.ms": 1,
            "socket.nagle.disable": True,
            "log_level": 3,
            **NO_REBOOTSTRAP,
        }
        self._c: ck.Consumer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._poller = ThreadPoolExecutor(1, thread_name_prefix="hean-ck-poll")
        self._listener: Any = None
        self._assigned: set[TopicPartition] = set()
        self._user_paused: set[TopicPartition] = set()
        self._rk_paused: set[TopicPartition] = set()
        self._positions: dict[TopicPartition, int] = {}
        self._held: dict[TopicPartition, list[Record]] = {}  # fetched while paused or not asked for
        self._held_eof: dict[TopicPartition, int] = {}  # an end reached behind held records
        self._in_callback = False
        self._to_assign: dict[TopicPartition, int | None] | None = None
        self._seeked: set[TopicPartition] = set()  # librdkafka's position is stale until a fetch answers
        self._callback_calls: queue.Queue[tuple[Any, tuple[Any, ...], asyncio.Future[Any]]] = queue.Queue()
        self._unheard: set[TopicPartition] = set()  # assigned, the listener not yet told
        self._listening: set[TopicPartition] = set()  # held paused while the listener runs
        self._closed = self._stopping = self._subscribed = False
        self._absent_topics: set[str | None] = set()
        if group_id is not None:
            _GROUPS[group_id] = self

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._c = ck.Consumer(self._config)
        if self._topics:
            self.subscribe(self._topics)

    async def stop(self) -> None:
        """Leave the group and close; idempotent. The listener does not hear this last revocation
        (as with aiokafka): the owner has already snapshotted and committed what it keeps."""
        if self._c is None or self._stopping:
            return
        self._stopping = True
        self._listener = None
        try:
            await asyncio.get_running_loop().run_in_executor(self._poller, self._c.close)
        finally:
            self._closed = True
            self._poller.shutdown(wait=False)

    def _consumer(self) -> ck.Consumer:
        if self._c is None or self._closed:
            raise ConfigError("the Kafka consumer is not started (call start() first) or already stopped")
        return self._c

    # ------------------------------------------------------------------ assignment

    def subscribe(self, topics: Iterable[str], listener: Any = None) -> None:
        """Join the group for `topics`; `listener` (bus.Rebalance) hears assignments and revocations."""
        self._listener = listener
        self._subscribed = True
        self._consumer().subscribe(list(topics), on_assign=self._on_assign, on_revoke=self._on_revoke,
                                   on_lost=self._on_revoke)

    def assign(self, tps: Iterable[Any]) -> None:
        """Read exactly `tps` (no group); positions start at the committed or earliest offset."""
        wanted = [TopicPartition(tp.topic, tp.partition) for tp in tps]
        self._consumer()
        self._assigned = set(wanted)
        self._forget(set(self._positions) - self._assigned)
        # Handed to librdkafka at the first fetch, with the offsets seeked until then: a partition
        # assigned without an offset refuses a seek until its start offset is looked up.
        self._to_assign = {tp: self._positions.get(tp) for tp in wanted}

    def _assign_now(self) -> None:
        if self._to_assign is None:
            return
        pending, self._to_assign = self._to_assign, None
        self._consumer().assign([ck.TopicPartition(tp.topic, tp.partition,
                                                   ck.OFFSET_STORED if offset is None else offset)
                                 for tp, offset in pending.items()])
        self._rk_paused = set()

    def assignment(self) -> set[TopicPartition]:
        return set(self._assigned)

    def _on_assign(self, c: ck.Consumer, partitions: list[ck.TopicPartition]) -> None:
        """Runs in the poll thread: assign paused; getmany runs the listener, then resumes.

        Why not run the listener here: librdkafka answers no committed-offset query until this
        callback returns, and recovery asks for committed offsets."""
        tps = {TopicPartition(p.topic, p.partition) for p in partitions}
        c.assign(partitions)
        c.pause(partitions)
        self._assigned = set(tps)
        self._rk_paused = set(tps)
        self._unheard |= tps

    async def _hear_assignment(self) -> None:
        """Tell the listener about new partitions, fetching none of them until it has returned."""
        tps, self._unheard = self._unheard & self._assigned, set()
        self._listening = tps
        try:
            if self._listener is not None and tps:
                await self._listener.on_partitions_assigned(set(tps))
        finally:
            self._listening = set()
            self._sync_paused(set())

    def _on_revoke(self, c: ck.Consumer, partitions: list[ck.TopicPartition]) -> None:
        tps = {TopicPartition(p.topic, p.partition) for p in partitions}
        try:
            if self._listener is not None:
                self._call_listener(self._listener.on_partitions_revoked(set(tps)))
        finally:
            c.unassign()
            self._assigned -= tps
            self._forget(tps)

    def _call_listener(self, coroutine: Any) -> None:
        """Run the owner's coroutine on the loop and wait for it here, in the poll thread, serving
        the consumer calls it makes meanwhile (`_call`): librdkafka answers a commit made during
        a revocation only from the thread inside the callback."""
        assert self._loop is not None
        self._in_callback = True
        try:
            done = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
            while True:
                try:
                    function, args, future = self._callback_calls.get(timeout=0.005)
                except queue.Empty:
                    if done.done():
                        break
                    continue
                try:
                    result = function(*args)
                except BaseException as exc:  # handed to the caller on the loop
                    self._loop.call_soon_threadsafe(_settle, future, None, exc)
                else:
                    self._loop.call_soon_threadsafe(_settle, future, result, None)
            done.result()
        finally:
            self._in_callback = False

    async def _call(self, function: Any, *args: Any) -> Any:
        """Run a blocking consumer call off the loop: in the poll thread while it is inside a
        rebalance callback, else in the default executor."""
        if not self._in_callback:
            return await blocking(function, *args)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._callback_calls.put((function, args, future))
        return await future

    def _forget(self, tps: Iterable[TopicPartition]) -> None:
        for tp in tps:
            self._positions.pop(tp, None)
            self._held.pop(tp, None)
            self._held_eof.pop(tp, None)
            self._seeked.discard(tp)
            self._user_paused.discard(tp)
            self._rk_paused.discard(tp)
            self._unheard.discard(tp)

    # ------------------------------------------------------------------ positions

    def seek(self, tp: Any, offset: int) -> None:
        tp = TopicPartition(tp.topic, tp.partition)
        if self._to_assign is not None and tp in self._to_assign:
            self._to_assign[tp] = int(offset)
            self._positions[tp] = int(offset)
            self._held.pop(tp, None)
            self._seeked.add(tp)
            return
        c, where = self._consumer(), ck.TopicPartition(tp.topic, tp.partition, int(offset))
        try:
            c.seek(where)
        except KafkaException as exc:
            # A manually assigned partition still looking up its start offset refuses a seek
            # (_STATE); assigning it again at the offset is the same move.
            if self._subscribed or exc.args[0].code() != _CkError._STATE:
                raise
            c.incremental_unassign([ck.TopicPartition(tp.topic, tp.partition)])
            c.incremental_assign([where])
            if tp in self._rk_paused:
                c.pause([ck.TopicPartition(tp.topic, tp.partition)])
        self._positions[tp] = int(offset)
        self._held.pop(tp, None)
        self._held_eof.pop(tp, None)
        self._seeked.add(tp)

    async def seek_to_beginning(self, *tps: Any) -> None:
        for tp, offset in (await self.beginning_offsets(tps)).items():
            self.seek(tp, offset)

    async def position(self, tp: Any) -> int:
        """The offset of the next record this consumer returns for `tp` (past markers at the end)."""
        tp = TopicPartition(tp.topic, tp.partition)
        known = self._positions.get(tp)
        if known is not None:
            if tp not in self._seeked and tp not in self._held and self._to_assign is None:
                # librdkafka moves its own position past transaction markers as poll passes them
                # (a local read, no broker call); the end-of-partition report alone came too late
                # or not at all for a marker that ended a partition.
                ahead = self._consumer().position([ck.TopicPartition(tp.topic, tp.partition)])[0].offset
                if ahead > known:
                    self._positions[tp] = known = ahead
            return known
        self._assign_now()
        c = self._consumer()
        offset = (await self._call(c.position, [ck.TopicPartition(tp.topic, tp.partition)]))[0].offset
        if offset < 0:
            offset = await self.committed(tp) if self.group_id is not None else None
            if offset is None:
                offset = (await self.beginning_offsets([tp]))[tp]
        self._positions[tp] = offset
        return offset

    async def committed(self, tp: Any) -> int | None:
        c = self._consumer()
        found = (await self._call(c.committed, [ck.TopicPartition(tp.topic, tp.partition)], CALL_TIMEOUT_S))[0]
        return found.offset if found.offset >= 0 else None

    async def commit(self, offsets: Mapping[Any, Any]) -> None:
        if offsets:
            await self._call(lambda: self._consumer().commit(offsets=ck_partitions(offsets), asynchronous=False))

    async def beginning_offsets(self, tps: Iterable[Any]) -> dict[TopicPartition, int]:
        return await self._list_offsets(tps, EARLIEST)

    async def end_offsets(self, tps: Iterable[Any]) -> dict[TopicPartition, int]:
        """The last stable offsets under read_committed (librdkafka asks with the isolation level)."""
        return await self._list_offsets(tps, LATEST)

    async def _list_offsets(self, tps: Iterable[Any], which: int) -> dict[TopicPartition, int]:
        """One request per broker for every partition (offsets_for_times with the logical times
        -1 latest / -2 earliest). Why not get_watermark_offsets: one round trip per partition made
        the lockstep's settle check, which asks for a hundred partitions, take seconds each time."""
        c = self._consumer()
        asked = [ck.TopicPartition(tp.topic, tp.partition, which) for tp in tps]
        if not asked:
            return {}
        found = await self._call(c.offsets_for_times, asked, CALL_TIMEOUT_S)
        out: dict[TopicPartition, int] = {}
        for f in found:
            if f.error is not None:
                raise KafkaException(f.error)
            out[TopicPartition(f.topic, f.partition)] = f.offset
        return out

    async def offsets_for_times(self, times: Mapping[Any, int]) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        """Per partition the first offset at or after the time (ms), None past the end."""
        c = self._consumer()
        asked = [ck.TopicPartition(tp.topic, tp.partition, int(ms)) for tp, ms in times.items()]
        found = await self._call(c.offsets_for_times, asked, CALL_TIMEOUT_S)
        return {TopicPartition(f.topic, f.partition): OffsetAndTimestamp(f.offset, -1) if f.offset >= 0 else None
                for f in found}

    def highwater(self, tp: Any) -> int | None:
        """The end offset seen by the last fetch (no broker call), None before one."""
        high = self._consumer().get_watermark_offsets(ck.TopicPartition(tp.topic, tp.partition), cached=True)[1]
        return high if high >= 0 else None

    async def partitions_of(self, topics: Iterable[str]) -> list[TopicPartition]:
        c = self._consumer()
        result: list[TopicPartition] = []
        for topic in topics:
            meta = (await self._call(lambda t=topic: c.list_topics(t, CALL_TIMEOUT_S))).topics.get(topic)
            if meta is not None and meta.error is None:
                result.extend(TopicPartition(topic, p) for p in sorted(meta.partitions))
        return result

    # ------------------------------------------------------------------ pause, fetch

    def pause(self, *tps: Any) -> None:
        self._user_paused.update(TopicPartition(tp.topic, tp.partition) for tp in tps)
        self._sync_paused(set())

    def resume(self, *tps: Any) -> None:
        self._user_paused.difference_update(TopicPartition(tp.topic, tp.partition) for tp in tps)
        self._sync_paused(set())

    def paused(self) -> set[TopicPartition]:
        return set(self._user_paused)

    def _sync_paused(self, not_wanted: set[TopicPartition]) -> None:
        """librdkafka pauses what the owner paused and, for one getmany, what it did not ask for."""
        self._assign_now()
        target = (self._user_paused | not_wanted | self._listening | self._unheard) & self._assigned
        c = self._consumer()
        if target - self._rk_paused:
            c.pause([ck.TopicPartition(t, p) for t, p in target - self._rk_paused])
        if self._rk_paused - target:
            c.resume([ck.TopicPartition(t, p) for t, p in self._rk_paused - target])
        self._rk_paused = target

    def _fetch(self, limit: int, timeout: float) -> list[Any]:
        """In the poll thread: wait up to `timeout` for a first message, then drain without waiting."""
        c = self._consumer()
        first = c.poll(timeout)
        if first is None:
            return []
        return [first, *c.consume(limit - 1, 0)] if limit > 1 else [first]

    async def getmany(self, *partitions: Any, timeout_ms: int = 0,
                      max_records: int | None = None) -> dict[TopicPartition, list[Record]]:
        """Records ready for `partitions` (default: every assigned, unpaused one) by partition,
        waiting at most `timeout_ms` for the first."""
        ready = await self._ready(partitions, timeout_ms, max_records)
        if ready is None:
            return {}
        held, fetched = ready
        if held:
            return held
        return {tp: list(map(_record, messages)) for tp, messages in fetched.items()}

    async def getmany_batches(self, *partitions: Any, timeout_ms: int = 0,
                              max_records: int | None = None) -> dict[TopicPartition, RecordBatch]:
        """As getmany, one RecordBatch per partition instead of a Record per record."""
        ready = await self._ready(partitions, timeout_ms, max_records)
        if ready is None:
            return {}
        held, fetched = ready
        if held:
            return {tp: RecordBatch.of_records(tp.topic, tp.partition, records) for tp, records in held.items()}
        return {tp: RecordBatch.of_messages(tp.topic, tp.partition, messages) for tp, messages in fetched.items()}

    async def _ready(self, partitions: tuple[Any, ...], timeout_ms: int, max_records: int | None
                     ) -> tuple[dict[TopicPartition, list[Record]], dict[TopicPartition, list[ck.Message]]] | None:
        """Held records if any (taken first), else one fetch's messages by partition; positions
        move past what is returned. None when neither is there."""
        limit = max_records or 10_000
        wanted = {TopicPartition(tp.topic, tp.partition) for tp in partitions} or None
        held = self._take_held(wanted, limit)
        if held:
            return held, {}
        self._sync_paused(self._assigned - wanted if wanted is not None else set())
        messages = await asyncio.get_running_loop().run_in_executor(
            self._poller, self._fetch, limit, min(POLL_TIMEOUT_S, timeout_ms / 1000))
        out: dict[TopicPartition, list[ck.Message]] = {}
        positions, assigned, blocked, held_out = self._positions, self._assigned, self._user_paused, self._held
        if not any(map(is_not, map(ck.Message.error, messages), repeat(None))):
            # No error or end-of-partition event (a backlog): cut the messages into their runs of one
            # partition with map and groupby, in C; one Python step per run, not per message.
            start = 0
            places = zip(map(ck.Message.topic, messages), map(ck.Message.partition, messages), strict=True)
            for where, run in groupby(places):
                size = len(list(run))
                tp = TopicPartition(*where)
                chunk = messages[start:start + size]
                start += size
                if tp not in assigned:
                    continue
                if tp in blocked or (wanted is not None and tp not in wanted) or tp in held_out:
                    held_out.setdefault(tp, []).extend(map(_record, chunk))
                else:
                    out.setdefault(tp, []).extend(chunk)
            messages = []
        last: tuple[str, int] | None = None
        tp = TopicPartition("", -1)
        into: list[Any] | None = None
        hold = False
        for m in messages:
            error = m.error()
            if error is not None:
                last = None
                if error.code() == _CkError._PARTITION_EOF:
                    eof = TopicPartition(m.topic(), m.partition())
                    if eof in held_out:
                        self._held_eof[eof] = m.offset()
                    else:
                        positions[eof] = m.offset()
                    self._seeked.discard(eof)
                    continue
                if error.code() == _CkError.UNKNOWN_TOPIC_OR_PART and not error.fatal():
                    self._absent(m.topic())
                    continue
                raise KafkaException(error)
            where = (m.topic(), m.partition())
            if where != last:  # records come in runs of one partition: look it up once a run
                last, tp = where, TopicPartition(*where)
                hold = tp in blocked or (wanted is not None and tp not in wanted) or tp in held_out
                if tp not in assigned:
                    into = None
                elif hold:
                    into = held_out.setdefault(tp, [])
                else:
                    into = out.setdefault(tp, [])
            if into is not None:
                into.append(_record(m) if hold else m)
        for tp, records in out.items():
            positions[tp] = records[-1].offset() + 1
            self._seeked.discard(tp)
        if self._unheard:
            await self._hear_assignment()
        if not out:
            return None
        return {}, out

    def _absent(self, topic: str | None) -> None:
        """A subscribed topic the broker does not have (yet): as aiokafka, not an error; its
        partitions are assigned once it exists and the metadata is refreshed."""
        if topic not in self._absent_topics:
            self._absent_topics.add(topic)
            log.warning("subscribed topic does not exist (yet); reading the others", extra={"topic": topic})

    def _take_held(self, wanted: set[TopicPartition] | None, limit: int) -> dict[TopicPartition, list[Record]]:
        out: dict[TopicPartition, list[Record]] = {}
        for tp in list(self._held):
            if tp in self._user_paused or (wanted is not None and tp not in wanted) or limit <= 0:
                continue
            records = self._held.pop(tp)
            if len(records) > limit:
                self._held[tp] = records[limit:]
                records = records[:limit]
            out[tp] = records
            self._positions[tp] = records[-1].offset + 1
            if tp not in self._held and tp in self._held_eof:
                self._positions[tp] = max(self._positions[tp], self._held_eof.pop(tp))
            limit -= len(records)
        return out


def group_member(group_id: str) -> ConfluentConsumer | None:
    """This process's started consumer of `group_id`, if any (a transaction's offsets need it)."""
    consumer = _GROUPS.get(group_id)
    return consumer if consumer is not None and consumer._c is not None else None


def group_metadata(consumer: ConfluentConsumer) -> Any:
    return consumer._consumer().consumer_group_metadata()
