"""Every metric sample name HEAN's services export, read off their real registries.

Labelled series and state gauges only appear once they have a value, so the services' metric
objects are built here and the state gauges are read off small real states.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from schemas.events import OrderFilled
from services.accounting import core as accounting_core
from services.accounting.shell import definition as accounting_definition
from services.execution.metrics import ExecutionMetrics
from services.ingest.shell import IngestMetrics
from services.recorder.shell import RecorderMetrics
from services.risk import core as risk_core
from services.risk.config import RiskConfig
from services.risk.shell import definition as risk_definition
from services.runtime.metrics import ServiceMetrics
from services.runtime.settings import Secret
from services.venues.bybit.rest import BybitRest, RateLimit
from tests.samples import SAMPLES

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "grafana"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",),
            "summary": ("_count", "_sum"), "unknown": ("",)}
METRIC = re.compile(r"\b(hean_[a-z0-9_]+|up)\b")


def _names(registry: CollectorRegistry) -> set[str]:
    names: set[str] = set()
    for family in registry.collect():
        names |= {family.name + suffix for suffix in SUFFIXES[family.type]}
        names |= {sample.name for sample in family.samples}
    return names


async def exported_metric_names() -> set[str]:
    """Sample names of every service's /metrics (plus Prometheus's own `up`)."""
    names = {"up"}
    rest = BybitRest("http://127.0.0.1:1", "key", Secret("secret"))
    rest.ret_codes[0] = 1  # what one answered request leaves: the venue collector's series appear
    rest.rate_limits["/v5/order/create"] = RateLimit(limit=10, remaining=9, reset_ms=0)
    try:
        for registry in (ServiceMetrics("any").registry, IngestMetrics().base.registry,
                         RecorderMetrics().base.registry, ExecutionMetrics(rest).registry):
            names |= _names(registry)
    finally:
        await rest.close()
    fill = SAMPLES[OrderFilled]
    accounting = accounting_definition()
    state, _ = accounting.step(accounting_core.initial_state(), fill)
    risk = risk_definition(RiskConfig())
    risk_state = risk_core.RiskState(accounts={"acc1": risk_core.AccountRisk(
        equity=Decimal(1), strategy_flows={"ema": risk_core.Flows(cash=Decimal(-1))})}, mids={})
    for reading in [*accounting.gauges(state), *risk.gauges(risk_state)]:
        names.add(reading.name)
    return names


def metric_names_in(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (HEAN's `hean_*` and `up`)."""
    return set(METRIC.findall(expr))


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(dashboard file, panel title, expr) of every query in the committed dashboards."""
    queries = []
    for path in sorted((GRAFANA / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                queries.append((path.name, panel["title"], target["expr"]))
    return queries


def alert_queries() -> list[tuple[str, str]]:
    rules = yaml.safe_load((ROOT / "infra/prometheus/alerts.yml").read_text())
    return [(rule["alert"], rule["expr"]) for group in rules["groups"] for rule in group["rules"]]
