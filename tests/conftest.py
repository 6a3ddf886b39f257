"""Fixtures for tests on the real local stack (`hean infra up`): Kafka, Redis, chDB.

Each test gets its own topic prefix, so tests never see each other's records, groups or snapshots.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from schemas.topics import spec
from services.runtime.bus import (
    delete_topics_with,
    ensure_topics,
    group_offsets,
    make_consumer,
    partitions_of,
    read_to_end,
)

BOOTSTRAP = os.environ.get("HEAN_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
REDIS_URL = os.environ.get("HEAN_REDIS_URL", "redis://127.0.0.1:6379/0")


def _reachable(host_port: str) -> bool:
    host, port = host_port.rsplit(":", 1)
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex((host, int(port))) == 0


@pytest.fixture(scope="session")
def bootstrap() -> str:
    if not _reachable(BOOTSTRAP):
        pytest.fail(f"No Kafka broker at {BOOTSTRAP}; start the local stack with `hean infra up` (or `make test`)")
    return BOOTSTRAP


@pytest.fixture(scope="session")
def redis_url() -> str:
    host_port = REDIS_URL.split("//", 1)[1].split("/", 1)[0]
    if not _reachable(host_port):
        pytest.fail(f"No Redis at {REDIS_URL}; start the local stack with `hean infra up` (or `make test`)")
    return REDIS_URL


_PREFIXES: set[str] = set()  # handed out this session; their topics are deleted at its end


@pytest.fixture
def prefix() -> str:
    name = f"t{uuid.uuid4().hex[:10]}."
    _PREFIXES.add(name)
    return name


@pytest.fixture(scope="session", autouse=True)
def _delete_scratch_topics() -> Iterator[None]:
    """Drop the session's topics when it ends, so the local broker does not grow by thousands of
    partitions a run (and slow down for every later test and benchmark)."""
    yield
    if _PREFIXES and _reachable(BOOTSTRAP):
        try:
            asyncio.run(delete_topics_with(BOOTSTRAP, _PREFIXES))
        except Exception as exc:  # cleanup only: a failure here must not fail the run
            warnings.warn(f"scratch topics not deleted: {exc!r}", stacklevel=1)


async def sim_get(sim: Any, path: str, **params: str) -> httpx.Response:
    """GET on a running simulator's public port: its market REST and its /sim/* controls."""
    async with httpx.AsyncClient() as client:
        return await client.get(f"http://127.0.0.1:{sim.port}{path}", params=params)


async def create_topics(bootstrap: str, prefix: str, names: Iterable[str]) -> None:
    await ensure_topics(bootstrap, [spec(n) for n in names], prefix=prefix)


async def read_topic(bootstrap: str, topic: str) -> list:
    """Every committed record of `topic`, partition by partition in offset order."""
    consumer = make_consumer(bootstrap, None)
    await consumer.start()
    try:
        tps = await partitions_of(consumer, [topic])
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: dict[TopicPartition, list] = {tp: [] for tp in tps}
        async for tp, msgs in read_to_end(consumer, tps, ends, timeout_ms=1000):
            records[tp].extend(m for m in msgs if m.offset < ends[tp])
        return [r for tp in tps for r in records[tp]]
    finally:
        await consumer.stop()


async def wait_caught_up(bootstrap: str, group: str, topic: str, timeout: float = 60) -> None:
    """Wait until `group` has committed the end offset of every partition of `topic`."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed")
    await admin.start()
    await consumer.start()
    try:
        tps = await partitions_of(consumer, [topic])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            ends = await consumer.end_offsets(tps)
            committed = await group_offsets(admin, group)
            if all((committed[tp].offset if tp in committed else 0) >= ends[tp] for tp in tps):
                return
            if loop.time() > deadline:
                raise TimeoutError(f"group {group} not caught up on {topic}: {committed} vs {ends}")
            await asyncio.sleep(0.2)
    finally:
        await consumer.stop()
        await admin.close()


async def wait_no_open_transactions(bootstrap: str, topic: str, timeout: float = 60) -> None:
    """Wait until no transaction is open on `topic` (its last stable offset reached the high water
    mark): a SIGKILLed producer's transaction stays open until the broker times it out."""
    committed = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed")
    everything = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_uncommitted")
    await committed.start()
    await everything.start()
    try:
        tps = await partitions_of(committed, [topic])
        deadline = asyncio.get_running_loop().time() + timeout
        while await committed.end_offsets(tps) != await everything.end_offsets(tps):
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"a transaction on {topic} stayed open for {timeout} s")
            await asyncio.sleep(0.5)
    finally:
        await committed.stop()
        await everything.stop()


async def wait_consumed(bootstrap: str, group: str, topic: str, timeout: float = 60) -> None:
    """Wait until `group` has committed past the last record of every partition of `topic`.

    Unlike `wait_caught_up`, this works for transactional topics, whose end offset also counts the
    commit marker after the last record (a consumer that read every record sits one below it).
    """
    last: dict[int, int] = {}
    for record in await read_topic(bootstrap, topic):
        last[record.partition] = max(last.get(record.partition, -1), record.offset)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            committed = {tp.partition: m.offset for tp, m in (await group_offsets(admin, group)).items()
                         if tp.topic == topic}
            if all(committed.get(p, 0) > offset for p, offset in last.items()):
                return
            if loop.time() > deadline:
                raise TimeoutError(f"group {group} has not consumed {topic}: {committed} vs last records {last}")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
