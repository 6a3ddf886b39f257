"""A strategy's profit and loss as risk keeps it: cash flows and signed quantities of its fills.

PnL = cash + Σ qty * mid, where cash is what the fills paid and received (less fees). That is
realized plus unrealized PnL at the mid, and it is a sum, so it does not depend on the order the
fills are folded in: a fill that arrives before its order's approval is read back (which happens
in a replay, where risk reads its topics in another interleaving) is kept aside under its intent
and added to the strategy's flows when the approval says whose order it was; the total is the same
either way. An average-cost position fold would not be, since its realized part depends on order.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

ZERO = Decimal(0)


class Flows(msgspec.Struct, frozen=True):
    cash: Decimal = ZERO  # Σ -signed qty * price - fees
    qty: dict[str, Decimal] = {}  # signed quantity per symbol

    def add_fill(self, symbol: str, side: str, qty: Decimal, price: Decimal, fee: Decimal) -> Flows:
        signed = qty if side == "Buy" else -qty
        return Flows(self.cash - signed * price - fee, {**self.qty, symbol: self.qty.get(symbol, ZERO) + signed})

    def merge(self, other: Flows) -> Flows:
        qty = dict(self.qty)
        for symbol, q in other.qty.items():
            qty[symbol] = qty.get(symbol, ZERO) + q
        return Flows(self.cash + other.cash, qty)

    def pnl(self, mids: dict[str, Decimal]) -> Decimal | None:
        """Cash plus holdings at the mid; None while a symbol held has no mid to value it."""
        held = {s: q for s, q in self.qty.items() if q}
        if any(s not in mids for s in held):
            return None
        return self.cash + sum((q * mids[s] for s, q in held.items()), ZERO)
