"""What a strategy knows about its own orders: position from fills, and intents still working.

Shared by every strategy: intents stay `working` until a terminal order event (fill, cancel,
reject) comes back on orders.events, so a strategy never double-counts an order in flight.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from schemas.events import Event, OrderCancelled, OrderFilled, OrderPartiallyFilled, OrderRejected

ZERO = Decimal(0)


class OwnOrders(msgspec.Struct, frozen=True):
    position: Decimal = ZERO
    working: dict[str, Decimal] = {}  # intent id → signed qty still expected to fill

    def expected_position(self) -> Decimal:
        """Position if every working order filled: what the next decision should start from."""
        return self.position + sum(self.working.values(), ZERO)

    def submitted(self, intent_id: str, signed_qty: Decimal) -> OwnOrders:
        return OwnOrders(self.position, {**self.working, intent_id: signed_qty})

    def apply(self, event: Event) -> OwnOrders:
        """Fold one of our order events (others are ignored by the caller)."""
        intent_id = getattr(event, "intent_id", "")
        if isinstance(event, OrderPartiallyFilled | OrderFilled):
            signed = event.fill_qty if event.side == "Buy" else -event.fill_qty
            working = dict(self.working)
            if intent_id in working:
                left = working[intent_id] - signed
                if isinstance(event, OrderFilled) or left == 0:
                    del working[intent_id]
                else:
                    working[intent_id] = left
            return OwnOrders(self.position + signed, working)
        if isinstance(event, OrderCancelled | OrderRejected) and intent_id in self.working:
            return OwnOrders(self.position, {k: v for k, v in self.working.items() if k != intent_id})
        return self
