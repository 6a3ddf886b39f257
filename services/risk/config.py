"""Risk settings (env prefix RISK_). Instrument rules default to the simulator's instruments."""

from __future__ import annotations

from decimal import Decimal

from services.exchange_sim.market import DEFAULT_INSTRUMENTS
from services.risk.core import InstrumentRules, RiskLimits, RiskParams


def _default_rules() -> tuple[str, ...]:
    return tuple(f"{s}={i.tick_size}/{i.qty_step}/{i.min_qty}/{i.min_notional}" for s, i in DEFAULT_INSTRUMENTS.items())


class RiskConfig(RiskLimits, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """RISK_* variables: the limits, and instrument rules as SYMBOL=tick/step/min_qty/min_notional."""

    instruments: tuple[str, ...] = _default_rules()

    def params(self) -> RiskParams:
        rules = {}
        for entry in self.instruments:
            symbol, values = entry.split("=", 1)
            tick, step, min_qty, min_notional = (Decimal(v) for v in values.split("/"))
            rules[symbol] = InstrumentRules(tick, step, min_qty, min_notional)
        limits = {f: getattr(self, f) for f in RiskLimits.__struct_fields__}
        return RiskParams(instruments=rules, **limits)
