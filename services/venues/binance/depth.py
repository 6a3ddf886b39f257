"""One symbol's Binance diff-depth stream kept in sync with REST snapshots. Pure: no I/O.

Binance's rules for a local book (USDⓈ-M futures, "How to manage a local order book correctly"):
buffer the stream's events; fetch `GET /fapi/v1/depth` (its `lastUpdateId` L); drop buffered
events with u < L; the first event applied must straddle L (U <= L <= u); after that each event's
`pu` must equal the previous event's `u`, else the book is stale and the process starts again from
the snapshot. Quantities are absolute (0 removes a level; removing an unknown level is normal).

Also accepted as the first event: pu == L, the event right after a snapshot taken exactly on an
event boundary (the book is then continuous by the stream's own chaining rule).

Nothing is emitted from a book that is not in sync or that crossed: `DepthSync` says what to
publish (the snapshot, then each applied update) and when a new snapshot is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from services.venues.book import L2Book

__all__ = ["MAX_BUFFERED", "DepthSync", "DepthUpdate", "Snapshot"]

MAX_BUFFERED = 2_000  # updates kept while a snapshot is on its way; more means it never comes: start over


@dataclass(frozen=True, slots=True)
class DepthUpdate:
    """One `depthUpdate` event: U..u, chained to the previous event by pu."""

    symbol: str
    first_id: int  # U
    final_id: int  # u
    prev_final_id: int  # pu
    event_ms: int  # E
    transaction_ms: int  # T
    bids: Sequence[Sequence[str]]
    asks: Sequence[Sequence[str]]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A `GET /fapi/v1/depth` answer."""

    last_update_id: int
    transaction_ms: int
    bids: Sequence[Sequence[str]]
    asks: Sequence[Sequence[str]]


@dataclass
class Step:
    """What one input did: updates applied in order (to publish), whether the REST snapshot
    was applied first, and whether a (new) snapshot must be fetched."""

    snapshot: Snapshot | None = None
    applied: list[DepthUpdate] = field(default_factory=list)
    need_snapshot: bool = False
    gap: bool = False
    reason: str = ""  # why the book lost sync, for the log


class DepthSync:
    """Book + buffer of one symbol; `on_update` and `on_snapshot` return what to publish."""

    def __init__(self, symbol: str, depth: int) -> None:
        self.book = L2Book(symbol, depth)
        self.buffer: list[DepthUpdate] = []
        self.synced = False
        self.last_final_id = 0
        self.snapshot_requested = False
        # Synced from a snapshot with nothing buffered past it: the next event must straddle the
        # snapshot's id (U <= L <= u, or pu == L), not chain onto it by pu.
        self.awaiting_first = False

    def on_update(self, update: DepthUpdate) -> Step:
        if not self.synced:
            self.buffer.append(update)
            if len(self.buffer) > MAX_BUFFERED:
                del self.buffer[: len(self.buffer) - MAX_BUFFERED]
            return Step(need_snapshot=self._request())
        if update.final_id < self.last_final_id:
            return Step()  # older than the book: already in it
        if self.awaiting_first:
            if not (update.first_id <= self.last_final_id or update.prev_final_id == self.last_final_id):
                return self._lost(update, f"first update {update.first_id}..{update.final_id} after the snapshot "
                                          f"{self.last_final_id} does not straddle it")
            self.awaiting_first = False
        elif update.prev_final_id != self.last_final_id:
            return self._lost(update, f"pu {update.prev_final_id} is not the last u {self.last_final_id}")
        if not self._apply(update):
            return self._lost(None, "crossed")
        return Step(applied=[update])

    def on_snapshot(self, snapshot: Snapshot) -> Step:
        """Apply a fetched snapshot and the buffered updates that follow it."""
        self.snapshot_requested = False
        last = snapshot.last_update_id
        pending = [u for u in self.buffer if u.final_id >= last]
        if pending and not (pending[0].first_id <= last or pending[0].prev_final_id == last):
            # The snapshot is older than everything buffered: a newer one is needed.
            self.buffer = pending
            return Step(need_snapshot=self._request(), gap=True,
                        reason=f"snapshot {last} is older than the first buffered update {pending[0].first_id}")
        self.book.apply_snapshot(snapshot.bids, snapshot.asks, last, last)
        self.buffer = []
        self.last_final_id = last
        self.synced = True
        self.awaiting_first = not pending
        if self.book.crossed():
            return self._lost(None, "crossed snapshot")
        step = Step(snapshot=snapshot)
        for update in pending:
            if update is not pending[0] and update.prev_final_id != self.last_final_id:
                lost = self._lost(update, f"buffered pu {update.prev_final_id} is not the last u {self.last_final_id}")
                return Step(snapshot, step.applied, lost.need_snapshot, True, lost.reason)
            if not self._apply(update):
                lost = self._lost(None, "crossed")
                return Step(snapshot, step.applied, lost.need_snapshot, True, lost.reason)
            step.applied.append(update)
        return step

    def _apply(self, update: DepthUpdate) -> bool:
        """Apply in place; False (and nothing to publish) when the book crossed."""
        self.book.apply_levels(update.bids, update.asks, update.final_id, update.final_id)
        self.last_final_id = update.final_id
        return not self.book.crossed()

    def _lost(self, update: DepthUpdate | None, reason: str) -> Step:
        """The chain broke (or the book crossed): stale until a new snapshot."""
        self.synced = False
        self.awaiting_first = False
        self.book.mark_stale()
        self.buffer = [update] if update is not None else []
        return Step(need_snapshot=self._request(), gap=True, reason=reason)

    def _request(self) -> bool:
        """True once per missing snapshot: the shell fetches one, not one per buffered update."""
        if self.snapshot_requested:
            return False
        self.snapshot_requested = True
        return True

    def failed_snapshot(self) -> None:
        """The fetch failed: the next update asks again."""
        self.snapshot_requested = False
