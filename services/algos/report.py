"""A parent order's execution report, computed from its fold (pure, exact Decimal).

Implementation shortfall here is Perold's, side-signed so that a cost is positive: what the
children paid against the arrival mid, plus fees, plus the unfilled quantity marked at the mid of
the report's time (the opportunity cost). The bps figure is that against the arrival notional of
the whole parent, the usual yardstick for comparing parents of different sizes.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING

from schemas.events import AlgoCompleted, AlgoProgressed, AlgoReport, Event

if TYPE_CHECKING:
    from services.algos.core import Market, Parent

PRICE_PLACES = Decimal("1e-8")
BPS_PLACES = Decimal("0.01")
ZERO = Decimal(0)


def _q(value: Decimal, places: Decimal) -> Decimal:
    return value.quantize(places, rounding=ROUND_HALF_EVEN)


def shortfall(parent: Parent, mid: Decimal | None) -> tuple[Decimal | None, Decimal | None]:
    """(shortfall in the quote currency, shortfall in bps of the arrival notional); None before the
    parent has an arrival price."""
    arrival, order = parent.arrival, parent.order
    if arrival is None:
        return None, None
    sign = 1 if order.side == "Buy" else -1
    cost = sign * (parent.notional - parent.filled * arrival) + parent.fees
    unfilled = order.qty - parent.filled
    if unfilled and mid is not None:
        cost += sign * unfilled * (mid - arrival)
    return _q(cost, PRICE_PLACES), _q(cost / (arrival * order.qty) * 10_000, BPS_PLACES)


def build(kind: type[AlgoProgressed] | type[AlgoCompleted], parent: Parent, market: Market, cause: Event,
          report_id: str, status: str) -> AlgoReport:
    """The report of `parent` as `cause` (the event that ended a child or the parent) leaves it."""
    order = parent.order
    cost, bps = shortfall(parent, market.mid)
    return kind(
        id=report_id, ts_event=market.ts or cause.ts_event, ts_ingest=cause.ts_ingest, origin_ts=cause.origin_ts,
        parent_id=order.id, account=order.account, strategy=order.strategy, venue=order.venue,
        symbol=order.symbol, side=order.side, kind=order.kind, qty=order.qty, filled_qty=parent.filled,
        avg_price=_q(parent.notional / parent.filled, PRICE_PLACES) if parent.filled else None,
        arrival_price=parent.arrival,
        market_vwap=_q(parent.turnover / parent.volume, PRICE_PLACES) if parent.volume else None,
        market_volume=parent.volume, shortfall=cost, shortfall_bps=bps, fees=parent.fees,
        children=parent.sent, started_ts=parent.started, status=status,  # type: ignore[arg-type]
        detail=parent.detail)
