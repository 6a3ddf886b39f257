"""The instrument rules the backtest trades under: tick, lot step, minimums and fees.

Live, strategy and risk take instruments from ref.instruments (InstrumentDefined records ingest
publishes from the venue's instruments-info). A backtest replays the recorded ones; where the data
holds none (a store that does not record ref.instruments), `instrument_rules` is the one place the
rules come from instead, so switching that source is one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from schemas.events import InstrumentDefined
from services.domain.instrument import Instrument, InstrumentId, defined
from services.exchange_sim.market import DEFAULT_INSTRUMENTS
from services.exchange_sim.matching import MAKER_FEE, TAKER_FEE


@dataclass(frozen=True, slots=True)
class Rules:
    """What the fill model needs of one symbol."""

    symbol: str
    tick_size: Decimal
    qty_step: Decimal
    min_qty: Decimal
    min_notional: Decimal
    maker_fee: Decimal
    taker_fee: Decimal


def instrument_rules(symbol: str) -> Rules | None:
    """The rules of `symbol` where no recorded definition exists (the simulator's listing, which is
    what its instruments-info answers), or None when it is not listed."""
    listed = DEFAULT_INSTRUMENTS.get(symbol)
    if listed is None:
        return None
    return Rules(symbol, listed.tick_size, listed.qty_step, listed.min_qty, listed.min_notional, MAKER_FEE, TAKER_FEE)


def rules_of(event: InstrumentDefined) -> Rules:
    """The fill model's rules from a recorded definition."""
    return Rules(event.symbol, event.tick_size, event.lot_step, event.min_qty, event.min_notional, event.maker_fee,
                 event.taker_fee)


def definition(symbol: str, ts_ns: int, venue: str = "bybit") -> InstrumentDefined | None:
    """An InstrumentDefined record from `instrument_rules`, for data without recorded definitions."""
    rules = instrument_rules(symbol)
    listed = DEFAULT_INSTRUMENTS.get(symbol)
    if rules is None or listed is None:
        return None
    instrument = Instrument(id=InstrumentId(venue, symbol), kind="linear_perpetual", base_coin=listed.base_coin,
                            quote_coin=listed.quote_coin, tick_size=rules.tick_size, lot_step=rules.qty_step,
                            min_qty=rules.min_qty, max_qty=listed.max_qty, min_notional=rules.min_notional,
                            maker_fee=rules.maker_fee, taker_fee=rules.taker_fee)
    return defined(instrument, ts_ns, ts_ns)
