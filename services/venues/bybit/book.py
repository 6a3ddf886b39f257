"""Bybit V5's book sync rule on the shared L2 book (bybit-v5.md §1.5). Pure: no I/O.

A snapshot replaces the book; a delta must carry u == last_u + 1 (u <= last_u is an old message
and is ignored); u == 1 is a snapshot after a venue restart (the normalizer treats it as one);
anything else is a gap: the book is stale until the next snapshot, which the shell asks for by
resubscribing the topic (Bybit sends a snapshot on every subscribe).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from services.venues.book import L2Book

__all__ = ["BookGap", "BybitBook"]


class BookGap(Exception):
    """A delta whose update id does not follow the book's: the book is now stale."""

    def __init__(self, symbol: str, expected: int, got: int) -> None:
        super().__init__(f"{symbol}: expected update id {expected}, got {got}; book is stale until a snapshot")
        self.expected = expected
        self.got = got


class BybitBook(L2Book):
    """An L2Book that takes Bybit deltas only in update-id order."""

    __slots__ = ()

    def apply_delta(self, bids: Iterable[Sequence[str]], asks: Iterable[Sequence[str]], update_id: int,
                    seq: int = 0) -> int:
        """Apply a delta in sequence; returns levels applied (0 for an old, ignored message).

        Raises BookGap (and marks the book stale) when update ids skip, or when the book is
        already stale: nothing is applied to a book that is known to be wrong.
        """
        if self.stale:
            raise BookGap(self.symbol, self.update_id + 1, update_id)
        if update_id <= self.update_id:
            return 0
        if update_id != self.update_id + 1:
            self.stale = True
            raise BookGap(self.symbol, self.update_id + 1, update_id)
        n = self.bids.apply(bids) + self.asks.apply(asks)  # apply_levels, inlined: this is the hot path
        self.update_id = update_id
        self.seq = seq
        return n
