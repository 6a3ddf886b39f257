"""Instruments: which market an id names, and the venue's rules for an order on it.

An `Instrument` is what a venue's reference data says (Bybit's instruments-info, parsed in
services/venues/bybit/instruments.py), never a constant of the simulator: strategy, risk and
execution fold them from the `ref.instruments` topic. Prices and quantities are Decimal; the
integer grid (ticks, lots) is exposed for engines that work in integers, such as the simulator.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Literal

import msgspec

from schemas.events import InstrumentDefined
from services.domain.ids import instrument_event_id

InstrumentKind = Literal["linear_perpetual", "spot"]
ONE = Decimal(1)


class InstrumentId(msgspec.Struct, frozen=True, order=True):
    """A market by venue and the venue's own symbol: "BTCUSDT" on bybit and on binance are two markets."""

    venue: str
    symbol: str

    def __str__(self) -> str:
        return f"{self.venue}:{self.symbol}"

    @classmethod
    def parse(cls, text: str) -> InstrumentId:
        """The id of "venue:SYMBOL"; anything else is refused with what was expected."""
        venue, sep, symbol = text.partition(":")
        if not sep or not venue or not symbol or ":" in symbol:
            raise ValueError(f"Expected an instrument id as venue:SYMBOL (e.g. bybit:BTCUSDT), found {text!r}")
        return cls(venue, symbol)


class Instrument(msgspec.Struct, frozen=True, kw_only=True):
    """One market's trading rules, as its venue states them.

    `multiplier` is the contract size in the base coin: a quantity of q is q * multiplier base
    units, so notional = qty * price * multiplier (1 for Bybit's linear contracts and for spot).
    Fees are rates on notional (negative for a rebate).
    """

    id: InstrumentId
    kind: InstrumentKind
    base_coin: str
    quote_coin: str
    tick_size: Decimal
    lot_step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal
    maker_fee: Decimal
    taker_fee: Decimal
    multiplier: Decimal = ONE
    status: str = "Trading"

    def __post_init__(self) -> None:
        for name in ("tick_size", "lot_step", "min_qty", "max_qty", "multiplier"):
            value: Decimal = getattr(self, name)
            if not (value.is_finite() and value > 0):
                raise ValueError(f"Expected a positive {name} for {self.id}, found {value}; check the venue parser")
        if self.min_qty > self.max_qty:
            raise ValueError(f"Expected min_qty <= max_qty for {self.id}, found {self.min_qty} > {self.max_qty}")

    @property
    def symbol(self) -> str:
        return self.id.symbol

    def notional(self, qty: Decimal, price: Decimal) -> Decimal:
        return qty * price * self.multiplier

    def fee(self, qty: Decimal, price: Decimal, maker: bool) -> Decimal:
        """The fee on one fill: its notional times the maker or taker rate."""
        return self.notional(qty, price) * (self.maker_fee if maker else self.taker_fee)

    def on_tick(self, price: Decimal) -> bool:
        return not price % self.tick_size

    def on_lot(self, qty: Decimal) -> bool:
        return not qty % self.lot_step

    def price_down(self, price: Decimal) -> Decimal:
        """The highest price on the tick grid at or below `price` (a bid that never overpays)."""
        return (price / self.tick_size).to_integral_value(ROUND_FLOOR) * self.tick_size

    def price_up(self, price: Decimal) -> Decimal:
        """The lowest price on the tick grid at or above `price`."""
        return (price / self.tick_size).to_integral_value(ROUND_CEILING) * self.tick_size

    def qty_down(self, qty: Decimal) -> Decimal:
        """The largest quantity on the lot grid at or below `qty` (a size never rounds up)."""
        return (qty / self.lot_step).to_integral_value(ROUND_FLOOR) * self.lot_step

    def ticks(self, price: Decimal) -> int:
        """`price` in ticks; a price off the grid is refused, not rounded."""
        if not self.on_tick(price):
            raise ValueError(f"Expected a price on the {self.tick_size} grid of {self.id}, found {price}")
        return int(price / self.tick_size)

    def lots(self, qty: Decimal) -> int:
        """`qty` in lot steps; a quantity off the grid is refused, not rounded."""
        if not self.on_lot(qty):
            raise ValueError(f"Expected a qty on the {self.lot_step} grid of {self.id}, found {qty}")
        return int(qty / self.lot_step)

    def price_of(self, ticks: int) -> Decimal:
        return self.tick_size * ticks

    def qty_of(self, lots: int) -> Decimal:
        return self.lot_step * lots

    def qty_violation(self, qty: Decimal) -> tuple[str, str] | None:
        """(rule, detail) of the first quantity rule `qty` breaks, None when it passes them all.

        Rule names are risk's (qty_step, min_qty, max_qty): the venue's own checks, so an order
        that passes is never refused by the venue for them."""
        if qty % self.lot_step:
            return "qty_step", f"qty {qty} is not a multiple of {self.lot_step}"
        if qty < self.min_qty:
            return "min_qty", f"qty {qty} < {self.min_qty}"
        if qty > self.max_qty:
            return "max_qty", f"qty {qty} > the venue's maximum {self.max_qty}"
        return None

    def price_violation(self, price: Decimal) -> tuple[str, str] | None:
        """("tick_size", detail) for a price off the grid or not positive, None otherwise."""
        if price <= 0 or price % self.tick_size:
            return "tick_size", f"price {price} is not a positive multiple of {self.tick_size}"
        return None


_RULES = ("kind", "base_coin", "quote_coin", "tick_size", "lot_step", "min_qty", "max_qty", "min_notional",
          "maker_fee", "taker_fee", "multiplier", "status")


def defined(instrument: Instrument, ts_event: int, ts_ingest: int) -> InstrumentDefined:
    """The ref.instruments record of an instrument (its id: ids.instrument_event_id)."""
    rules = {name: getattr(instrument, name) for name in _RULES}
    event_id = instrument_event_id(str(instrument.id), tuple(rules.values()))
    return InstrumentDefined(id=event_id, ts_event=ts_event,
                             ts_ingest=ts_ingest, venue=instrument.id.venue, symbol=instrument.id.symbol, **rules)


def from_defined(event: InstrumentDefined) -> Instrument:
    """The instrument a ref.instruments record states; rules that break an invariant raise ValueError."""
    return Instrument(id=InstrumentId(event.venue, event.symbol), **{name: getattr(event, name) for name in _RULES})
