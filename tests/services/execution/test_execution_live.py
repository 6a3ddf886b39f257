"""The execution service against the simulator over real sockets: two executors for one account,
one sends; the standby takes over when the active one stops; a stale decision is not sent; orders
placed by a process that died before reporting them are reconciled, fill by fill, on restart."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest
from aiokafka import AIOKafkaProducer

from schemas.events import (
    IntentApproved,
    OrderAcknowledged,
    OrderCancelled,
    OrderFilled,
    OrderPartiallyFilled,
    OrderRejected,
    SubmitOrder,
    derive_id,
)
from schemas.topics import DLQ, ORDERS_DECISIONS, ORDERS_EVENTS
from services.domain.ids import link_id_for
from services.exchange_sim.server import SimConfig, Simulator
from services.execution.config import ExecutionConfig
from services.execution.shell import Execution
from services.runtime.codec import decode, encode
from services.runtime.settings import RuntimeSettings, Secret
from services.venues.bybit.private import create_request
from services.venues.bybit.rest import BybitRest
from tests.conftest import create_topics, read_topic, wait_consumed

pytestmark = pytest.mark.integration
KEY, SECRET, ACCOUNT = "live-key", "live-secret", "acc-live"


def decision(n: int, order_type: str = "Limit", qty: str = "0.01") -> IntentApproved:
    now = time.time_ns()
    intent = SubmitOrder(id=f"intent-{n}-{now}", ts_event=now, ts_ingest=now, origin_ts=now, account=ACCOUNT,
                         strategy="test", symbol="BTCUSDT", side="Buy", order_type=order_type, qty=Decimal(qty),
                         price=Decimal("1000.0") if order_type == "Limit" else None,  # far below the market: rests
                         time_in_force="GTC")
    return IntentApproved(id=f"d-{intent.id}", ts_event=now, ts_ingest=now, origin_ts=now, intent=intent)


async def send(bootstrap: str, topic: str, decisions: list[IntentApproved], age_ms: int = 0) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for d in decisions:
            await producer.send(topic, encode(d), key=d.intent.symbol.encode(),
                                timestamp_ms=int(time.time() * 1000) - age_ms)
        await producer.flush()
    finally:
        await producer.stop()


async def test_two_executors_one_sends_then_the_standby_takes_over(bootstrap: str, redis_url: str,
                                                                   prefix: str) -> None:
    await create_topics(bootstrap, prefix, (ORDERS_DECISIONS, ORDERS_EVENTS, DLQ))
    sim = Simulator(SimConfig(port=0, rest_port=0, rate=20, symbols=("BTCUSDT",), seed=3,
                              api_keys=(f"{KEY}:{SECRET}",)))
    port = await sim.start()

    def executor(instance: str) -> Execution:
        config = ExecutionConfig(account=ACCOUNT, rest_url=f"http://127.0.0.1:{sim.rest_port}",
                                 ws_url=f"ws://127.0.0.1:{port}/v5/private", api_key=KEY, api_secret=Secret(SECRET),
                                 lease_ttl_ms=2_000, max_decision_age_ms=10_000)
        return Execution(config, RuntimeSettings(kafka_bootstrap=bootstrap, redis_url=redis_url, topic_prefix=prefix,
                                                 instance=instance, session_timeout_ms=6_000))

    first, second = executor("0"), executor("1")
    stops = [asyncio.Event(), asyncio.Event()]
    tasks = [asyncio.create_task(first.run(stops[0]))]
    await asyncio.wait_for(first.active.wait(), 30)
    tasks.append(asyncio.create_task(second.run(stops[1])))
    topic = prefix + ORDERS_DECISIONS
    try:
        fresh = [decision(n) for n in range(5)]
        stale = decision(99)
        await send(bootstrap, topic, fresh)
        await send(bootstrap, topic, [stale], age_ms=60_000)
        await wait_consumed(bootstrap, first.group_id, topic)
        assert not second.active.is_set(), "the second executor waits while the first holds the lease"
        placed = list(sim.private.created_link_ids)
        assert placed == [link_id_for(d.intent.id) for d in fresh], "each fresh decision placed once, by one sender"
        assert first.metrics.orders.labels("execution", "placed")._value.get() == 5
        assert second.metrics.orders.labels("execution", "placed")._value.get() == 0

        stops[0].set()  # the active executor leaves: the standby takes the lease and goes on
        await tasks[0]
        await asyncio.wait_for(second.active.wait(), 30)
        later = [decision(n) for n in range(100, 102)]
        await send(bootstrap, topic, later)
        await wait_consumed(bootstrap, second.group_id, topic, timeout=60)
        assert list(sim.private.created_link_ids) == placed + [link_id_for(d.intent.id) for d in later]
        await asyncio.sleep(1.0)  # the private stream's acks
    finally:
        for stop in stops:
            stop.set()
        await asyncio.gather(*tasks)
        await sim.stop()

    events = [decode(r.value) for r in await read_topic(bootstrap, prefix + ORDERS_EVENTS)]
    rejected = [e for e in events if isinstance(e, OrderRejected)]
    assert [(e.intent_id, e.ret_code) for e in rejected] == [(stale.intent.id, 0)]
    assert rejected[0].reason.startswith("stale decision")
    acked = {e.order_link_id for e in events if isinstance(e, OrderAcknowledged)}
    assert acked == {link_id_for(d.intent.id) for d in fresh + later}
    assert len({e.id for e in events}) == len(events)


async def test_orders_placed_by_a_dead_executor_are_reconciled_fill_by_fill(bootstrap: str, redis_url: str,
                                                                           prefix: str) -> None:
    """The previous executor placed three orders and died before their WebSocket reports reached the
    log: a market order that swept several levels, a resting limit, and a limit cancelled since.
    Their decisions are not committed either. The next executor reports each order's ack, every
    fill under the venue's own execId, and the cancel; re-reading the decisions places nothing twice."""
    await create_topics(bootstrap, prefix, (ORDERS_DECISIONS, ORDERS_EVENTS, DLQ))
    sim = Simulator(SimConfig(port=0, rest_port=0, symbols=("BTCUSDT",), seed=5, lockstep=True,
                              api_keys=(f"{KEY}:{SECRET}",)))
    port = await sim.start()
    swept, resting, cancelled = decision(1, "Market", "0.4"), decision(2), decision(3)
    rest = BybitRest(f"http://127.0.0.1:{sim.rest_port}", KEY, Secret(SECRET))
    try:
        await rest.sync_time()
        for d in (swept, resting, cancelled):
            await rest.place_order(create_request(d.intent))
        await rest.cancel_order("linear", "BTCUSDT", link_id_for(cancelled.intent.id))
    finally:
        await rest.close()
    await send(bootstrap, prefix + ORDERS_DECISIONS, [swept, resting, cancelled])

    config = ExecutionConfig(account=ACCOUNT, rest_url=f"http://127.0.0.1:{sim.rest_port}",
                             ws_url=f"ws://127.0.0.1:{port}/v5/private", api_key=KEY, api_secret=Secret(SECRET))
    executor = Execution(config, RuntimeSettings(kafka_bootstrap=bootstrap, redis_url=redis_url, topic_prefix=prefix,
                                                 instance="0", session_timeout_ms=6_000))
    stop = asyncio.Event()
    task = asyncio.create_task(executor.run(stop))
    try:
        await asyncio.wait_for(executor.active.wait(), 30)
        await wait_consumed(bootstrap, executor.group_id, prefix + ORDERS_DECISIONS)
    finally:
        stop.set()
        await task
        await sim.stop()

    venue = sim.engine.ledger()[KEY]
    assert sorted(sim.private.created_link_ids) == sorted(link_id_for(d.intent.id) for d in (swept, resting, cancelled))
    events = [decode(r.value) for r in await read_topic(bootstrap, prefix + ORDERS_EVENTS)]
    assert len({e.id for e in events}) == len(events), "nothing reported twice"
    fills = [e for e in events if isinstance(e, OrderPartiallyFilled | OrderFilled)]
    executions = [x for x in venue["executions"] if x["orderLinkId"] == link_id_for(swept.intent.id)]
    assert len(executions) > 1, "the market order swept more than one level"
    assert [(f.id, f.fill_qty, f.fill_price, f.fee, f.is_maker, f.ts_event) for f in fills] == [
        (derive_id("exec-fill", x["execId"]), Decimal(x["execQty"]), Decimal(x["execPrice"]), Decimal(x["execFee"]),
         x["isMaker"], int(x["execTime"]) * 1_000_000) for x in executions]
    assert isinstance(fills[-1], OrderFilled) and sum(f.fill_qty for f in fills) == Decimal("0.4")
    assert {e.intent_id for e in events if isinstance(e, OrderAcknowledged)} == {
        d.intent.id for d in (swept, resting, cancelled)}
    assert [e.intent_id for e in events if isinstance(e, OrderCancelled)] == [cancelled.intent.id]
