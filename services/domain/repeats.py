"""The repeat filter a reader of an idempotent emitter keeps in its state (docs/COMMITS.md point 5).

Without a transaction, an emitter that crashes between "outputs acknowledged" and "offsets
committed" sends some outputs again, with the ids and event times of the first. A reader keeps
the ids it applied per 10 s bucket of event time for the newest 5 minutes and drops an id it
finds in its bucket. The window is a set: it depends only on which ids were seen, never on the
order they came in, so a replay and the live run hold the same one (state hashes agree).

Risk (`AccountRisk.decided`), execution (`AccountExecution.acted`), algos and the strategy all
keep their windows with this module.
"""

from __future__ import annotations

__all__ = ["BUCKETS", "BUCKET_NS", "Window", "remember", "seen"]

BUCKET_NS = 10 * 10**9  # one bucket: 10 s of event time
BUCKETS = 30  # kept: the newest 5 minutes (a repeat comes within an emitter's restart)

Window = dict[str, dict[str, None]]
"""Bucket of event time ("%012d", so keys sort as numbers) → ids applied in it."""


def _bucket(ts_event: int) -> str:
    return f"{ts_event // BUCKET_NS:012d}"


def seen(window: Window, event_id: str, ts_event: int) -> bool:
    """Whether `event_id` (of event time `ts_event`) was applied already: a repeat to drop."""
    ids = window.get(_bucket(ts_event))
    return ids is not None and event_id in ids


def remember(window: Window, event_id: str, ts_event: int) -> Window:
    """The window with `event_id` noted (a new dict; the given one is not changed). Buckets older
    than the window go, and an id older than the window is not kept, so that the set is the same
    whatever order the ids came in."""
    bucket = _bucket(ts_event)
    newest = max((bucket, *window))
    floor = _bucket((int(newest) - BUCKETS + 1) * BUCKET_NS)
    kept = {b: ids for b, ids in window.items() if b >= floor}
    if bucket >= floor:
        kept[bucket] = {**kept.get(bucket, {}), event_id: None}
    return kept
