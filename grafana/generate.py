"""Writes grafana/dashboards/*.json from the panel lists below: `python grafana/generate.py`.

Dashboards are data, but 40 panels of hand-kept JSON drift; here each panel is one line (title,
queries, unit) and the layout is computed. A test fails when the committed JSON differs from
what this script writes, and another when a query names a metric no service exports.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "hean-prometheus"}
OUT = Path(__file__).parent / "dashboards"

# (title, [(expr, legend)], unit, kind)
Panel = tuple[str, list[tuple[str, str]], str, str]


def q(expr: str, legend: str = "") -> tuple[str, str]:
    return expr, legend


def pct(metric: str, quantile: float, by: str = "", window: str = "1m") -> str:
    group = f"le, {by}" if by else "le"
    return f"histogram_quantile({quantile}, sum by ({group}) (rate({metric}_bucket[{window}])))"


PLATFORM: list[Panel] = [
    ("Services up", [q("hean_up", "{{service}} {{instance}}")], "none", "stat"),
    ("Services ready (inputs held, lease held, venue connected)", [q("hean_ready", "{{service}} {{instance}}")],
     "none", "stat"),
    ("Records consumed / s by service", [q("sum by (service) (rate(hean_events_in_total[1m]))", "{{service}}")],
     "ops", "timeseries"),
    ("Events produced / s by topic", [q("sum by (topic) (rate(hean_events_out_total[1m]))", "{{topic}}")],
     "ops", "timeseries"),
    ("Consumer lag by service", [q("sum by (service) (hean_consumer_lag)", "{{service}}")], "none", "timeseries"),
    ("Batch time p50 / p99", [q(pct("hean_batch_seconds", 0.5, "service"), "p50 {{service}}"),
                              q(pct("hean_batch_seconds", 0.99, "service"), "p99 {{service}}")], "s", "timeseries"),
    ("Apply time per record p99", [q(pct("hean_apply_seconds", 0.99, "service"), "{{service}}")], "s",
     "timeseries"),
    ("Snapshot age", [q("hean_snapshot_age_seconds", "{{service}}")], "s", "timeseries"),
    ("Dead letters / s by service and reason",
     [q("sum by (service, reason) (rate(hean_dlq_total[5m]))", "{{service}} {{reason}}")], "ops", "timeseries"),
    ("Records replayed at recovery", [q("sum by (service) (increase(hean_replayed_total[5m]))", "{{service}}")],
     "none", "timeseries"),
    ("Tick → order p50 / p99 / p999", [q(pct("hean_tick_to_order_seconds", 0.5), "p50"),
                                       q(pct("hean_tick_to_order_seconds", 0.99), "p99"),
                                       q(pct("hean_tick_to_order_seconds", 0.999), "p999")], "s", "timeseries"),
]

TRADING: list[Panel] = [
    ("Equity by account", [q("hean_account_equity", "{{account}}")], "currencyUSD", "timeseries"),
    ("Realized / unrealized PnL by account", [q("hean_account_realized_pnl", "realized {{account}}"),
                                              q("hean_account_unrealized_pnl", "unrealized {{account}}")],
     "currencyUSD", "timeseries"),
    ("Fees paid", [q("hean_account_fees", "{{account}}")], "currencyUSD", "stat"),
    ("Gross exposure", [q("hean_account_gross_exposure", "{{account}}")], "currencyUSD", "timeseries"),
    ("Positions", [q("hean_position_qty", "{{account}} {{symbol}}")], "none", "timeseries"),
    ("PnL by symbol", [q("hean_position_realized_pnl", "realized {{symbol}}"),
                       q("hean_position_unrealized_pnl", "unrealized {{symbol}}")], "currencyUSD", "timeseries"),
    ("Intents / s by strategy", [q('sum by (kind) (rate(hean_outputs_total{service="strategy"}[1m]))', "{{kind}}")],
     "ops", "timeseries"),
    ("Risk decisions / s (rejections by rule)",
     [q('sum by (kind) (rate(hean_outputs_total{service="risk"}[1m]))', "{{kind}}")], "ops", "timeseries"),
    ("Orders / s by outcome", [q("sum by (outcome) (rate(hean_orders_total[1m]))", "{{outcome}}")], "ops",
     "timeseries"),
    ("Fills / s", [q('sum(rate(hean_order_events_total{type=~"OrderFilled|OrderPartiallyFilled"}[1m]))', "fills")],
     "ops", "timeseries"),
    ("Tick → signal p50 / p99", [q(pct("hean_tick_to_emit_seconds", 0.5, "service"), "p50 {{service}}"),
                                 q(pct("hean_tick_to_emit_seconds", 0.99, "service"), "p99 {{service}}")], "s",
     "timeseries"),
    ("Tick → order p50 / p99", [q(pct("hean_tick_to_order_seconds", 0.5), "p50"),
                                q(pct("hean_tick_to_order_seconds", 0.99), "p99")], "s", "timeseries"),
    ("Order ack p50 / p99", [q(pct("hean_order_ack_seconds", 0.5), "p50"),
                             q(pct("hean_order_ack_seconds", 0.99), "p99")], "s", "timeseries"),
    ("Venue answers / s by retCode", [q("sum by (ret_code) (rate(hean_rest_responses_total[1m]))", "{{ret_code}}")],
     "ops", "timeseries"),
    ("Rate-limit headroom", [q("hean_rate_limit_remaining / hean_rate_limit", "{{endpoint}}")], "percentunit",
     "timeseries"),
    ("Time orders waited for the rate limit (s/s)", [q("rate(hean_rest_paced_seconds_total[1m])", "paced")], "none",
     "timeseries"),
    ("Venue circuit breaker open", [q("hean_venue_breaker_open", "breaker")], "none", "stat"),
    ("Executor holding the lease", [q("hean_execution_active", "{{account}} {{instance}}")], "none", "stat"),
    ("Trading halted", [q("hean_trading_halted", "{{account}}")], "none", "stat"),
    ("Working orders", [q("hean_working_orders", "{{account}}")], "none", "timeseries"),
    ("Strategy PnL at mid (RISK_MAX_STRATEGY_LOSS)", [q("hean_strategy_pnl", "{{account}} {{strategy}}")], "none",
     "timeseries"),
]

MARKET_DATA: list[Panel] = [
    ("WebSocket frames / s", [q("sum(rate(hean_ws_frames_total[1m]))", "frames")], "ops", "timeseries"),
    ("Market events / s by topic", [q('sum by (topic) (rate(hean_events_out_total{service="ingest"}[1m]))',
                                      "{{topic}}")], "ops", "timeseries"),
    ("Reconnects by cause", [q("sum by (cause) (increase(hean_ws_reconnects_total[5m]))", "{{cause}}")], "none",
     "timeseries"),
    ("Book gaps by symbol", [q("sum by (symbol) (increase(hean_book_gaps_total[5m]))", "{{symbol}}")], "none",
     "timeseries"),
    ("Malformed frames and failed acks", [q("increase(hean_ws_malformed_total[5m])", "malformed"),
                                          q("increase(hean_ws_failed_acks_total[5m])", "failed acks")], "none",
     "timeseries"),
    ("Feed circuit breaker open", [q("hean_ws_breaker_open", "breaker")], "none", "stat"),
    ("Rows recorded / s by table", [q("sum by (table) (rate(hean_recorder_rows_total[1m]))", "{{table}}")], "ops",
     "timeseries"),
    ("Recorder INSERT p99", [q(pct("hean_recorder_insert_seconds", 0.99), "p99")], "s", "timeseries"),
    ("Tick → row visible p50 / p99", [q(pct("hean_recorder_lag_seconds", 0.5), "p50"),
                                      q(pct("hean_recorder_lag_seconds", 0.99), "p99")], "s", "timeseries"),
]

WIDTH = {"timeseries": 12, "stat": 6}

DASHBOARDS = {
    "platform": ("HEAN platform overview", "Throughput, lag, latency and errors of every service", PLATFORM),
    "trading": ("HEAN trading", "Positions, PnL, orders, fills, risk rejections and the venue", TRADING),
    "market-data": ("HEAN market data", "Feed rates, gaps, reconnects and the tick recorder", MARKET_DATA),
}


def panel(index: int, spec: Panel, x: int, y: int) -> dict[str, Any]:
    title, queries, unit, kind = spec
    return {
        "id": index + 1,
        "type": kind,
        "title": title,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": WIDTH[kind], "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}} if kind == "timeseries" else {},
        "targets": [{"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
                    for i, (expr, legend) in enumerate(queries)],
    }


def layout(panels: list[Panel]) -> list[dict[str, Any]]:
    """Left to right, wrapping at Grafana's 24 columns."""
    placed, x, y = [], 0, 0
    for index, spec in enumerate(panels):
        width = WIDTH[spec[3]]
        if x + width > 24:
            x, y = 0, y + 8
        placed.append(panel(index, spec, x, y))
        x += width
    return placed


def dashboard(uid: str, title: str, description: str, panels: list[Panel]) -> dict[str, Any]:
    return {
        "uid": f"hean-{uid}",
        "title": title,
        "description": description,
        "tags": ["hean"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "5s",
        "time": {"from": "now-30m", "to": "now"},
        "templating": {"list": []},
        "panels": layout(panels),
    }


def render() -> dict[str, str]:
    """File name → JSON text of every dashboard."""
    return {f"{uid}.json": json.dumps(dashboard(uid, *spec), indent=2) + "\n" for uid, spec in DASHBOARDS.items()}


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name}")
