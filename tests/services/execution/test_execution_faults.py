"""Execution under bad input and faults, against the simulator over real sockets and the real broker:
malformed private messages and undecodable decisions are dead-lettered and the service goes on;
a failed reconciliation at start is retried and keeps the executor unready; two accounts' executors
each handle every decision of their own account exactly once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal

import pytest
from aiokafka import AIOKafkaProducer

from schemas.events import DeadLettered, IntentApproved, OrderAcknowledged, OrderFilled, SubmitOrder
from schemas.topics import DLQ, ORDERS_DECISIONS, ORDERS_EVENTS
from services.domain.ids import link_id_for
from services.exchange_sim.server import SimConfig, Simulator
from services.execution.config import ExecutionConfig
from services.execution.reports import PRIVATE_SOURCE
from services.execution.shell import Execution
from services.runtime.codec import decode, encode
from services.runtime.settings import RuntimeSettings, Secret
from tests.conftest import create_topics, read_topic, wait_consumed

pytestmark = pytest.mark.integration
KEYS = {"acc-a": ("key-a", "secret-a"), "acc-b": ("key-b", "secret-b")}


def decision(account: str, n: int, order_type: str = "Limit") -> IntentApproved:
    now = time.time_ns()
    intent = SubmitOrder(id=f"{account}-{n}-{now}", ts_event=now, ts_ingest=now, origin_ts=now, account=account,
                         strategy="test", symbol="BTCUSDT", side="Buy", order_type=order_type, qty=Decimal("0.01"),
                         price=Decimal("1000.0") if order_type == "Limit" else None, time_in_force="GTC")
    return IntentApproved(id=f"d-{intent.id}", ts_event=now, ts_ingest=now, origin_ts=now, intent=intent)


async def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for value in values:
            await (await producer.send(topic, value, key=b"BTCUSDT"))
    finally:
        await producer.stop()


async def until(condition: Callable[[], bool], timeout: float = 30, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached in {timeout} s")
        await asyncio.sleep(0.05)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = Simulator(SimConfig(port=0, rest_port=0, rate=20, symbols=("BTCUSDT",), seed=11,
                                    api_keys=tuple(f"{k}:{s}" for k, s in KEYS.values())))
    await simulator.start()
    yield simulator
    await simulator.stop()


def executor(sim: Simulator, bootstrap: str, redis_url: str, prefix: str, account: str = "acc-a",
             **settings: float) -> Execution:
    key, secret = KEYS[account]
    config = ExecutionConfig(account=account, rest_url=f"http://127.0.0.1:{sim.rest_port}",
                             ws_url=f"ws://127.0.0.1:{sim.port}/v5/private", api_key=key, api_secret=Secret(secret),
                             lease_ttl_ms=2_000, **settings)
    return Execution(config, RuntimeSettings(kafka_bootstrap=bootstrap, redis_url=redis_url, topic_prefix=prefix,
                                             instance="0", session_timeout_ms=6_000))


def counter(execution: Execution, name: str, **labels: str) -> float:
    value = execution.metrics.registry.get_sample_value(name, {"service": "execution", **labels})
    return value or 0.0


MALFORMED = [
    b"not json at all",
    b'["a", "list"]',
    b'{"topic": "execution", "data": [{"orderLinkId": "h-x", "symbol": "BTCUSDT"}]}',  # no execId, qty, price
    b'{"topic": "execution", "data": [{"orderLinkId": "h-y", "orderId": "1", "symbol": "BTCUSDT", "execId": "e",'
    b' "side": "Buy", "execQty": "NaN", "execPrice": "1"}]}',
    b'{"topic": "order", "data": "not a list"}',
    b'{"topic": "order", "data": [{"orderLinkId": ["list"], "symbol": "BTCUSDT"}]}',
]


async def test_malformed_private_messages_are_dead_lettered_and_fills_still_arrive(
        sim: Simulator, bootstrap: str, redis_url: str, prefix: str) -> None:
    """Before the fix, the first message without an expected field ended the private-stream task
    silently: the executor looked healthy and no fill reached orders.events again."""
    await create_topics(bootstrap, prefix, (ORDERS_DECISIONS, ORDERS_EVENTS, DLQ))
    execution = executor(sim, bootstrap, redis_url, prefix)
    stop = asyncio.Event()
    task = asyncio.create_task(execution.run(stop))
    try:
        await asyncio.wait_for(execution.active.wait(), 30)
        await until(lambda: any(s["topics"] for s in sim.private_sessions.values()), what="private subscription")
        for connection in list(sim.private_sessions):
            for raw in MALFORMED:
                await connection.send(raw.decode())
        await until(lambda: counter(execution, "hean_dlq_total", reason="malformed") == len(MALFORMED),
                    what="every malformed message dead-lettered")
        market = decision("acc-a", 1, "Market")
        await produce(bootstrap, prefix + ORDERS_DECISIONS, [encode(market)])
        link_id = link_id_for(market.intent.id)

        async def filled() -> bool:
            events = [decode(r.value) for r in await read_topic(bootstrap, prefix + ORDERS_EVENTS)]
            return any(isinstance(e, OrderFilled) and e.order_link_id == link_id for e in events)

        deadline = time.monotonic() + 30
        while not await filled():
            assert time.monotonic() < deadline, "the fill after the malformed messages never reached orders.events"
            await asyncio.sleep(0.2)
        assert not task.done()
        assert counter(execution, "hean_task_failures_total", task="private_stream") == 0
    finally:
        stop.set()
        await task
    letters = [decode(r.value) for r in await read_topic(bootstrap, prefix + DLQ)]
    assert all(isinstance(letter, DeadLettered) for letter in letters)
    assert sorted(letter.payload for letter in letters) == sorted(MALFORMED)
    assert {(letter.source_topic, letter.reason, letter.service) for letter in letters} == {
        (PRIVATE_SOURCE, "malformed", "execution")}
    assert all(letter.error for letter in letters), "each dead letter says what was wrong"


async def test_unanswered_private_pings_reconnect_and_fills_still_arrive(
        sim: Simulator, bootstrap: str, redis_url: str, prefix: str) -> None:
    """The venue stops answering pings on the private stream: the executor replaces the session on
    the pong deadline, reconciles, and the next order's fill still reaches orders.events."""
    await create_topics(bootstrap, prefix, (ORDERS_DECISIONS, ORDERS_EVENTS, DLQ))
    execution = executor(sim, bootstrap, redis_url, prefix, ws_ping_interval=0.2, ws_pong_timeout=0.6)
    stop = asyncio.Event()
    task = asyncio.create_task(execution.run(stop))
    try:
        await asyncio.wait_for(execution.active.wait(), 30)
        await until(lambda: any(s["topics"] for s in sim.private_sessions.values()), what="private subscription")
        await asyncio.sleep(0.5)
        assert counter(execution, "hean_ws_reconnects_total", cause="pong_timeout") == 0, "answered: no reconnect"
        sim.inject("mute_pongs", seconds=1.5)
        await until(lambda: counter(execution, "hean_ws_reconnects_total", cause="pong_timeout") >= 1,
                    timeout=10, what="a reconnect on the pong deadline")
        await asyncio.sleep(1.2)  # the fault is over
        await until(lambda: any(s["topics"] for s in sim.private_sessions.values()), what="resubscribed")
        market = decision("acc-a", 1, "Market")
        await produce(bootstrap, prefix + ORDERS_DECISIONS, [encode(market)])
        link_id = link_id_for(market.intent.id)
        deadline = time.monotonic() + 30
        while not any(isinstance(e, OrderFilled) and e.order_link_id == link_id
                      for e in [decode(r.value) for r in await read_topic(bootstrap, prefix + ORDERS_EVENTS)]):
            assert time.monotonic() < deadline, "no fill after the private session was replaced"
            await asyncio.sleep(0.2)
        assert counter(execution, "hean_ws_reconnects_total", cause="stale") == 0
        assert not task.done()
    finally:
        stop.set()
        await task


async def test_undecodable_decisions_are_dead_lettered_and_the_next_one_is_placed(
        sim: Simulator, bootstrap: str, redis_url: str, prefix: str) -> None:
    await create_topics(bootstrap, prefix, (ORDERS_DECISIONS, ORDERS_EVENTS, DLQ))
    execution = executor(sim, bootstrap, redis_url, prefix)
    good = decision("acc-a", 2)
    garbage = [b"\xc1\xc1 not msgpack", b"", encode({"type": "NoSuchEvent", "v": 1})]
    await produce(bootstrap, prefix + ORDERS_DECISIONS, [*garbage, encode(good)])
    stop = asyncio.Event()
    task = asyncio.create_task(execution.run(stop))
    try:
        await asyncio.wait_for(execution.active.wait(), 30)
        await wait_consumed(bootstrap, execution.group_id, prefix + ORDERS_DECISIONS)
    finally:
        stop.set()
        await task
    assert sim.private.created_link_ids == [link_id_for(good.intent.id)]
    letters = [decode(r.value) for r in await read_topic(bootstrap, prefix + DLQ)]
    assert sorted(letter.source_offset for letter in letters) == [0, 1, 2]
    assert {letter.source_topic for letter in letters} == {prefix + ORDERS_DECISIONS}
    assert sorted(letter.payload for letter in letters) == sorted(garbage)
    assert sum(counter(execution, "hean_dlq_total", reason=r) for r in ("malformed", "invalid")) == len(garbage)


async def test_a_failed_reconciliation_at_start_is_retried_and_keeps_the_executor_unready(
        sim: Simulator, bootstrap: str, redis_url: str, prefix: str) -> None:
    """Before the fix a reconciliation error ended the start (or was swallowed after a drop); now it
    is logged, counted and retried with backoff, and hean_ready stays 0 until it succeeded."""
    await create_topics(bootstrap, prefix, (ORDERS_DECISIONS, ORDERS_EVENTS, DLQ))
    execution = executor(sim, bootstrap, redis_url, prefix, breaker_open_seconds=1.0)
    sim.private.inject("http5xx", 6)  # every REST call answers 502 until these are used up (two attempts)
    stop = asyncio.Event()
    task = asyncio.create_task(execution.run(stop))
    try:
        await until(lambda: counter(execution, "hean_reconcile_failures_total") >= 1, what="a counted failure")
        assert not execution.active.is_set()
        assert execution.metrics.registry.get_sample_value("hean_ready", {"service": "execution"}) == 0
        await asyncio.wait_for(execution.active.wait(), 60)  # the faults are used up: it reconciled
        await until(lambda: execution.metrics.registry.get_sample_value("hean_ready", {"service": "execution"}) == 1,
                    what="ready after reconciling")
        good = decision("acc-a", 3)
        await produce(bootstrap, prefix + ORDERS_DECISIONS, [encode(good)])
        await wait_consumed(bootstrap, execution.group_id, prefix + ORDERS_DECISIONS)
        assert sim.private.created_link_ids == [link_id_for(good.intent.id)]
        assert not task.done()
    finally:
        stop.set()
        await task


async def test_two_accounts_each_decision_handled_once_by_its_own_executor(
        sim: Simulator, bootstrap: str, redis_url: str, prefix: str) -> None:
    """Before the fix both executors shared one consumer group: each read only some partitions, so
    decisions keyed to the other executor's partitions were never placed."""
    await create_topics(bootstrap, prefix, (ORDERS_DECISIONS, ORDERS_EVENTS, DLQ))
    executors = {account: executor(sim, bootstrap, redis_url, prefix, account) for account in KEYS}
    stop = asyncio.Event()
    tasks = [asyncio.create_task(e.run(stop)) for e in executors.values()]
    symbols = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "DOGEUSDT", "ADAUSDT")  # keys spread over partitions
    decisions = []
    for n in range(12):
        d = decision(("acc-a", "acc-b")[n % 2], n)
        decisions.append(d)
    try:
        await asyncio.gather(*(asyncio.wait_for(e.active.wait(), 30) for e in executors.values()))
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
        await producer.start()
        try:
            for n, d in enumerate(decisions):  # the key decides the partition, as a per-symbol key would
                await (await producer.send(prefix + ORDERS_DECISIONS, encode(d), key=symbols[n % 6].encode()))
        finally:
            await producer.stop()
        for e in executors.values():
            await wait_consumed(bootstrap, e.group_id, prefix + ORDERS_DECISIONS)
        await until(lambda: len(sim.private.created_link_ids) >= len(decisions), what="every decision placed")
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    placed = sim.private.created_link_ids
    assert sorted(placed) == sorted(link_id_for(d.intent.id) for d in decisions), "each decision placed once"
    ledger = sim.engine.ledger()
    for account, (key, _secret) in KEYS.items():
        on_venue = {o["orderLinkId"] for o in ledger[key]["orders"]}
        assert on_venue == {link_id_for(d.intent.id) for d in decisions if d.intent.account == account}
    events = [decode(r.value) for r in await read_topic(bootstrap, prefix + ORDERS_EVENTS)]
    acked = [(e.account, e.order_link_id) for e in events if isinstance(e, OrderAcknowledged)]
    assert sorted(acked) == sorted((d.intent.account, link_id_for(d.intent.id)) for d in decisions)
