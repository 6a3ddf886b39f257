"""A resting order's queue position, and what a market step fills of it. No fill-when-touched.

When a limit order comes to rest, the size already resting at its price on its side is ahead of
it (`queue_on_arrival`). Each market step then (`step_fill`), in this order:
  1. every public trade whose taker is on the other side and whose price is ours eats the queue
     ahead first; what is left of that trade fills us (a partial fill where it is short);
  2. a trade at a price worse than ours for the taker (through our price: a Sell below our bid,
     a Buy above our ask) took every order at our price, ours included: the rest fills;
  3. the level as the step left it caps the queue ahead: a level that shrank without trades lost
     orders that were ahead of us (cancels are assumed to come from ahead, the optimistic and usual
     choice, since the ones behind us never matter);
  4. an opposite best at or through our price (the other side moved onto ours) fills the rest:
     a venue would have matched that incoming order with ours.
Fills are at the order's own price, as maker. One step gives at most one fill per order, so the
simulator and the backtester, which see the same trades and levels, make the same executions.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

N = TypeVar("N", bound=Any)  # int (ticks, lot steps) or Decimal (prices, sizes)


def queue_on_arrival(level_size: N | None, zero: N) -> N:
    """The size ahead of an order that arrives at a level holding `level_size` (None: empty)."""
    return zero if level_size is None else level_size


def step_fill(side: str, price: N, leaves: N, queue_ahead: N, trades: Iterable[tuple[str, N, N]],
              level_after: N | None, opposite_best: N | None) -> tuple[N, N]:
    """(filled, queue ahead after) for one market step; `trades` are (taker side, price, size)
    in the order printed, `level_after` the size resting at our price on our side after the step
    (None: the level is gone), `opposite_best` the other side's best price after it."""
    zero = leaves - leaves
    filled = zero
    for taker, trade_price, size in trades:
        if taker == side or filled == leaves:
            continue
        if trade_price == price:
            eaten = min(queue_ahead, size)
            queue_ahead -= eaten
            filled += min(leaves - filled, size - eaten)
        elif (trade_price < price) if side == "Buy" else (trade_price > price):
            filled, queue_ahead = leaves, zero
    queue_ahead = min(queue_ahead, zero if level_after is None else level_after)
    if opposite_best is not None and ((opposite_best <= price) if side == "Buy" else (opposite_best >= price)):
        filled = leaves
    return filled, queue_ahead
