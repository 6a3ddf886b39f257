"""Kafka plumbing every shell shares: clients with HEAN's settings, topic creation, offsets.

Consumers read `read_committed`, so outputs of a transaction aborted by a crash are never seen
downstream; producers are idempotent (and transactional inside the service loop).

Two clients sit behind one interface: aiokafka and confluent-kafka (librdkafka, through
runtime/kafka_confluent.py). `HEAN_KAFKA_CLIENT=confluent|aiokafka` picks the one `make_consumer`
and `make_producer` build; both pass one contract suite (tests/services/runtime/test_bus_contract.py)
and the default is the one `make bench` measured faster (docs/DESIGN-NOTES.md, "Two Kafka
clients"). The interface is the subset of aiokafka's consumer and producer that the shells use
(`Consumer`, `Producer` below). Admin work (topics, group offsets, status) stays on aiokafka's admin
client for both: it is off the hot path and needs no second implementation.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner
from confluent_kafka import KafkaException as ConfluentKafkaException

from schemas.events import DeadLettered
from schemas.topics import TOPICS, TopicSpec
from services.domain.ids import dead_letter_id, raw_dead_letter_id
from services.runtime.codec import encode
from services.runtime.errors import ConfigError, DeliveryFailed
from services.runtime.kafka_confluent import ConfluentConsumer, RecordBatch
from services.runtime.kafka_confluent_producer import ConfluentProducer

__all__ = [
    "DEFAULT_CLIENT",
    "KAFKA_CLIENTS",
    "KAFKA_ERRORS",
    "Consumer",
    "DeliveryWatch",
    "Producer",
    "Rebalance",
    "RecordBatch",
    "StatusReader",
    "TopicPartition",
    "TopicStatus",
    "await_delivery",
    "dead_letter",
    "dead_letter_raw",
    "delete_topics_with",
    "ensure_topics",
    "getmany_batches",
    "group_offsets",
    "kafka_client",
    "make_admin",
    "make_consumer",
    "make_producer",
    "partitions_of",
    "read_to_end",
    "send_and_wait",
    "send_keyed",
    "topic_status",
    "wait_group_coordinator",
]

log = logging.getLogger(__name__)

KAFKA_CLIENTS = ("aiokafka", "confluent")
DEFAULT_CLIENT = "aiokafka"
KAFKA_ERRORS: tuple[type[BaseException], ...] = (KafkaError, ConfluentKafkaException)
"""What either client raises for a broker-side failure; callers that retry on the broker catch these."""


def kafka_client(env: Mapping[str, str] | None = None) -> str:
    """The client HEAN_KAFKA_CLIENT names (default DEFAULT_CLIENT); a ConfigError for any other."""
    name = (os.environ if env is None else env).get("HEAN_KAFKA_CLIENT", "").strip().lower() or DEFAULT_CLIENT
    if name not in KAFKA_CLIENTS:
        raise ConfigError(f"HEAN_KAFKA_CLIENT must be one of {', '.join(KAFKA_CLIENTS)}, was {name!r}")
    return name


class Consumer(Protocol):
    """What the shells call on a consumer (aiokafka's names; ConfluentConsumer provides them too)."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def subscribe(self, topics: Iterable[str], listener: Any = None) -> None: ...
    def assign(self, partitions: Iterable[Any]) -> None: ...
    def assignment(self) -> set[Any]: ...
    async def getmany(self, *partitions: Any, timeout_ms: int = 0,
                      max_records: int | None = None) -> dict[Any, list[Any]]: ...
    async def position(self, partition: Any) -> int: ...
    def seek(self, partition: Any, offset: int) -> None: ...
    async def seek_to_beginning(self, *partitions: Any) -> None: ...
    def pause(self, *partitions: Any) -> None: ...
    def resume(self, *partitions: Any) -> None: ...
    async def commit(self, offsets: Any = None) -> None: ...
    async def committed(self, partition: Any) -> int | None: ...
    async def beginning_offsets(self, partitions: Any) -> dict[Any, int]: ...
    async def end_offsets(self, partitions: Any) -> dict[Any, int]: ...
    async def offsets_for_times(self, timestamps: Any) -> dict[Any, Any]: ...
    def highwater(self, partition: Any) -> int | None: ...


class Producer(Protocol):
    """What the shells call on a producer (aiokafka's names; ConfluentProducer provides them too)."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def flush(self) -> None: ...
    async def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> Any: ...
    def transaction(self) -> AbstractAsyncContextManager[Any]: ...
    async def send_offsets_to_transaction(self, offsets: Any, group_id: str) -> None: ...


def make_producer(bootstrap: str, transactional_id: str | None = None, *, client: str | None = None) -> Any:
    """An idempotent producer; transactional when `transactional_id` is given.

    The transaction timeout is short (15 s) because a SIGKILLed producer's open transaction blocks
    read_committed consumers until it times out or the restarted instance fences it.
    The retry backoff is 10 ms, not aiokafka's 100: a transaction that follows the previous one
    within the few ms the broker takes to write its markers gets CONCURRENT_TRANSACTIONS and waits
    out the backoff; at 100 ms that was one batch in fifty taking 100-250 ms (measured on the
    strategy and risk at 200 md events/s; tick-to-order p99 243 → 98 ms).
    `client` overrides HEAN_KAFKA_CLIENT (the bench measures both in one run).
    """
    if (client or kafka_client()) == "confluent":
        return ConfluentProducer(bootstrap, transactional_id)
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        transactional_id=transactional_id,
        transaction_timeout_ms=15_000,
        linger_ms=2,
        max_batch_size=512 * 1024,
        max_request_size=4 * 1024 * 1024,
        acks="all",
        retry_backoff_ms=10,
    )


def make_consumer(
    bootstrap: str, group_id: str | None, *topics: str, session_timeout_ms: int = 10_000,
    client: str | None = None,
) -> Any:
    """A manual-commit, read_committed consumer.

    RangePartitionAssignor gives one member the same partition index of every co-partitioned
    input topic, which is what a per-partition state needs. After a SIGKILL the restarted member
    waits for the dead one's session to time out, so `session_timeout_ms` bounds recovery time.
    """
    if (client or kafka_client()) == "confluent":
        return ConfluentConsumer(bootstrap, group_id, *topics, session_timeout_ms=session_timeout_ms)
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        partition_assignment_strategy=(RangePartitionAssignor,),
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
        fetch_max_wait_ms=50,
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=max(1_000, session_timeout_ms // 3),
    )


_partitioner = DefaultPartitioner()
_partition_cache: dict[tuple[str, bytes], int] = {}


async def send_keyed(producer: Any,
                     records: Iterable[tuple[str, bytes, bytes]]) -> list[asyncio.Future[Any]]:
    """Send (topic, key, value) records in per-partition batches; returns each batch's delivery
    future.

    Why: aiokafka's `send` builds a future per message, which made it the runtime's bottleneck.
    Batches go through the same accumulator (so a transaction covers them) and partitions are
    chosen by the producer's own murmur2 partitioner, so a key lands where any other Kafka
    producer would put it. Inside a transaction the commit fails when a batch did; outside one,
    await the futures (`send_and_wait`): `producer.flush()` waits but never raises, so a failed
    delivery would pass unseen. On confluent-kafka librdkafka batches by itself (one future for all).
    """
    if isinstance(producer, ConfluentProducer):
        return await producer.send_keyed(records)
    by_partition: dict[tuple[str, int], list[tuple[bytes, bytes]]] = {}
    partitions: dict[str, list[int]] = {}
    futures: list[asyncio.Future[Any]] = []
    cache = _partition_cache
    for topic, key, value in records:
        partition = cache.get((topic, key))
        if partition is None:  # murmur2 is pure Python in aiokafka; keys (symbols) are few
            all_partitions = partitions.get(topic)
            if all_partitions is None:
                all_partitions = partitions[topic] = sorted(await producer.partitions_for(topic))
            partition = _partitioner(key, all_partitions, all_partitions)
            if len(cache) < 100_000:
                cache[(topic, key)] = partition
        by_partition.setdefault((topic, partition), []).append((key, value))
    for (topic, partition), items in by_partition.items():
        batch = producer.create_batch()
        for key, value in items:
            if batch.append(key=key, value=value, timestamp=None) is None:
                batch.close()
                futures.append(await producer.send_batch(batch, topic, partition=partition))
                batch = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None)
        batch.close()
        futures.append(await producer.send_batch(batch, topic, partition=partition))
    return futures


async def send_and_wait(producer: Any, records: Iterable[tuple[str, bytes, bytes]]) -> None:
    """Send records outside a transaction and return once the broker has acknowledged every one.

    Raises DeliveryFailed (naming the first error) when any batch was refused, so nothing that
    depends on these records being in the log (an id marked as published, an offset committed)
    happens after a lost delivery."""
    await await_delivery(await send_keyed(producer, records))


async def await_delivery(futures: Iterable[asyncio.Future[Any]]) -> None:
    """Wait for every batch's acknowledgement; DeliveryFailed (naming the first error) if any failed.

    Inside a transaction too, before it ends: aiokafka commits a transaction whose batches were
    refused (a record over the broker's message.max.bytes gets MessageSizeTooLarge, the batches
    after it OutOfOrderSequenceNumber), so without this check the outputs are lost while the
    offsets are committed with them. Raised inside `producer.transaction()`, it aborts instead."""
    results = await asyncio.gather(*futures, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        raise DeliveryFailed(f"{len(errors)} of {len(results)} produce batches were not delivered: {errors[0]!r}")


class DeliveryWatch:
    """Watches per-record send futures without awaiting each one (ingest's hot path), and holds
    the first delivery error for the shell to act on (`check`).

    Why not await each send: the producer's accumulator batches records across frames only while
    nobody waits; waiting per record would turn every event into a produce request."""

    def __init__(self, on_failure: Callable[[BaseException], None] | None = None) -> None:
        self.failed = 0
        self.error: BaseException | None = None
        self.on_failure = on_failure

    def watch(self, future: asyncio.Future[Any]) -> None:
        future.add_done_callback(self._done)

    def _done(self, future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            error: BaseException | None = DeliveryFailed("a produce was cancelled before delivery")
        else:
            error = future.exception()
        if error is None:
            return
        self.failed += 1
        if self.error is None:
            self.error = error
            log.error("produce failed; records after the last delivered one may be missing: %r", error)
        if self.on_failure is not None:
            self.on_failure(error)

    def check(self) -> None:
        """Raise DeliveryFailed once any watched record was not delivered."""
        if self.error is not None:
            raise DeliveryFailed(f"{self.failed} records were not delivered to Kafka: {self.error!r}")


class Rebalance(ConsumerRebalanceListener):
    """Forwards a group's rebalances to an owner with `on_revoked` / `on_assigned` coroutines."""

    def __init__(self, owner: Any) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.owner.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.owner.on_assigned(assigned)


DLQ_PAYLOAD_LIMIT = 512 * 1024
"""The most of a bad record's bytes one dead letter carries. The broker refuses a record over about
1 MiB (message.max.bytes) and a letter is its payload plus an envelope, so a record near that limit
could never be dead-lettered whole: its service would fail on it again after every restart. A
longer payload is cut to this head and the letter's error says so; the source position still
points at the whole record."""


def _payload_and_error(payload: bytes, error: str, source: str) -> tuple[bytes, str]:
    error = error[:2000]
    if len(payload) <= DLQ_PAYLOAD_LIMIT:
        return payload, error
    return payload[:DLQ_PAYLOAD_LIMIT], (f"{error} [payload cut to its first {DLQ_PAYLOAD_LIMIT} of {len(payload)} "
                                         f"bytes; the whole record is at {source}]")


def dead_letter(record: Any, service: str, reason: str, error: str, dlq_topic: str) -> tuple[str, bytes, bytes]:
    """The dlq record (topic, key, value) for a consumed record a service could not process.

    Its id derives from the service and the source position, so the same service dead-lettering
    the same record again (a replay) gives the same id. A null value is kept as an empty payload."""
    payload, error = _payload_and_error(record.value or b"", error,
                                        f"{record.topic}:{record.partition}:{record.offset}")
    letter = DeadLettered(
        id=dead_letter_id(service, record.topic, record.partition, record.offset),
        ts_event=(record.timestamp or 0) * 1_000_000, ts_ingest=time.time_ns(), service=service,
        source_topic=record.topic, source_partition=record.partition, source_offset=record.offset,
        reason=reason, error=error, payload=payload,
    )
    return dlq_topic, record.topic.encode(), encode(letter)


def dead_letter_raw(service: str, source: str, reason: str, error: str, payload: bytes, recv_ns: int,
                    dlq_topic: str) -> tuple[str, bytes, bytes]:
    """The dlq record for input that never was a log record (a venue WebSocket frame): `source`
    names where it came from ("bybit.ws.private"); its id derives from source, time and bytes."""
    letter_id = raw_dead_letter_id(source, recv_ns, payload[:64])
    payload, error = _payload_and_error(payload, error, f"{source} at {recv_ns} ns (not kept elsewhere)")
    letter = DeadLettered(id=letter_id, ts_event=recv_ns, ts_ingest=recv_ns,
                          service=service, source_topic=source, source_partition=-1, source_offset=-1,
                          reason=reason, error=error, payload=payload)
    return dlq_topic, source.encode(), encode(letter)


async def partitions_of(consumer: Any, topics: Iterable[str]) -> list[TopicPartition]:
    """Every partition of `topics`, from fresh metadata.

    Why not `consumer.topics()`: it fetches metadata without updating the consumer's own view, so
    `partitions_for_topic` can still answer None for a topic created moments ago.
    """
    if isinstance(consumer, ConfluentConsumer):
        return await consumer.partitions_of(topics)
    await consumer._client.force_metadata_update()
    return [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]


async def getmany_batches(consumer: Any, timeout_ms: int = 0,
                          max_records: int | None = None) -> dict[TopicPartition, RecordBatch]:
    """`consumer.getmany` as one RecordBatch (offsets and values as lists) per partition.

    On confluent-kafka the batches are built from librdkafka's messages without a Python object
    per record (what the recorder's catch-up rate was bounded by); on aiokafka from its records."""
    if isinstance(consumer, ConfluentConsumer):
        return await consumer.getmany_batches(timeout_ms=timeout_ms, max_records=max_records)
    batch = await consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
    return {tp: RecordBatch.of_records(tp.topic, tp.partition, records) for tp, records in batch.items()}


async def read_to_end(consumer: Any, tps: Iterable[TopicPartition],
                      ends: Mapping[TopicPartition, int] | None = None, timeout_ms: int = 500,
                      ) -> AsyncIterator[tuple[TopicPartition, list[Any]]]:
    """Batches of `tps` from the consumer's positions until each reaches `ends` (default: the end
    offsets at the call, the last stable offsets under read_committed, so markers do not stall it).
    The last batch of a partition may run past its end; callers that need a cut filter by offset."""
    tps = list(tps)
    ends = ends if ends is not None else await consumer.end_offsets(tps)
    pending = {tp for tp in tps if await consumer.position(tp) < ends[tp]}
    while pending:
        for tp, records in (await consumer.getmany(*pending, timeout_ms=timeout_ms)).items():
            yield tp, records
        pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}


async def group_offsets(admin: AIOKafkaAdminClient, group: str) -> dict[TopicPartition, Any]:
    """The group's committed offsets (OffsetAndMetadata); {} while its coordinator is not available yet."""
    try:
        return await admin.list_consumer_group_offsets(group)
    except KafkaError as exc:
        if exc.retriable:
            return {}
        raise


def make_admin(bootstrap: str) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(bootstrap_servers=bootstrap)


async def ensure_topics(
    bootstrap: str, specs: Iterable[TopicSpec] = TOPICS, prefix: str = ""
) -> list[str]:
    """Create every missing topic; existing ones are left as they are. Returns the names created.

    Idempotent so every start can call it; a topic that exists with a different partition count
    is reported, not altered (shrinking is impossible and growing remaps keys).
    """
    admin = make_admin(bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [s for s in specs if prefix + s.name not in existing]
        created: list[str] = []
        for s in wanted:
            try:
                await admin.create_topics(
                    [NewTopic(prefix + s.name, s.partitions, 1, topic_configs=s.config())]
                )
                created.append(prefix + s.name)
            except TopicAlreadyExistsError:
                pass
        if created:
            await _wait_partitions_ready(admin, created)
        present = [s for s in specs if prefix + s.name in existing]
        if present:
            described = await admin.describe_topics([prefix + s.name for s in present])
            counts = {d["topic"]: len(d["partitions"]) for d in described}
            for s in present:
                have = counts.get(prefix + s.name)
                if have is not None and have != s.partitions:
                    log.warning("topic %s has %s partitions, registry says %s", prefix + s.name, have, s.partitions)
        return created
    finally:
        await admin.close()


async def delete_topics_with(bootstrap: str, prefixes: Iterable[str], batch: int = 100) -> int:
    """Delete every topic whose name starts with one of `prefixes` (scratch topics of tests and
    benchmarks); returns how many. Why: a broker that keeps every run's topics grows by thousands of
    partitions a day of work and slows down for everything on it."""
    prefixes = tuple(p for p in prefixes if p)
    if not prefixes:
        return 0
    admin = make_admin(bootstrap)
    await admin.start()
    try:
        doomed = sorted(t for t in await admin.list_topics() if t.startswith(prefixes))
        for start in range(0, len(doomed), batch):
            await admin.delete_topics(doomed[start:start + batch])
        return len(doomed)
    finally:
        await admin.close()


async def _wait_partitions_ready(admin: AIOKafkaAdminClient, topics: list[str], timeout: float = 30.0) -> None:
    """Wait until every partition of `topics` has a leader and an in-sync replica.

    Right after creation a partition can refuse acks=all writes (NotEnoughReplicas) and the
    producer backs off; waiting here keeps that stall out of the first real batch.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        described = await admin.describe_topics(topics)
        if all(d.get("error_code", 0) == 0 and d["partitions"]
               and all(p["leader"] >= 0 and p["isr"] for p in d["partitions"]) for d in described):
            return
        if loop.time() > deadline:
            raise TimeoutError(f"topics {topics} have partitions without a leader after {timeout} s")
        await asyncio.sleep(0.1)


async def wait_group_coordinator(bootstrap: str, timeout: float = 60.0) -> None:
    """Wait until the broker can coordinate consumer groups.

    A fresh broker creates `__consumer_offsets` on the first group lookup; until then group and
    transaction calls fail with retriable errors. `hean infra up` waits here so "up" means usable.
    """
    admin = make_admin(bootstrap)
    await admin.start()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while True:
            try:
                await admin.list_consumer_group_offsets("hean.readiness")
                return
            except KafkaError as exc:
                if not exc.retriable or loop.time() > deadline:
                    raise
                await asyncio.sleep(0.25)
    finally:
        await admin.close()


@dataclass(frozen=True, slots=True)
class TopicStatus:
    """One topic's partitions with their end offsets, and each consumer group's lag on it."""

    name: str
    partitions: int
    end_offsets: dict[int, int]
    group_lag: dict[str, int]


class StatusReader:
    """End offsets and consumer-group lag, over one admin client and one consumer kept open: `hean
    topics` asks once, `hean up`'s live view every second."""

    def __init__(self, bootstrap: str) -> None:
        self.admin = make_admin(bootstrap)
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)

    async def start(self) -> None:
        await self.admin.start()
        await self.consumer.start()

    async def close(self) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def read(self, prefix: str = "", only: Iterable[str] | None = None,
                   group_prefix: str = "") -> list[TopicStatus]:
        """Topics whose names start with `prefix` (or just `only`, where they exist), with the lag of
        the groups whose ids start with `group_prefix`."""
        existing = [t for t in await self.admin.list_topics() if not t.startswith("__")]
        names = sorted(set(only) & set(existing) if only is not None else (t for t in existing
                                                                           if t.startswith(prefix)))
        described = await self.admin.describe_topics(names) if names else []
        tps = [TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]]
        ends = await self.consumer.end_offsets(tps) if tps else {}
        groups = [g[0] for g in await self.admin.list_consumer_groups() if g[0].startswith(group_prefix)]
        committed = await asyncio.gather(*(self.admin.list_consumer_group_offsets(g) for g in groups))
        lag: dict[str, dict[str, int]] = {}
        for group, offsets in zip(groups, committed, strict=True):
            for tp, meta in offsets.items():
                if tp in ends and meta.offset >= 0:
                    lag.setdefault(tp.topic, {}).setdefault(group, 0)
                    lag[tp.topic][group] += max(0, ends[tp] - meta.offset)
        result = []
        for d in described:
            parts = {p["partition"]: ends.get(TopicPartition(d["topic"], p["partition"]), 0) for p in d["partitions"]}
            result.append(TopicStatus(d["topic"], len(parts), dict(sorted(parts.items())), lag.get(d["topic"], {})))
        return sorted(result, key=lambda status: status.name)


async def topic_status(bootstrap: str, prefix: str = "") -> list[TopicStatus]:
    """End offsets of every topic and the lag of every consumer group (for `hean topics`)."""
    reader = StatusReader(bootstrap)
    await reader.start()
    try:
        return await reader.read(prefix)
    finally:
        await reader.close()
