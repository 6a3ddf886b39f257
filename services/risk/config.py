"""Risk settings (env prefix RISK_). Instrument rules come from the venue through ref.instruments;
RISK_INSTRUMENTS adds rules for symbols whose venue publishes none."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from services.risk.core import InstrumentRules, RiskLimits, RiskParams
from services.runtime.errors import ConfigError


class RiskConfig(RiskLimits, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """RISK_* variables: the limits, and instrument rules as SYMBOL=tick/step/min_qty/min_notional."""

    instruments: tuple[str, ...] = ()
    # How a batch of decisions commits (docs/COMMITS.md); HEAN_COMMIT_MODE overrides.
    commit_mode: Literal["transaction", "idempotent"] = "idempotent"

    def params(self) -> RiskParams:
        rules = {}
        for entry in self.instruments:
            try:
                symbol, values = entry.split("=", 1)
                tick, step, min_qty, min_notional = (Decimal(v) for v in values.split("/"))
            except (ValueError, ArithmeticError):
                raise ConfigError(f"RISK_INSTRUMENTS entries must be SYMBOL=tick/step/min_qty/min_notional, "
                                  f"found {entry!r}") from None
            rules[symbol] = InstrumentRules(tick, step, min_qty, min_notional)
        limits = {f: getattr(self, f) for f in RiskLimits.__struct_fields__}
        return RiskParams(instruments=rules, **limits)
