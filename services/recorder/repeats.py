"""One row per event id in the tables whose writers may log an event twice (docs/COMMITS.md).

A writer without a transaction (the idempotent commit mode) that crashes between "outputs
acknowledged" and "offsets committed" sends some outputs again, with the ids, keys (so the
partition) and event times of the first; a dead letter may repeat the same way. Such a copy is
a second record of one event, at a later offset: the recorder drops it, so a query over the
table counts each event once without FINAL or a GROUP BY id.

The filter is the readers' window (services/domain/repeats.py): per table and partition, the ids
recorded per 10 s bucket of event time for the newest 5 minutes. It is mutable here (the recorder
is not a fold, and copies per row would cost) but holds the same set. On assignment it is loaded
from the table itself (`RecentIds.floor`, store.recent_ids): the table holds an exact prefix of
the partition, so a restarted recorder drops exactly what the one before it would have.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from services.domain.repeats import BUCKET_NS, BUCKETS

__all__ = ["RecentIds", "RepeatFilter"]


class RecentIds:
    """One partition's ids per bucket of event time, the newest BUCKETS buckets."""

    __slots__ = ("buckets", "newest")

    def __init__(self) -> None:
        self.buckets: dict[int, set[str]] = {}
        self.newest = -1

    @staticmethod
    def floor(newest_ts: int) -> int:
        """The oldest event time (ns) the window keeps when the newest is `newest_ts`."""
        return (newest_ts // BUCKET_NS - BUCKETS + 1) * BUCKET_NS

    def add(self, event_id: str, ts_event: int) -> bool:
        """Note `event_id`; False when it is a repeat (already in its bucket). An id older than the
        window is not kept and counts as new, as in every reader's window."""
        bucket = ts_event // BUCKET_NS
        if bucket > self.newest:
            self.newest = bucket
            oldest = bucket - BUCKETS + 1
            for old in [b for b in self.buckets if b < oldest]:
                del self.buckets[old]
        elif bucket < self.newest - BUCKETS + 1:
            return True
        ids = self.buckets.get(bucket)
        if ids is None:
            ids = self.buckets[bucket] = set()
        elif event_id in ids:
            return False
        ids.add(event_id)
        return True


class RepeatFilter:
    """The windows of every (table, partition) the recorder holds."""

    def __init__(self) -> None:
        self.windows: dict[tuple[str, int], RecentIds] = {}

    def load(self, table: str, partition: int, recorded: Iterable[tuple[str, int]]) -> None:
        """Start the partition's window from (id, ts_event) rows its table holds, in any order."""
        window = self.windows[table, partition] = RecentIds()
        for event_id, ts_event in recorded:
            window.add(event_id, ts_event)

    def fresh(self, table: str, partition: int, events: Sequence[Any],
              offsets: Sequence[int]) -> tuple[Sequence[Any], Sequence[int]]:
        """The events (and their offsets) whose id the table does not hold yet, the first of each."""
        window = self.windows.get((table, partition))
        if window is None:
            window = self.windows[table, partition] = RecentIds()
        add = window.add
        keep = [i for i, event in enumerate(events) if add(event.id, event.ts_event)]
        if len(keep) == len(events):
            return events, offsets
        return [events[i] for i in keep], [offsets[i] for i in keep]

    def drop(self, table: str, partition: int) -> None:
        """Forget a partition that left this instance (its next owner loads it from the table)."""
        self.windows.pop((table, partition), None)
