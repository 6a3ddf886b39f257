"""Drift: the venue's positions and wallet against what execution reported. Pure.

The venue is the truth about what an account holds; orders.events is what HEAN knows of it. They
part when a fill never reaches HEAN (an order placed by hand, a liquidation, an auto-deleverage)
or when HEAN reported one the venue does not have. A difference is not drift by itself: a fill may
be on its way on the private stream while the position already shows it. So a difference counts
only when it is seen twice in a row with the venue's position `seq` (its sequence of the last fill
on that position) unchanged: no fill happened in between, so none can still be on its way.
A drift is reported once; seeing it again (same quantities) says nothing new, and it clears when
the two agree again. The wallet follows the same rule (WalletCheck), its balance in place of the
position and its `seq`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from services.domain.position import Position

__all__ = ["Drift", "PositionCheck", "WalletCheck", "WalletDrift", "expected_wallet"]

ZERO = Decimal(0)


@dataclass(frozen=True)
class Drift:
    symbol: str
    venue_qty: Decimal
    reported_qty: Decimal
    venue_seq: int


@dataclass
class PositionCheck:
    """Suspects (first sightings) and flagged drifts between checks."""

    suspects: dict[str, tuple[Decimal, int]] = field(default_factory=dict)
    flagged: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)

    def check(self, venue: Mapping[str, tuple[Decimal, int]],
              reported: Mapping[str, Decimal]) -> tuple[list[Drift], list[str], list[str]]:
        """One comparison: (new drifts, symbols that agree again, symbols newly suspect)."""
        drifts: list[Drift] = []
        cleared: list[str] = []
        suspect: list[str] = []
        for symbol in sorted(set(venue) | set(reported)):
            venue_qty, seq = venue.get(symbol, (ZERO, -1))
            ours = reported.get(symbol, ZERO)
            if venue_qty == ours:
                self.suspects.pop(symbol, None)
                if self.flagged.pop(symbol, None) is not None:
                    cleared.append(symbol)
                continue
            if self.suspects.get(symbol) != (venue_qty, seq):
                self.suspects[symbol] = (venue_qty, seq)
                suspect.append(symbol)
                continue
            if self.flagged.get(symbol) != (venue_qty, ours):
                self.flagged[symbol] = (venue_qty, ours)
                drifts.append(Drift(symbol, venue_qty, ours, seq))
        return drifts, cleared, suspect


@dataclass(frozen=True)
class WalletDrift:
    venue_balance: Decimal
    expected_balance: Decimal


@dataclass
class WalletCheck:
    """The wallet's rule, the positions' twin: the venue's balance against the one the log implies
    (`expected_wallet`). A difference within `tolerance` is agreement (the venue rounds what it
    settles). A larger one counts only when the same pair is seen twice in a row: neither the
    venue's balance nor the log moved in between, so no fill or settlement can still be on its
    way. A drift is reported once and clears when the two agree again."""

    tolerance: Decimal
    suspect: tuple[Decimal, Decimal] | None = None
    flagged: tuple[Decimal, Decimal] | None = None

    def check(self, venue: Decimal, expected: Decimal) -> tuple[WalletDrift | None, bool, bool]:
        """One comparison: (a new drift or None, agrees again, newly suspect)."""
        if abs(venue - expected) <= self.tolerance:
            self.suspect = None
            cleared, self.flagged = self.flagged is not None, None
            return None, cleared, False
        if self.suspect != (venue, expected):
            self.suspect = (venue, expected)
            return None, False, True
        if self.flagged == (venue, expected):
            return None, False, False
        self.flagged = (venue, expected)
        return WalletDrift(venue, expected), False, False


def expected_wallet(opening_balance: Decimal, books: Mapping[str, Position]) -> Decimal:
    """What the venue's wallet must hold by the log: the opening balance plus the PnL realized
    since, less the fees and funding paid (unrealized PnL is not in a wallet balance)."""
    return opening_balance + sum((p.realized - p.fees - p.funding for p in books.values()), ZERO)
