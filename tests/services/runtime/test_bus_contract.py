"""One bus contract, run against both clients (aiokafka and confluent-kafka) on the local broker.

What the shells rely on: per-key order and placement (the murmur2 partition, whichever client
sent it), exactly the records sent, committed offsets that a new member of the group starts from,
a rebalance listener whose seeks hold before any record is returned, transactions whose offsets
commit with their outputs (or neither, under read_committed), and seek / replay from an offset.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiokafka.partitioner import murmur2

from schemas.topics import TopicSpec
from services.runtime.bus import (
    Rebalance,
    TopicPartition,
    ensure_topics,
    getmany_batches,
    group_offsets,
    kafka_client,
    make_admin,
    make_consumer,
    make_producer,
    partitions_of,
    read_to_end,
    send_and_wait,
    send_keyed,
)
from services.runtime.errors import ConfigError, DeliveryFailed

pytestmark = pytest.mark.integration

CLIENTS = ("aiokafka", "confluent")


@pytest.fixture(params=CLIENTS)
def client(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _topic(bootstrap: str, prefix: str, partitions: int) -> str:
    name = f"{prefix}contract.{uuid.uuid4().hex[:6]}"
    await ensure_topics(bootstrap, [TopicSpec(name, "key", partitions, 3_600_000, "test", ("test",), "contract")])
    return name


async def _read_all(bootstrap: str, topic: str, client: str, group: str | None = None) -> list[Any]:
    consumer = make_consumer(bootstrap, group, client=client)
    await consumer.start()
    try:
        tps = await partitions_of(consumer, [topic])
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[Any] = []
        async for tp, records in read_to_end(consumer, tps, ends, timeout_ms=200):
            out.extend(r for r in records if r.offset < ends[tp])
        return out
    finally:
        await consumer.stop()


def test_client_is_chosen_by_env() -> None:
    assert kafka_client({}) in CLIENTS
    assert kafka_client({"HEAN_KAFKA_CLIENT": "Confluent"}) == "confluent"
    with pytest.raises(ConfigError, match="HEAN_KAFKA_CLIENT must be one of aiokafka, confluent, was 'kafka-python'"):
        kafka_client({"HEAN_KAFKA_CLIENT": "kafka-python"})


async def test_order_per_key_placement_and_refusals(bootstrap: str, prefix: str, client: str) -> None:
    """Each key's records arrive once each, in send order, on murmur2's partition; a record the
    broker refuses raises DeliveryFailed instead of passing unseen."""
    topic = await _topic(bootstrap, prefix, 4)
    keys = [f"SYM{i}".encode() for i in range(6)]
    records = [(topic, keys[n % 6], f"{n}".encode()) for n in range(600)]
    producer = make_producer(bootstrap, client=client)
    await producer.start()
    try:
        await send_and_wait(producer, records[:300])
        for topic_, key, value in records[300:]:  # one by one, as ingest sends
            await producer.send(topic_, value, key=key)
        await producer.flush()
        with pytest.raises(DeliveryFailed):
            await send_and_wait(producer, [(topic, b"big", b"x" * (1024 * 1024 + 64))])
    finally:
        await producer.stop()
    got = await _read_all(bootstrap, topic, "aiokafka" if client == "confluent" else "confluent")
    assert sorted(int(r.value) for r in got) == list(range(600)), "every record once, nothing else"
    for key in keys:
        mine = [r for r in got if r.key == key]
        assert [int(r.value) for r in mine] == sorted(int(r.value) for r in mine)
        assert {r.partition for r in mine} == {(murmur2(key) & 0x7FFFFFFF) % 4}


async def test_batches_are_the_records_by_partition(bootstrap: str, prefix: str, client: str) -> None:
    """getmany_batches gives each partition's offsets and values in order, once each, and any one
    record whole (key, position); a paused partition gives nothing until it is resumed."""
    topic = await _topic(bootstrap, prefix, 2)
    keys = [next(k for i in range(100) if (murmur2(k := f"K{i}".encode()) & 0x7FFFFFFF) % 2 == p) for p in (0, 1)]
    sent = [(topic, keys[n % 2], f"{n}".encode()) for n in range(400)]
    producer = make_producer(bootstrap, client=client)
    await producer.start()
    try:
        await send_and_wait(producer, sent)
    finally:
        await producer.stop()
    consumer = make_consumer(bootstrap, None, client=client)
    await consumer.start()
    try:
        tps = sorted(await partitions_of(consumer, [topic]))
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        consumer.pause(tps[1])
        got: dict[Any, list[tuple[int, bytes, bytes]]] = {}
        deadline = asyncio.get_running_loop().time() + 30
        while sum(map(len, got.values())) < len(sent):
            assert asyncio.get_running_loop().time() < deadline, f"timed out; got {got.keys()}"
            if len(got.get(tps[0], ())) == 200 and tps[1] in consumer.paused():
                consumer.resume(tps[1])
            for tp, batch in (await getmany_batches(consumer, timeout_ms=50, max_records=70)).items():
                assert tp not in consumer.paused() and (batch.topic, batch.partition) == (tp.topic, tp.partition)
                assert len(batch) == len(batch.values) <= 70
                for i, (offset, value) in enumerate(zip(batch.offsets, batch.values, strict=True)):
                    record = batch.record(i)
                    assert (record.topic, record.partition, record.offset, record.value) == (*tp, offset, value)
                    got.setdefault(tp, []).append((offset, record.key, value))
    finally:
        await consumer.stop()
    for p, tp in enumerate(tps):
        assert [o for o, _, _ in got[tp]] == list(range(200)), "each partition's records once, in order"
        assert [(k, v) for _, k, v in got[tp]] == [(k, v) for _, k, v in sent[p::2]]


class _Listener:
    """A shell-like owner: seeks each assigned partition to offset 2 in its listener."""

    def __init__(self, consumer: Any) -> None:
        self.consumer, self.assigned, self.revoked = consumer, [], []

    async def on_assigned(self, assigned: set[Any]) -> None:
        self.assigned.append({(tp.topic, tp.partition) for tp in assigned})
        for tp in assigned:
            await self.consumer.committed(tp)  # a broker call inside the listener, as recovery makes
            self.consumer.seek(tp, 2)

    async def on_revoked(self, revoked: set[Any]) -> None:
        self.revoked.append({(tp.topic, tp.partition) for tp in revoked})


async def _poll_until(consumers: list[Any], done: Any, timeout: float = 30.0) -> dict[Any, list[Any]]:
    got: dict[Any, list[Any]] = {}
    deadline = asyncio.get_running_loop().time() + timeout
    while not done(got):
        assert asyncio.get_running_loop().time() < deadline, f"timed out; got {got}"
        for consumer in consumers:
            for records in (await consumer.getmany(timeout_ms=50)).values():
                got.setdefault(consumer, []).extend(records)
    return got


async def test_a_subscribed_topic_that_does_not_exist_is_no_error(bootstrap: str, prefix: str, client: str) -> None:
    """A group member subscribed to a topic the broker lacks reads the others (as the recorder,
    subscribed to every topic, must in a stack where some were never created)."""
    topic = await _topic(bootstrap, prefix, 1)
    producer = make_producer(bootstrap, client=client)
    await producer.start()
    try:
        await send_and_wait(producer, [(topic, b"k", f"{n}".encode()) for n in range(3)])
    finally:
        await producer.stop()
    consumer = make_consumer(bootstrap, f"{prefix}absent-group", client=client)
    await consumer.start()
    try:
        consumer.subscribe([topic, f"{prefix}contract.never-created"])
        got = await _poll_until([consumer], lambda g: len(g.get(consumer, [])) >= 3)
        assert [r.value for r in got[consumer]] == [b"0", b"1", b"2"]
    finally:
        await consumer.stop()


async def test_commits_rebalance_and_listener_seeks(bootstrap: str, prefix: str, client: str) -> None:
    """A second member takes one of two partitions (the first hears the revocation); the listener's
    seek holds before any record; committed offsets are where a later member of the group starts."""
    topic = await _topic(bootstrap, prefix, 2)
    producer = make_producer(bootstrap, client=client)
    await producer.start()
    await send_and_wait(producer, [(topic, k, f"{n}".encode()) for n in range(5) for k in (b"a", b"c")])
    group = f"{prefix}contract-group"
    first = make_consumer(bootstrap, group, session_timeout_ms=6_000, client=client)
    second = make_consumer(bootstrap, group, session_timeout_ms=6_000, client=client)
    await first.start()
    await second.start()
    try:
        one, two = _Listener(first), _Listener(second)
        first.subscribe([topic], listener=Rebalance(one))
        got = await _poll_until([first], lambda g: len(g.get(first, [])) >= 6)
        assert one.assigned[-1] == {(topic, 0), (topic, 1)}
        assert min(r.offset for r in got[first]) == 2, "the listener's seek held"
        await first.commit({TopicPartition(topic, p): 4 for p in (0, 1)})
        second.subscribe([topic], listener=Rebalance(two))
        await _poll_until([first, second], lambda g: bool(two.assigned) and len(one.assigned) >= 2)
        assert one.revoked and one.assigned[-1] | two.assigned[-1] == {(topic, 0), (topic, 1)}
        assert not one.assigned[-1] & two.assigned[-1]
        assert await first.committed(TopicPartition(topic, 0)) == 4
        admin = make_admin(bootstrap)
        await admin.start()
        try:
            assert {tp.partition: m.offset for tp, m in (await group_offsets(admin, group)).items()} == {0: 4, 1: 4}
        finally:
            await admin.close()
    finally:
        await second.stop()
        await first.stop()
        await producer.stop()


async def test_transactions_read_committed_and_seek(bootstrap: str, prefix: str, client: str) -> None:
    """A committed transaction carries its records and the group's offsets; an aborted one leaves
    neither visible under read_committed; the end is reached past the markers; seeks replay."""
    source, target = await _topic(bootstrap, prefix, 1), await _topic(bootstrap, prefix, 1)
    group = f"{prefix}contract-tx"
    plain = make_producer(bootstrap, client=client)
    await plain.start()
    await send_and_wait(plain, [(source, b"k", f"{n}".encode()) for n in range(10)])
    await plain.stop()
    consumer = make_consumer(bootstrap, group, source, client=client)
    producer = make_producer(bootstrap, f"{prefix}contract-tx", client=client)
    await consumer.start()
    await producer.start()
    tp = TopicPartition(source, 0)
    try:
        got = await _poll_until([consumer], lambda g: len(g.get(consumer, [])) >= 10)
        assert [int(r.value) for r in got[consumer]] == list(range(10))
        async with producer.transaction():
            await send_keyed(producer, [(target, b"k", b"kept")])
            await producer.send_offsets_to_transaction({tp: 6}, group)
        with pytest.raises(RuntimeError, match="crash"):
            async with producer.transaction():
                await send_keyed(producer, [(target, b"k", b"aborted")])
                await producer.send_offsets_to_transaction({tp: 10}, group)
                raise RuntimeError("crash before the commit")
        assert await consumer.committed(tp) == 6, "the aborted transaction's offsets are not committed"
        consumer.seek(tp, 3)
        assert await consumer.position(tp) == 3
        replayed = await _poll_until([consumer], lambda g: len(g.get(consumer, [])) >= 7)
        assert [r.offset for r in replayed[consumer]] == list(range(3, 10))
        stamped = await consumer.offsets_for_times({tp: replayed[consumer][4].timestamp})
        assert stamped[tp] is not None and stamped[tp].offset <= 7
    finally:
        await producer.stop()
        await consumer.stop()
    seen = await _read_all(bootstrap, target, client)
    assert [r.value for r in seen] == [b"kept"]
