"""Algos settings (env prefix ALGOS_): how far a twap/vwap child trades through the touch, how
many rejected children fail a parent, and the vwap's volume curve (weights per slice)."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import msgspec

from services.algos.core import AlgoParams
from services.runtime.errors import ConfigError


class AlgosConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    slippage: Decimal = Decimal("0.002")
    max_rejects: int = 3
    # The share of a vwap parent per slice, e.g. a U-shaped day; as many slices as weights.
    vwap_curve: tuple[Decimal, ...] = AlgoParams().vwap_curve
    # How a batch of children and reports commits (docs/COMMITS.md); HEAN_COMMIT_MODE overrides.
    commit_mode: Literal["transaction", "idempotent"] = "idempotent"

    def params(self) -> AlgoParams:
        if not (self.slippage.is_finite() and 0 <= self.slippage < 1):
            raise ConfigError(f"ALGOS_SLIPPAGE must be a fraction in [0, 1), found {self.slippage}")
        if self.max_rejects < 1:
            raise ConfigError(f"ALGOS_MAX_REJECTS must be at least 1, found {self.max_rejects}")
        if not self.vwap_curve or not all(w.is_finite() and w > 0 for w in self.vwap_curve):
            raise ConfigError(f"ALGOS_VWAP_CURVE must be positive weights, found {self.vwap_curve}")
        return AlgoParams(slippage=self.slippage, max_rejects=self.max_rejects, vwap_curve=self.vwap_curve)
