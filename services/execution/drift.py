"""Position drift: the venue's positions against the fills execution reported. Pure.

The venue is the truth about what an account holds; orders.events is what HEAN knows of it. They
part when a fill never reaches HEAN (an order placed by hand, a liquidation, an auto-deleverage)
or when HEAN reported one the venue does not have. A difference is not drift by itself: a fill may
be on its way on the private stream while the position already shows it. So a difference counts
only when it is seen twice in a row with the venue's position `seq` (its sequence of the last fill
on that position) unchanged: no fill happened in between, so none can still be on its way.
A drift is reported once; seeing it again (same quantities) says nothing new, and it clears when
the two agree again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

__all__ = ["Drift", "PositionCheck", "venue_positions"]

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


def venue_positions(rows: list[dict[str, object]]) -> dict[str, tuple[Decimal, int]]:
    """Bybit's /v5/position/list rows as symbol → (signed size, seq); flat rows are left out."""
    out: dict[str, tuple[Decimal, int]] = {}
    for row in rows:
        size = Decimal(str(row.get("size") or "0"))
        if size == 0:
            continue
        side = row.get("side")
        if side not in ("Buy", "Sell"):
            raise ValueError(f"position of {row.get('symbol')!r} has size {size} and side {side!r}")
        out[str(row["symbol"])] = (size if side == "Buy" else -size, int(str(row.get("seq") or 0)))
    return out
