"""What a strategy knows about its own orders: its position from fills, and intents still working.

Shared by every strategy: intents stay `working` until a terminal order event (fill, cancel,
reject) comes back on orders.events, so a strategy never double-counts an order in flight. The
position is the domain's fill → position fold (services/domain/position.py), so a strategy's view
of its quantity, average price and PnL is accounting's, to the digit.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from schemas.events import Event, OrderCancelled, OrderFilled, OrderPartiallyFilled, OrderRejected
from services.domain.position import FLAT, Position, apply_fill, signed_qty

ZERO = Decimal(0)


class OwnOrders(msgspec.Struct, frozen=True):
    held: Position = FLAT
    working: dict[str, Decimal] = {}  # intent id → signed qty still expected to fill

    @property
    def position(self) -> Decimal:
        """The signed quantity held."""
        return self.held.qty

    def expected_position(self) -> Decimal:
        """Position if every working order filled: what the next decision should start from."""
        return self.held.qty + sum(self.working.values(), ZERO)

    def submitted(self, intent_id: str, signed_qty: Decimal) -> OwnOrders:
        return OwnOrders(self.held, {**self.working, intent_id: signed_qty})

    def apply(self, event: Event) -> OwnOrders:
        """Fold one of our order events (others are ignored by the caller)."""
        intent_id = getattr(event, "intent_id", "")
        if isinstance(event, OrderPartiallyFilled | OrderFilled):
            signed = signed_qty(event.side, event.fill_qty)
            working = dict(self.working)
            if intent_id in working:
                left = working[intent_id] - signed
                if isinstance(event, OrderFilled) or left == 0:
                    del working[intent_id]
                else:
                    working[intent_id] = left
            return OwnOrders(apply_fill(self.held, event.side, event.fill_qty, event.fill_price, event.fee), working)
        if isinstance(event, OrderCancelled | OrderRejected) and intent_id in self.working:
            return OwnOrders(self.held, {k: v for k, v in self.working.items() if k != intent_id})
        return self
