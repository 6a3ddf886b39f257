"""Consume-transform-produce transactions go on after the broker is SIGKILLed and restarted.

A broker of the test's own (services/supervisor/faults.py), so the kill touches nothing else. The
loop is the shells' transaction mode in small (outputs, the group's offsets, acks, commit); the
broker is killed between two transactions, and a transaction that fails is aborted and its
records are read again from the last commit.
A transaction the outage outlived (its records timed out, the broker then fenced the producer:
librdkafka's fatal state) is what a service restart answers, so the loop then makes a new
producer with the same transactional id, as the restarted service would. What must hold: after
the restart the transactions commit again, every call within its own timeout, and the group's
committed offsets reach the end of the input. On confluent-kafka with
librdkafka's default re-bootstrap, the first send_offsets_to_transaction after the restart never
returned (kafka_confluent.NO_REBOOTSTRAP).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from schemas.topics import TopicSpec
from services.runtime.bus import (
    KAFKA_ERRORS,
    TopicPartition,
    await_delivery,
    ensure_topics,
    make_admin,
    make_consumer,
    make_producer,
    send_keyed,
    wait_group_coordinator,
)
from services.runtime.errors import DeliveryFailed
from services.supervisor.faults import PrivateBroker

pytestmark = pytest.mark.integration

INPUTS = 400
CALL_LIMIT_S = 45.0  # past the adapter's own 30 s call timeout: a call still waiting has hung
RESUME_LIMIT_S = 60.0  # from the restart to the first transaction committed after it


@pytest.fixture(scope="module")
async def broker(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[PrivateBroker]:
    broker = PrivateBroker(Path(tmp_path_factory.mktemp("broker-restart")) / "broker")
    await broker.start()
    try:
        await wait_group_coordinator(broker.bootstrap)
        yield broker
    finally:
        await broker.stop()


async def _committed(bootstrap: str, group: str) -> dict[TopicPartition, int]:
    admin = make_admin(bootstrap)
    await admin.start()
    try:
        return {tp: meta.offset for tp, meta in (await admin.list_consumer_group_offsets(group)).items()}
    finally:
        await admin.close()


async def _replace(producers: list[Any], bootstrap: str, transactional_id: str, client: str) -> None:
    """What a service restart does after a failed transaction: a new producer, which fences the old."""
    old = producers[-1]
    try:
        await asyncio.wait_for(old.stop(), CALL_LIMIT_S)
    except (*KAFKA_ERRORS, DeliveryFailed, TimeoutError):
        pass  # a fenced producer's own leftovers; the new one supersedes it
    new = make_producer(bootstrap, transactional_id, client=client)
    while True:
        try:
            await asyncio.wait_for(new.start(), CALL_LIMIT_S)
            break
        except (*KAFKA_ERRORS, DeliveryFailed):  # the coordinator still loading after the restart
            await new.stop()
            new = make_producer(bootstrap, transactional_id, client=client)
            await asyncio.sleep(0.5)
    producers.append(new)


@pytest.mark.parametrize("client", ["confluent", "aiokafka"])
async def test_transactions_resume_after_broker_sigkill(broker: PrivateBroker, client: str) -> None:
    bootstrap, tag = broker.bootstrap, uuid.uuid4().hex[:6]
    source, sink, group = f"r{tag}.in", f"r{tag}.out", f"r{tag}.group"
    await ensure_topics(bootstrap, [TopicSpec(name, "key", 4, 3_600_000, "test", ("test",), "restart")
                                    for name in (source, sink)])
    feeder = make_producer(bootstrap, client=client)
    producer = make_producer(bootstrap, f"r{tag}.txn", client=client)
    consumer = make_consumer(bootstrap, group, source, client=client)
    await feeder.start()
    await producer.start()
    await consumer.start()
    producers = [producer]
    restarted: list[float] = []
    committed_at: list[float] = []
    failures: list[str] = []

    async def feed() -> None:
        """The input arrives throughout: before, during and after the outage."""
        sent = 0
        while sent < INPUTS:
            try:
                await await_delivery(await send_keyed(feeder, [(source, str(sent % 8).encode(), str(sent).encode())]))
                sent += 1
            except (*KAFKA_ERRORS, DeliveryFailed):
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.02)

    async def transact(records: dict[Any, list[Any]], offsets: dict[Any, int]) -> None:
        async with producers[-1].transaction():
            delivered = await send_keyed(producers[-1], [(sink, r.key or b"", r.value or b"")
                                                    for rs in records.values() for r in rs])
            await producers[-1].send_offsets_to_transaction(offsets, group)
            await await_delivery(delivered)

    feeding = asyncio.create_task(feed())
    done: dict[Any, int] = {}  # the offsets of the last committed transaction
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            if restarted and not any(t > restarted[0] for t in committed_at):
                assert time.monotonic() - restarted[0] < RESUME_LIMIT_S, (
                    f"no transaction committed {RESUME_LIMIT_S} s after the broker restarted; failures {failures}")
            if len(committed_at) == 20 and not restarted:
                # Between two transactions, as a lockstep run's kill comes once the platform has
                # settled: the next transaction is the first the restarted broker sees.
                await broker.kill()
                await asyncio.sleep(1.0)
                await broker.start()
                restarted.append(time.monotonic())
            if feeding.done() and restarted and sum(done.values()) >= INPUTS:
                break
            try:
                records = await consumer.getmany(timeout_ms=100)
            except KAFKA_ERRORS as exc:
                failures.append(f"getmany: {exc!r}")
                await asyncio.sleep(0.2)
                continue
            if not records:
                continue
            offsets = {**done, **{tp: rs[-1].offset + 1 for tp, rs in records.items()}}
            try:
                await asyncio.wait_for(transact(records, offsets), CALL_LIMIT_S * 3)
            except TimeoutError:
                pytest.fail(f"a transaction hung for {CALL_LIMIT_S * 3} s (calls bounded by 30 s); "
                            f"failures before: {failures}")
            except (*KAFKA_ERRORS, DeliveryFailed) as exc:
                failures.append(f"transaction: {exc!r}")
                for tp in records:  # read again from the last commit
                    consumer.seek(tp, done.get(tp, 0))
                await _replace(producers, bootstrap, f"r{tag}.txn", client)
                continue
            done = offsets
            committed_at.append(time.monotonic())
        assert restarted, "the broker was never killed: too few transactions before the outage"
        after = [t for t in committed_at if t > restarted[0]]
        assert after, f"no transaction committed after the restart; failures {failures}"
        committed = await _committed(bootstrap, group)
        assert sum(committed.values()) == INPUTS, f"group committed {committed}; failures {failures}"
    finally:
        feeding.cancel()
        await consumer.stop()
        await asyncio.wait_for(producers[-1].stop(), CALL_LIMIT_S)
        await feeder.stop()
