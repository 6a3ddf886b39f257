"""`hean replay` on several processes: shards that cannot affect each other fold side by side.

Why: a replay is CPU-bound in Python (decode, fold, aiokafka's record parsing), so one process
uses one core. Two kinds of service can be split by input partition without changing the result:

- a partitioned service: each shard is its own state, fed only by its partition of each input;
- an order-free service with `combine` (accounting): the parts fold into disjoint keys and
  `combine` joins them, refusing any overlap.

The parent reads the end offsets once, so every worker stops at the same cut of the log, and
deals the partition indices to workers by record count (the heaviest first, to the lightest
worker). Each worker is a fresh process (spawn) that rebuilds the service from the registry,
runs the ordinary `replay` on its partitions and sends back its states; the hash is taken over
the joined states exactly as a single-process replay takes it. Anything else falls back to one
process.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from aiokafka import TopicPartition

from services.runtime.bus import make_consumer, partitions_of
from services.runtime.run import ReplayResult, replay
from services.runtime.service import ServiceDef, StartFrom, state_hash
from services.runtime.settings import RuntimeSettings

__all__ = ["can_split", "default_workers", "replay_split"]

log = logging.getLogger(__name__)


def can_split(definition: ServiceDef[Any]) -> bool:
    """True when folding groups of partitions apart and joining them equals one fold."""
    return definition.partitioned or (definition.order_free and definition.combine is not None)


def default_workers() -> int:
    """One more worker than cores: each waits on the broker part of the time (measured on 2 cores:
    3 workers 180k fills/s, 2 workers 157k/s, 1 worker 115k/s)."""
    return (os.cpu_count() or 1) + 1


def deal(weights: dict[int, int], workers: int) -> list[set[int]]:
    """Partition indices in `workers` groups of near-equal record counts; empty ones go along."""
    busy = sorted((p for p, w in weights.items() if w > 0), key=lambda p: (-weights[p], p))
    groups: list[set[int]] = [set() for _ in range(max(1, min(workers, len(busy))))]
    loads = [0] * len(groups)
    for partition in busy:
        lightest = loads.index(min(loads))
        groups[lightest].add(partition)
        loads[lightest] += weights[partition]
    groups[0] |= {p for p, w in weights.items() if w <= 0}
    return groups


async def replay_split(
    name: str,
    definition: ServiceDef[Any],
    settings: RuntimeSettings,
    start: StartFrom,
    to_offset: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
) -> ReplayResult:
    """`replay` of the registered service `name` over up to `workers` processes (see the module
    docstring); the result, hash included, is the one a single-process replay gives."""
    workers = default_workers() if workers is None else workers
    if workers <= 1 or not can_split(definition):
        return await replay(definition, settings, start, to_offset, progress)
    began = time.perf_counter()
    ends = await _end_offsets(definition, settings)
    weights: dict[int, int] = {}
    for tp, (first, end) in ends.items():
        weights[tp.partition] = weights.get(tp.partition, 0) + end - first
    groups = deal(weights, workers)
    if len(groups) <= 1:
        return await replay(definition, settings, start, to_offset, progress)
    context = multiprocessing.get_context("spawn")
    counters = context.Array("q", 2 * len(groups), lock=False)
    pipes, processes = [], []
    for index, group in enumerate(groups):
        receiver, sender = context.Pipe(duplex=False)
        cut = {tp: end for tp, (_first, end) in ends.items() if tp.partition in group}
        process = context.Process(target=_worker, daemon=True, args=(
            name, settings, start, to_offset, sorted(group), cut, counters, index, sender))
        process.start()
        sender.close()
        pipes.append(receiver)
        processes.append(process)
    try:
        parts = await _collect(pipes, processes, counters, progress)
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
            process.join()
    if any(isinstance(part, BaseException) for part in parts):
        raise next(part for part in parts if isinstance(part, BaseException))
    states: dict[int, Any] = {}
    if definition.partitioned:
        for part_states, _records, _undecodable in parts:
            states.update({shard: definition.decode_state(raw) for shard, raw in part_states.items()})
    else:
        assert definition.combine is not None
        try:
            states[0] = definition.combine([definition.decode_state(p[0][0]) for p in parts])
        except ValueError as exc:
            log.warning("partition groups overlap (%s); replaying in one process", exc)
            return await replay(definition, settings, start, to_offset, progress)
    records = sum(p[1] for p in parts)
    undecodable = sum(p[2] for p in parts)
    return ReplayResult(states, records, undecodable, state_hash(states), time.perf_counter() - began)


async def _end_offsets(definition: ServiceDef[Any],
                       settings: RuntimeSettings) -> dict[TopicPartition, tuple[int, int]]:
    """(beginning, end) of every input partition, read once: the cut every worker stops at."""
    consumer = make_consumer(settings.kafka_bootstrap, None)
    await consumer.start()
    try:
        tps = await partitions_of(consumer, [settings.topic_prefix + t for t in definition.inputs])
        beginnings = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        return {tp: (beginnings[tp], ends[tp]) for tp in tps}
    finally:
        await consumer.stop()


async def _collect(pipes: list[Connection], processes: list[Any], counters: Any,
                   progress: Callable[[int, int], None] | None) -> list[Any]:
    """Each worker's (states, records, undecodable) or its exception, reporting progress meanwhile."""
    results: list[Any] = [None] * len(pipes)
    waiting = set(range(len(pipes)))
    while waiting:
        for index in list(waiting):
            if pipes[index].poll():  # a result, or the end of the pipe when the worker died
                try:
                    results[index] = pipes[index].recv()
                except EOFError:
                    processes[index].join()
                    results[index] = RuntimeError(
                        f"replay worker {index} died (exit code {processes[index].exitcode})")
                waiting.discard(index)
        if progress is not None:
            progress(sum(counters[0::2]), sum(counters[1::2]))
        if waiting:
            await asyncio.sleep(0.05)
    return results


def _worker(name: str, settings: RuntimeSettings, start: StartFrom, to_offset: int | None, partitions: list[int],
            ends: dict[TopicPartition, int], counters: Any, index: int, result: Connection) -> None:
    """One worker process: replay the partitions given, send back encoded states and counts."""
    import uvloop

    from services.registry import definition as registered

    def report(done: int, total: int) -> None:
        counters[2 * index], counters[2 * index + 1] = done, total

    try:
        definition = registered(name)
        outcome = uvloop.run(replay(definition, settings, start, to_offset, report, partitions, ends))
        result.send(({shard: definition.encode_state(state) for shard, state in outcome.states.items()},
                     outcome.records, outcome.undecodable))
    except BaseException as exc:  # the parent re-raises it
        result.send(exc)
    finally:
        result.close()
