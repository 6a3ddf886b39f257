"""Grafana dashboards and Prometheus alerts only read metrics that HEAN's services export."""

from __future__ import annotations

import importlib.util
import json
from typing import Any

import pytest
import yaml

from tests.ops.catalog import GRAFANA, alert_queries, dashboard_queries, exported_metric_names, metric_names_in


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("grafana_generate", GRAFANA / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_dashboards_are_what_the_generator_writes() -> None:
    rendered = _generator().render()
    committed = {p.name: p.read_text() for p in (GRAFANA / "dashboards").glob("*.json")}
    assert committed == rendered, "run `python grafana/generate.py` and commit the result"


def test_three_dashboards_with_unique_uids_and_the_provisioned_datasource() -> None:
    dashboards = [json.loads(p.read_text()) for p in (GRAFANA / "dashboards").glob("*.json")]
    assert {d["uid"] for d in dashboards} == {"hean-platform", "hean-trading", "hean-market-data"}
    datasources = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())["datasources"]
    uids = {d["uid"] for d in datasources}
    for d in dashboards:
        for panel in d["panels"]:
            assert panel["datasource"]["uid"] in uids, panel["title"]
            assert panel["targets"], panel["title"]


async def test_every_panel_query_names_an_exported_metric() -> None:
    exported = await exported_metric_names()
    queries = dashboard_queries()
    assert len(queries) > 30
    for dashboard, title, expr in queries:
        names = metric_names_in(expr)
        assert names, f"{dashboard} / {title}: no metric in {expr!r}"
        unknown = names - exported
        assert not unknown, f"{dashboard} / {title}: {sorted(unknown)} is exported by no service"


async def test_every_alert_names_an_exported_metric() -> None:
    exported = await exported_metric_names()
    for alert, expr in alert_queries():
        unknown = metric_names_in(expr) - exported
        assert metric_names_in(expr) and not unknown, f"{alert}: {sorted(unknown)}"


@pytest.mark.parametrize("expr", ["hean_nope_total", "rate(hean_events_in_totl[1m])"])
async def test_a_misspelled_metric_is_caught(expr: str) -> None:
    assert metric_names_in(expr) - await exported_metric_names()
