"""Risk settings (env prefix RISK_). Instrument rules default to the simulator's instruments."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from services.exchange_sim.market import DEFAULT_INSTRUMENTS
from services.risk.core import InstrumentRules, RiskParams


def _default_rules() -> tuple[str, ...]:
    return tuple(f"{s}={i.tick_size}/{i.qty_step}/{i.min_qty}/{i.min_notional}" for s, i in DEFAULT_INSTRUMENTS.items())


class RiskConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    instruments: tuple[str, ...] = _default_rules()  # SYMBOL=tick/step/min_qty/min_notional
    max_order_qty: Decimal = Decimal("10")
    max_order_notional: Decimal = Decimal("25000")
    max_position_notional: Decimal = Decimal("50000")
    max_gross_exposure: Decimal = Decimal("100000")
    price_band: Decimal = Decimal("0.05")
    max_open_orders: int = 50
    rate_per_second: int = 20
    daily_loss_limit: Decimal = Decimal("2000")

    def params(self) -> RiskParams:
        rules = {}
        for entry in self.instruments:
            symbol, values = entry.split("=", 1)
            tick, step, min_qty, min_notional = (Decimal(v) for v in values.split("/"))
            rules[symbol] = InstrumentRules(tick, step, min_qty, min_notional)
        fields = {f: getattr(self, f) for f in self.__struct_fields__ if f != "instruments"}
        return RiskParams(instruments=rules, **fields)
