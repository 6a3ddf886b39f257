"""A run's report: the metrics as a terminal table, a PNG (matplotlib) and one self-contained HTML
file (plotly, its JavaScript inline, so it opens offline): equity, drawdown, position, and the
fills on the price of the most traded symbol."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.table import Table

from schemas.events import PositionUpdated
from schemas.topics import ACCOUNTING_POSITIONS
from services.backtest.loop import Outcome
from services.backtest.metrics import Metrics, equity_curve, fills

ROWS = (("pnl", "PnL"), ("total_return", "return"), ("sharpe", "Sharpe"), ("sortino", "Sortino"),
        ("calmar", "Calmar"), ("max_drawdown", "max drawdown"), ("max_drawdown_pct", "max drawdown %"),
        ("max_drawdown_duration_s", "max drawdown duration (s)"), ("turnover", "turnover"), ("fees", "fees"),
        ("funding", "funding"), ("win_rate", "win rate"), ("trades", "trades (fills)"), ("exposure", "exposure"),
        ("final_equity", "final equity"), ("duration_s", "data span (s)"))
PERCENT = {"total_return", "max_drawdown_pct", "win_rate", "exposure"}


def text(name: str, value: Any) -> str:
    """One figure as the table prints it."""
    if value is None:
        return "n/a"
    if name in PERCENT:
        return f"{value * 100:.3f} %"
    if isinstance(value, Decimal):
        return f"{value:,.2f}"
    if isinstance(value, float):
        return f"{value:,.3f}"
    return str(value)


def table(metrics: Metrics, title: str) -> Table:
    out = Table(title=title, title_justify="left")
    out.add_column("metric")
    out.add_column("value", justify="right")
    for name, label in ROWS:
        out.add_row(label, text(name, getattr(metrics, name)))
    return out


def series(outcome: Outcome, account: str, starting_balance: Decimal) -> dict[str, Any]:
    """What the charts draw, as plain lists (seconds from the start, floats)."""
    start = outcome.first_ns
    curve = equity_curve(outcome, account, starting_balance)
    t = [(ts - start) / 1e9 for ts, _ in curve]
    equity = [float(v) for _, v in curve]
    peak, drawdown = float("-inf"), []
    for value in equity:
        peak = max(peak, value)
        drawdown.append(value - peak)
    own = fills(outcome, account)
    symbol = Counter(f.symbol for f in own).most_common(1)[0][0] if own else next(iter(outcome.prices), "")
    position_t, position = [0.0], [0.0]
    for event in outcome.of(ACCOUNTING_POSITIONS):
        if isinstance(event, PositionUpdated) and event.account == account and event.symbol == symbol:
            position_t.append((event.ts_event - start) / 1e9)
            position.append(float(event.qty))
    prices = outcome.prices.get(symbol, [])
    mine = [f for f in own if f.symbol == symbol]
    return {"symbol": symbol, "t": t, "equity": equity, "drawdown": drawdown, "position_t": position_t,
            "position": position, "price_t": [(ts - start) / 1e9 for ts, _ in prices],
            "price": [float(p) for _, p in prices],
            "buys": [((f.ts_event - start) / 1e9, float(f.fill_price)) for f in mine if f.side == "Buy"],
            "sells": [((f.ts_event - start) / 1e9, float(f.fill_price)) for f in mine if f.side == "Sell"]}


def write_png(data: Mapping[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(4, 1, figsize=(11, 10), sharex=True)
    axes[0].plot(data["t"], data["equity"], drawstyle="steps-post")
    axes[0].set_ylabel("equity")
    axes[1].fill_between(data["t"], data["drawdown"], step="post", color="tab:red", alpha=0.5)
    axes[1].set_ylabel("drawdown")
    axes[2].plot(data["position_t"], data["position"], drawstyle="steps-post", color="tab:purple")
    axes[2].set_ylabel(f"position {data['symbol']}")
    axes[3].plot(data["price_t"], data["price"], color="0.5", linewidth=0.8)
    for key, marker, color in (("buys", "^", "tab:green"), ("sells", "v", "tab:red")):
        if data[key]:
            xs, ys = zip(*data[key], strict=True)
            axes[3].scatter(xs, ys, marker=marker, color=color, s=30, label=key, zorder=3)
    axes[3].set_ylabel(f"price {data['symbol']}")
    axes[3].set_xlabel("seconds from the start")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_html(data: Mapping[str, Any], metrics: Metrics, path: Path, title: str, extra: str = "") -> None:
    """The report page; `extra` is HTML put under the metrics (the parents' execution reports)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=4, cols=1, shared_xaxes=True, vertical_spacing=0.04,
                           subplot_titles=("equity", "drawdown", f"position {data['symbol']}",
                                           f"fills on the price of {data['symbol']}"))
    figure.add_trace(go.Scatter(x=data["t"], y=data["equity"], name="equity", line_shape="hv"), row=1, col=1)
    figure.add_trace(go.Scatter(x=data["t"], y=data["drawdown"], name="drawdown", fill="tozeroy",
                                line={"color": "crimson"}, line_shape="hv"), row=2, col=1)
    figure.add_trace(go.Scatter(x=data["position_t"], y=data["position"], name="position", line_shape="hv",
                                line={"color": "purple"}), row=3, col=1)
    figure.add_trace(go.Scatter(x=data["price_t"], y=data["price"], name="price", line={"color": "gray"}),
                     row=4, col=1)
    for key, symbol, color in (("buys", "triangle-up", "green"), ("sells", "triangle-down", "red")):
        if data[key]:
            xs, ys = zip(*data[key], strict=True)
            figure.add_trace(go.Scatter(x=xs, y=ys, mode="markers", name=key,
                                        marker={"symbol": symbol, "color": color, "size": 9}), row=4, col=1)
    figure.update_layout(title=title, height=1000, showlegend=True)
    figure.update_xaxes(title_text="seconds from the start", row=4, col=1)
    rows = "".join(f"<tr><td>{label}</td><td style='text-align:right'>{text(name, getattr(metrics, name))}</td></tr>"
                   for name, label in ROWS)
    chart = figure.to_html(full_html=False, include_plotlyjs=True)  # the JS inline: one file, offline
    path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head>"
                    f"<body style='font-family:sans-serif'><h2>{title}</h2><table>{rows}</table>{extra}{chart}"
                    "</body></html>")
