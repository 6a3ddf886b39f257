"""The floor under tick-to-order: what Kafka hops alone cost on this machine with HEAN's client.

Tick-to-order crosses three hops (ingest → strategy → risk → execution). This bench sends
timestamped records at a fixed rate through a chain of relay processes that do nothing but
consume and re-produce (with the services' consumer and producer settings, bus.py), and
measures send → final receive. Two chains: plain relays (idempotent producer, offsets committed
every 50 ms, as the runtime commits batches without outputs), and relays that commit each batch
in a Kafka transaction, as the service loop does when a batch has outputs. No strategy, no risk
rules, no venue, no other load: whatever the full loop measures above these figures is HEAN's
own cost.

Both Kafka clients (aiokafka and confluent-kafka, bus.py) run the same chains in the same run, so
their ratio is measured on the same machine and load; the faster one is the default.
"""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import struct
import time
import uuid
from typing import Any

from schemas.topics import TopicSpec
from services.runtime.bus import KAFKA_CLIENTS, ensure_topics, make_consumer, make_producer

STAMP = struct.Struct(">q")
COMMIT_INTERVAL_S = 0.05  # RuntimeSettings.commit_interval_ms


def _relay(bootstrap: str, source: str, target: str, transactional: bool, ready: Any, client: str) -> None:
    """Consume `source`, produce each record to `target` (one transaction per batch if asked)."""
    import uvloop

    async def run() -> None:
        group = f"relay-{source}"
        consumer = make_consumer(bootstrap, group, source, client=client)
        producer = make_producer(bootstrap, f"relay-{source}" if transactional else None, client=client)
        await consumer.start()
        await producer.start()
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100)
        ready.set()
        pending: dict[Any, int] = {}
        committed_at = time.monotonic()
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=10)
                if pending and time.monotonic() - committed_at >= COMMIT_INTERVAL_S:
                    await consumer.commit(pending)  # as the runtime commits plain batches: every 50 ms
                    pending, committed_at = {}, time.monotonic()
                if not batch:
                    continue
                offsets = {tp: records[-1].offset + 1 for tp, records in batch.items()}
                if transactional:
                    async with producer.transaction():
                        for records in batch.values():
                            for record in records:
                                await producer.send(target, record.value, key=record.key)
                        await producer.send_offsets_to_transaction(offsets, group)
                else:
                    for records in batch.values():
                        for record in records:
                            await producer.send(target, record.value, key=record.key)
                    pending.update(offsets)
        finally:
            await consumer.stop()
            await producer.stop()

    uvloop.run(run())


async def chain_latency(bootstrap: str, hops: int, transactional: bool, rate: float = 1000.0,
                        seconds: float = 10.0, client: str = "aiokafka") -> dict[str, float]:
    """p50/p99/p999 in ms of send → receive through `hops` topics (hops - 1 relays)."""
    prefix = f"benchhop{uuid.uuid4().hex[:6]}."
    topics = [f"{prefix}hop{i}" for i in range(hops)]
    await ensure_topics(bootstrap, [TopicSpec(t, "key", 1, 3_600_000, "bench", ("bench",), "a latency probe")
                                    for t in topics])
    context = multiprocessing.get_context("spawn")
    relays = []
    for source, target in itertools.pairwise(topics):
        ready = context.Event()
        process = context.Process(target=_relay, args=(bootstrap, source, target, transactional, ready, client),
                                  daemon=True)
        process.start()
        relays.append((process, ready))
    try:
        for _process, ready in relays:
            while not ready.is_set():
                await asyncio.sleep(0.05)
        return await _measure(bootstrap, topics[0], topics[-1], rate, seconds, client)
    finally:
        for process, _ready in relays:
            process.kill()
            process.join()


async def _measure(bootstrap: str, first: str, last: str, rate: float, seconds: float,
                   client: str) -> dict[str, float]:
    consumer = make_consumer(bootstrap, f"sink-{last}", last, client=client)
    producer = make_producer(bootstrap, client=client)
    await consumer.start()
    await producer.start()
    latencies: list[float] = []
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100)
        done = asyncio.Event()

        async def receive() -> None:
            while not done.is_set():
                batch = await consumer.getmany(timeout_ms=100)
                now = time.perf_counter_ns()
                for records in batch.values():
                    latencies.extend((now - STAMP.unpack(r.value)[0]) / 1e6 for r in records)

        receiver = asyncio.create_task(receive())
        interval, count = 1.0 / rate, int(rate * seconds)
        started = time.perf_counter()
        for i in range(count):
            await producer.send(first, STAMP.pack(time.perf_counter_ns()), key=b"k")
            delay = started + (i + 1) * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        await asyncio.sleep(1.0)
        done.set()
        await receiver
    finally:
        await consumer.stop()
        await producer.stop()
    latencies.sort()
    if not latencies:
        raise RuntimeError("no record came through the chain")

    def q(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 2)

    return {"p50_ms": q(0.5), "p99_ms": q(0.99), "p999_ms": q(0.999), "received": len(latencies)}


async def bench_kafka_hops(bootstrap: str, clients: tuple[str, ...] = KAFKA_CLIENTS) -> dict[str, Any]:
    """One hop, and three hops with plain and with transactional relays, at 1k records/s, with
    each client; the unprefixed figures are the default client's (HEAN_KAFKA_CLIENT)."""
    from services.runtime.bus import kafka_client

    out: dict[str, Any] = {"rate_per_s": 1000, "default_client": kafka_client()}
    for client in clients:
        for name, hops, transactional in (("one_hop", 1, False), ("three_hops_plain", 3, False),
                                          ("three_hops_transactional", 3, True)):
            figures = await chain_latency(bootstrap, hops, transactional, client=client)
            out.update({f"{client}_{name}_{k}": v for k, v in figures.items()})
            if client == out["default_client"]:
                out.update({f"{name}_{k}": v for k, v in figures.items()})
    for name in ("one_hop", "three_hops_plain", "three_hops_transactional"):
        reference = out.get(f"aiokafka_{name}_p50_ms")
        if reference and out.get(f"confluent_{name}_p50_ms"):
            out[f"{name}_p50_confluent_over_aiokafka"] = round(out[f"confluent_{name}_p50_ms"] / reference, 2)
    return out
