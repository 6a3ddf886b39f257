"""`--strategy NAME --param k=v`: the live services' own settings, built the way they build them.

A backtest takes the very settings classes the live services load from their environment
(StrategyConfig, RiskConfig, AccountingConfig), so a parameter means the same thing in both and a
live run is reproduced by passing the values its environment had (STRATEGY_EMA_FAST=3 is
`--param ema_fast=3`; RISK_RATE_PER_SECOND=8 is `--param risk_rate_per_second=8`). The algos
service's settings (AlgosConfig) are `--param algos_*` (ALGOS_SLIPPAGE=0.001 is `--param
algos_slippage=0.001`); they matter only to a run with parent orders (`--algo`,
services/backtest/algos.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from schemas.events import SubmitAlgo
from services.accounting.config import AccountingConfig
from services.algos.config import AlgosConfig
from services.backtest.loop import Setup
from services.risk.config import RiskConfig
from services.runtime.errors import ConfigError
from services.strategy.config import StrategyConfig

STRATEGIES: dict[str, dict[str, Any]] = {
    "ema": {"ema": True, "maker_symbols": ()},
    "maker": {"ema": False},
    "ema+maker": {"ema": True},
    "none": {"ema": False, "maker_symbols": ()},
}
"""Strategy names: which of the strategy service's strategies run (ema+maker is the live default;
none: only the parent orders of --algo trade, an execution study)."""

FIXED = {"ema"}  # chosen by NAME, not by --param
RISK_PREFIX = "risk_"
ALGOS_PREFIX = "algos_"
LISTS = ("vwap_curve",)  # algos settings given as comma-separated values


class SetupError(ValueError):
    """A strategy name or parameter the backtest cannot use; the message is one line."""


def parameter_names() -> list[str]:
    """Every name --param takes."""
    strategy = [f for f in StrategyConfig.__struct_fields__ if f not in FIXED]
    risk = [RISK_PREFIX + f for f in RiskConfig.__struct_fields__]
    algos = [ALGOS_PREFIX + f for f in AlgosConfig.__struct_fields__]
    return sorted([*strategy, *risk, *algos, *AccountingConfig.__struct_fields__])


def parse_params(pairs: Sequence[str]) -> dict[str, str]:
    """k=v strings into a dict; a pair without '=' or a repeated name is refused."""
    params: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SetupError(f"--param takes NAME=VALUE, got {pair!r}")
        if name in params:
            raise SetupError(f"--param {name} given twice")
        params[name] = value
    return params


def build(strategy: str, params: Mapping[str, str], symbols: Sequence[str], latency_ms: float = 0.0,
          funding_hours: float = 8.0, parents: Sequence[SubmitAlgo] = ()) -> Setup:
    """The cores' parameters for a backtest of `strategy` on `symbols` with `params`, working
    `parents` (parent orders) with the algos service."""
    if strategy not in STRATEGIES:
        raise SetupError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    unknown = sorted(set(params) - set(parameter_names()))
    if unknown:
        raise SetupError(f"unknown parameter {unknown[0]!r}; parameters: {', '.join(parameter_names())}")
    if latency_ms < 0:
        raise SetupError(f"--latency-ms must be >= 0, got {latency_ms:g}")
    if funding_hours <= 0:
        raise SetupError(f"--funding-hours must be > 0, got {funding_hours:g}")
    strategy_fields: dict[str, Any] = {k: v for k, v in params.items() if k in StrategyConfig.__struct_fields__}
    for name in ("ema_qtys", "maker_symbols", "tick_sizes"):
        if name in strategy_fields:
            strategy_fields[name] = tuple(x for x in strategy_fields[name].split(",") if x)
    strategy_fields = {**strategy_fields, **STRATEGIES[strategy]}
    if strategy != "ema":
        given = strategy_fields.get("maker_symbols")
        if given is None:  # live's default where it is among the symbols; every symbol for "maker"
            default = StrategyConfig().maker_symbols
            given = tuple(symbols) if strategy == "maker" else tuple(s for s in default if s in symbols)
        if outside := [s for s in given if s not in symbols]:
            raise SetupError(f"maker symbol {outside[0]} is not among --symbols")
        strategy_fields["maker_symbols"] = given
    risk_fields: dict[str, Any] = {k[len(RISK_PREFIX):]: v for k, v in params.items() if k.startswith(RISK_PREFIX)}
    if "instruments" in risk_fields:  # SYMBOL=tick/step/min_qty/min_notional entries, comma-separated
        risk_fields["instruments"] = tuple(x for x in risk_fields["instruments"].split(",") if x)
    accounting_fields = {k: v for k, v in params.items() if k in AccountingConfig.__struct_fields__}
    algos_fields: dict[str, Any] = {k[len(ALGOS_PREFIX):]: v for k, v in params.items() if k.startswith(ALGOS_PREFIX)}
    for name in LISTS:
        if name in algos_fields:
            algos_fields[name] = tuple(x for x in algos_fields[name].split(",") if x)
    try:
        algos = msgspec.convert(algos_fields, AlgosConfig, strict=False)
        algos.params()  # the algos service checks its settings at start, with or without parents
        built = Setup(strategy=msgspec.convert(strategy_fields, StrategyConfig, strict=False),
                      risk=msgspec.convert(risk_fields, RiskConfig, strict=False),
                      accounting=msgspec.convert(accounting_fields, AccountingConfig, strict=False),
                      latency_ns=round(latency_ms * 1_000_000),
                      funding_interval_ns=round(funding_hours * 3600 * 10**9), algos=algos,
                      parents=tuple(sorted(parents, key=lambda p: (p.ts_event, p.id))))
        built.services()  # each service checks its own settings, as at a live start
        return built
    except (msgspec.ValidationError, ConfigError, ValueError, ArithmeticError) as exc:
        raise SetupError(f"bad parameter value: {exc}") from None
