"""The order a service applies its input records in: as they were written, across its inputs.

A service with several inputs (strategy: trades, books, its own order events) can reach a
different state from the same records taken in a different interleaving. Within a partition the
log fixes the order; across partitions it does not, and a consumer gets them in whatever order
the fetches return. So the runtime merges the partitions of each shard by record timestamp (the
producer's create time; ties by input order, partition, offset), never reordering a partition:

- where the records are known to exist (a replay up to the end offsets, a restart re-applying
  up to the committed offsets), the merge is exact: it waits for a partition's next records
  before going past them, so a replay, a recovery and the live run that wrote them agree;
- beyond that (live), it merges what has arrived and never waits, as Kafka Streams does with
  `max.task.idle.ms` = 0: records that arrive later than newer records of another input are
  applied when they arrive. When inputs arrive in time order (always in lockstep runs), live
  and replay agree exactly; otherwise the replay's order is the canonical one.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aiokafka import TopicPartition


class InputMerge:
    """Buffers fetched records per partition and hands them out in merged order, per shard."""

    def __init__(self, shard_of: Callable[[TopicPartition], int], inputs: Iterable[str]) -> None:
        self.shard_of = shard_of
        self.rank = {topic: i for i, topic in enumerate(inputs)}
        self.buffers: dict[TopicPartition, deque[Any]] = {}
        self.targets: dict[TopicPartition, int] = {}
        self.seen: dict[TopicPartition, int] = {}  # offset after the last record added
        self.shards: dict[int, set[TopicPartition]] = {}

    def reset(self, tp: TopicPartition, target: int = 0) -> None:
        """`tp` was (re)positioned: forget what was buffered; records below `target` exist and the
        merge waits for them."""
        self.buffers[tp] = deque()
        self.targets[tp] = target
        self.seen[tp] = 0
        self.shards.setdefault(self.shard_of(tp), set()).add(tp)

    def drop(self, tps: Iterable[TopicPartition]) -> None:
        for tp in tps:
            self.buffers.pop(tp, None)
            self.targets.pop(tp, None)
            self.seen.pop(tp, None)
            shard = self.shards.get(self.shard_of(tp))
            if shard is not None:
                shard.discard(tp)

    def add(self, tp: TopicPartition, records: list[Any]) -> None:
        if records:
            self.buffers[tp].extend(records)
            self.seen[tp] = records[-1].offset + 1

    def holding(self) -> bool:
        return any(self.buffers.values())

    def buffered(self, tp: TopicPartition) -> int:
        return len(self.buffers.get(tp, ()))

    def waiting_on(self) -> list[TopicPartition]:
        """Partitions not yet fetched up to their target: the caller tells their positions (which
        also move past transaction markers, where no record will come)."""
        return [tp for tp, seen in self.seen.items() if seen < self.targets[tp]]

    def ready(self, positions: Mapping[TopicPartition, int]) -> list[tuple[TopicPartition, Any]]:
        """Every record that can be applied now, in merged order. `positions` holds the consumer's
        position of the partitions `waiting_on` named; one below its target holds its shard back."""

        def awaited(tp: TopicPartition) -> bool:
            target = self.targets[tp]
            return not self.buffers[tp] and self.seen[tp] < target and positions.get(tp, 0) < target

        out: list[tuple[TopicPartition, Any]] = []
        for tps in self.shards.values():
            if any(awaited(tp) for tp in tps):
                continue
            heap = [(self._key(tp, self.buffers[tp][0]), tp) for tp in tps if self.buffers[tp]]
            heapq.heapify(heap)
            while heap:
                _, tp = heapq.heappop(heap)
                buffer = self.buffers[tp]
                out.append((tp, buffer.popleft()))
                if buffer:
                    heapq.heappush(heap, (self._key(tp, buffer[0]), tp))
                elif awaited(tp):
                    break  # its next records exist but are not fetched yet
        return out

    def _key(self, tp: TopicPartition, record: Any) -> tuple[int, int, int, int]:
        return record.timestamp, self.rank.get(tp.topic, 0), tp.partition, record.offset


class FetchOrder:
    """`InputMerge`'s interface for an order-free service (`ServiceDef.order_free`): records go out
    as fetched, with no buffering and no waiting, because their interleaving cannot change the state."""

    def __init__(self) -> None:
        self.pending: list[tuple[TopicPartition, Any]] = []

    def reset(self, tp: TopicPartition, target: int = 0) -> None:
        self.drop([tp])

    def drop(self, tps: Iterable[TopicPartition]) -> None:
        gone = set(tps)
        self.pending = [(tp, record) for tp, record in self.pending if tp not in gone]

    def add(self, tp: TopicPartition, records: list[Any]) -> None:
        self.pending += [(tp, record) for record in records]

    def holding(self) -> bool:
        return bool(self.pending)

    def buffered(self, tp: TopicPartition) -> int:
        return 0

    def waiting_on(self) -> list[TopicPartition]:
        return []

    def ready(self, positions: Mapping[TopicPartition, int]) -> list[tuple[TopicPartition, Any]]:
        out, self.pending = self.pending, []
        return out
