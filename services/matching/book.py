"""A taker order against one side of a book: which levels it takes, and whether it crosses.

Sides are the taker's: a Buy takes asks (lowest first), a Sell takes bids (highest first).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

N = TypeVar("N", bound=Any)  # int (ticks, lot steps) or Decimal (prices, sizes)


def best_first(levels: Mapping[N, N], taker_side: str) -> list[N]:
    """The prices of the side a `taker_side` order takes, best first."""
    return sorted(levels, reverse=taker_side == "Sell")


def within(price: N, limit: N | None, taker_side: str) -> bool:
    """True when a taker with `limit` (None: market) may trade at `price`."""
    return limit is None or (price <= limit if taker_side == "Buy" else price >= limit)


def crosses(side: str, price: N | None, best_bid: N | None, best_ask: N | None) -> bool:
    """True when an order would trade on arrival: a market order, or a limit at or through the
    opposite best. An empty opposite side crosses nothing."""
    opposite = best_ask if side == "Buy" else best_bid
    if opposite is None:
        return False
    return price is None or (price >= opposite if side == "Buy" else price <= opposite)


def available(levels: Mapping[N, N], taker_side: str, limit: N | None) -> Any:
    """The size a taker could trade at or better than `limit` (what FOK checks)."""
    return sum(size for price, size in levels.items() if within(price, limit, taker_side))


def walk(levels: Mapping[N, N], taker_side: str, limit: N | None, qty: N) -> list[tuple[N, N]]:
    """(price, size) the taker takes, best level first, until `qty` is filled or the limit or the
    book ends. The caller removes what was taken from its book (the liquidity is gone)."""
    taken: list[tuple[N, N]] = []
    left = qty
    for price in best_first(levels, taker_side):
        if not left or not within(price, limit, taker_side):
            break
        take = min(left, levels[price])
        if take:
            taken.append((price, take))
            left -= take
    return taken


def remove(levels: dict[N, N], taken: Iterable[tuple[N, N]]) -> None:
    """Take the walked sizes out of the book; an emptied level is deleted."""
    for price, size in taken:
        left = levels[price] - size
        if left:
            levels[price] = left
        else:
            del levels[price]
