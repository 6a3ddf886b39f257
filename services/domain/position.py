"""The one fill → position fold: quantity, average price, realized PnL, fees and funding, exact.

Average-cost accounting of a one-way position (what Bybit's linear contracts and HEAN's simulator
keep), used by accounting, risk, the strategies, the simulator and the backtester alike:
  - a fill in the position's direction adds its value to `entry_value` (= |qty| * average price
    * multiplier, in the quote coin);
  - a fill against it closes min(|position|, |fill|) at the fill price; the closed part of
    `entry_value` is taken pro rata, and realized PnL = exit value - entry value (sign by side);
  - a fill larger than the position flips it: the rest opens at the fill price.
Unrealized PnL = (mark * |qty| * multiplier - entry_value) * direction. Fees and funding are
amounts paid (a rebate or funding received is negative), kept apart from realized PnL so each
can be read on its own: net = realized - fees - funding.

No float anywhere: every value is a Decimal computed from the fills' Decimals, so two folds of the
same fills give the same digits, live and in replay.
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

ZERO = Decimal(0)
ONE = Decimal(1)


class Position(msgspec.Struct, frozen=True):
    """A position after some fills. `qty` is signed: > 0 long, < 0 short."""

    qty: Decimal = ZERO
    entry_value: Decimal = ZERO
    realized: Decimal = ZERO
    fees: Decimal = ZERO
    funding: Decimal = ZERO

    @property
    def avg_entry(self) -> Decimal:
        """The average entry price (multiplier 1; see `avg_price` otherwise); zero when flat."""
        return self.entry_value / abs(self.qty) if self.qty else ZERO

    def avg_price(self, multiplier: Decimal = ONE) -> Decimal:
        return self.entry_value / (abs(self.qty) * multiplier) if self.qty else ZERO

    def unrealized(self, mark: Decimal | None, multiplier: Decimal = ONE) -> Decimal:
        if not self.qty or mark is None:
            return ZERO
        return (mark * abs(self.qty) * multiplier - self.entry_value) * (1 if self.qty > 0 else -1)

    @property
    def net(self) -> Decimal:
        """Realized PnL less fees and funding paid."""
        return self.realized - self.fees - self.funding


FLAT = Position()


class FillRefused(ValueError):
    """A fill without a positive quantity and price: a broken invariant of the log, not a trade."""


def signed_qty(side: str, qty: Decimal) -> Decimal:
    """A fill's quantity signed by side: Buy adds, Sell takes away."""
    return qty if side == "Buy" else -qty


def apply_fill(position: Position, side: str, qty: Decimal, price: Decimal, fee: Decimal = ZERO,
               multiplier: Decimal = ONE) -> Position:
    """The position after one fill (the rules are in the module docstring).

    Written for speed, since a replay folds every fill ever made: Decimal against Decimal
    comparisons (against an int each costs a conversion) and no multiplication by a multiplier of 1.
    """
    if qty <= ZERO or price <= ZERO:
        raise FillRefused(f"Expected a fill with positive qty and price, found qty={qty} price={price}")
    buy = side == "Buy"
    signed = qty if buy else -qty
    value = qty * price if multiplier is ONE or multiplier == ONE else qty * price * multiplier
    fees = position.fees + fee
    held = position.qty
    if not held or (held > ZERO) == buy:
        return Position(held + signed, position.entry_value + value, position.realized, fees, position.funding)
    size = abs(held)
    closing = min(size, qty)
    entry_part = position.entry_value * closing / size
    exit_part = value * closing / qty
    pnl = exit_part - entry_part if held > ZERO else entry_part - exit_part
    new_qty = held + signed
    if not new_qty:
        entry_value = ZERO
    elif qty > closing:
        entry_value = value * (qty - closing) / qty
    else:
        entry_value = position.entry_value - entry_part
    return Position(new_qty, entry_value, position.realized + pnl, fees, position.funding)


def apply_funding(position: Position, paid: Decimal) -> Position:
    """The position after a funding payment: `paid` > 0 was paid by the holder, < 0 received.

    Funding moves neither quantity nor entry value (Bybit settles it in the wallet)."""
    return msgspec.structs.replace(position, funding=position.funding + paid)


def adopt(position: Position, qty: Decimal, avg_entry: Decimal) -> Position:
    """The position after adopting one the venue already held (PositionAdopted): the fill that
    would have opened it, `qty` (signed) at `avg_entry` without fee, so its entry value, and its
    unrealized PnL at any mark, are the venue's; realized PnL, fees and funding count from here."""
    return apply_fill(position, "Buy" if qty > 0 else "Sell", abs(qty), avg_entry)
