"""The confluent-kafka (librdkafka) producer behind bus.py: idempotent, transactional with a
transactional id, and murmur2-partitioned like aiokafka.

One thread per producer serves delivery reports (`poll`); a batch's records resolve one asyncio
future when the last of them is acknowledged (one loop wake-up per batch, not per record). The
blocking transaction calls run in the loop's default executor, so the loop stays responsive.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any, NamedTuple

import confluent_kafka as ck
from confluent_kafka import KafkaException

from services.runtime.errors import ConfigError, DeliveryFailed
from services.runtime.kafka_confluent import (
    CALL_TIMEOUT_S,
    NO_REBOOTSTRAP,
    blocking,
    ck_partitions,
    group_member,
    group_metadata,
)

__all__ = ["ConfluentProducer", "RecordMetadata"]

log = logging.getLogger(__name__)


class RecordMetadata(NamedTuple):
    topic: str
    partition: int
    offset: int


class _Batch:
    """Counts a batch's delivery reports (served by whichever thread polls) and resolves one future."""

    __slots__ = ("error", "future", "lock", "loop", "remaining")

    def __init__(self, loop: asyncio.AbstractEventLoop, count: int) -> None:
        self.loop, self.future = loop, loop.create_future()
        self.remaining, self.error = count, None
        self.lock = threading.Lock()

    def report(self, error: Any, _message: Any) -> None:
        with self.lock:
            if error is not None and self.error is None:
                self.error = error
            self.remaining -= 1
            done = self.remaining == 0
        if done:
            self.loop.call_soon_threadsafe(self._resolve)

    def fail(self, error: Any, unsent: int) -> None:
        """Records that never reached librdkafka's queue count as failed reports."""
        for _ in range(unsent):
            self.report(error, None)

    def _resolve(self) -> None:
        if self.future.done():
            return
        if self.error is not None:
            self.future.set_exception(DeliveryFailed(f"Kafka refused a record: {self.error}"))
        else:
            self.future.set_result(None)


class ConfluentProducer:
    """An idempotent producer (transactional with `transactional_id`), murmur2-partitioned like
    aiokafka and the Java client, so a key lands on the same partition whichever client sent it."""

    def __init__(self, bootstrap: str, transactional_id: str | None = None, linger_ms: float = 2) -> None:
        self.transactional_id = transactional_id
        self._config: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": linger_ms,
            "message.max.bytes": 4 * 1024 * 1024,
            "partitioner": "murmur2_random",
            "retry.backoff.ms": 10,
            "socket.nagle.disable": True,
            "log_level": 3,
            **NO_REBOOTSTRAP,  # see kafka_confluent.NO_REBOOTSTRAP: a restarted broker stalled transactions
        }
        if transactional_id is not None:
            self._config.update({"transactional.id": transactional_id, "transaction.timeout.ms": 15_000})
        self._p: ck.Producer | None = None
        self._serving = threading.Event()
        self._server: threading.Thread | None = None

    async def start(self) -> None:
        self._p = ck.Producer(self._config)
        self._serving.set()
        self._server = threading.Thread(target=self._serve, name="hean-ck-deliveries", daemon=True)
        self._server.start()
        if self.transactional_id is not None:
            await blocking(self._p.init_transactions, CALL_TIMEOUT_S)

    def _serve(self) -> None:
        """Serve delivery reports until stopped. A fatal producer error (fenced by a newer
        instance) is raised by the next transaction call; reports must still be served so every
        waiting future resolves."""
        assert self._p is not None
        while self._serving.is_set():
            try:
                self._p.poll(0.05)
            except KafkaException as exc:
                log.error("Kafka producer error: %s", exc)

    async def stop(self) -> None:
        if self._p is None:
            return
        await self.flush()
        self._serving.clear()
        if self._server is not None:
            await blocking(self._server.join)
        self._p = None

    async def flush(self) -> None:
        """Wait until every record sent so far has its delivery report."""
        p = self._producer()
        deadline = asyncio.get_running_loop().time() + CALL_TIMEOUT_S
        while await blocking(p.flush, 1.0) and asyncio.get_running_loop().time() < deadline:
            pass

    def _producer(self) -> ck.Producer:
        if self._p is None:
            raise ConfigError("the Kafka producer is not started (call start() first) or already stopped")
        return self._p

    async def _produce(self, topic: str, value: bytes | None, key: bytes | None, on_delivery: Any) -> None:
        """Queue one record; when librdkafka's queue is full, wait for deliveries (back-pressure)."""
        p = self._producer()
        while True:
            try:
                p.produce(topic, value, key, on_delivery=on_delivery)
                return
            except BufferError:
                await asyncio.sleep(0.001)

    async def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> asyncio.Future[Any]:
        """Queue one record; the returned future resolves to its RecordMetadata once acknowledged."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()

        def settle(error: Any, message: Any) -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(DeliveryFailed(f"Kafka refused a record for {topic}: {error}"))
            else:
                future.set_result(RecordMetadata(message.topic(), message.partition(), message.offset()))

        def report(error: Any, message: Any) -> None:
            loop.call_soon_threadsafe(settle, error, message)
        try:
            await self._produce(topic, value, key, report)
        except KafkaException as exc:  # refused before queueing, e.g. over message.max.bytes
            future.set_exception(DeliveryFailed(f"Kafka refused a record for {topic}: {exc}"))
        return future

    async def send_keyed(self, records: Iterable[tuple[str, bytes, bytes]]) -> list[asyncio.Future[Any]]:
        """Queue (topic, key, value) records; one future for all of them (see bus.send_keyed)."""
        records = list(records)
        if not records:
            return []
        batch = _Batch(asyncio.get_running_loop(), len(records))
        for index, (topic, key, value) in enumerate(records):
            try:
                await self._produce(topic, value, key, batch.report)
            except KafkaException as exc:
                batch.fail(exc.args[0] if exc.args else exc, 1)
            except BaseException as exc:
                batch.fail(exc, len(records) - index)
                raise
        return [batch.future]

    # ------------------------------------------------------------------ transactions

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """Begin; commit on a clean exit, abort when the body raised (then re-raise)."""
        p = self._producer()
        p.begin_transaction()
        try:
            yield
        except BaseException:
            try:
                await blocking(p.abort_transaction, CALL_TIMEOUT_S)
            except KafkaException as exc:
                # Seen after a refused record: librdkafka's epoch bump reports the producer fenced.
                # Nothing of the transaction is committed either way; the body's error is the one
                # to act on, and the next transaction call fails on the dead producer (a restart).
                log.error("aborting the transaction failed as well: %s", exc)
            raise
        try:
            await blocking(p.commit_transaction, CALL_TIMEOUT_S)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if error is not None and error.txn_requires_abort():
                await blocking(p.abort_transaction, CALL_TIMEOUT_S)
                raise DeliveryFailed(f"transaction aborted: {error}") from exc
            raise

    async def send_offsets_to_transaction(self, offsets: Mapping[Any, Any], group_id: str) -> None:
        """Make `offsets` of `group_id` part of the open transaction (committed with it or not at all)."""
        consumer = group_member(group_id)
        if consumer is None:
            raise ConfigError(f"no started confluent consumer of group {group_id!r} in this process; "
                              "a transaction's offsets need the group's live member")
        metadata = group_metadata(consumer)
        await blocking(self._producer().send_offsets_to_transaction, ck_partitions(offsets), metadata, CALL_TIMEOUT_S)
