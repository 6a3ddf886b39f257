"""The live terminal view of `hean up` (rich), and the summary printed at the end of a run."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console, Group
from rich.table import Table

from services.supervisor.observe import by_label, histogram_quantile
from services.supervisor.stack import Stack

FILL_TYPES = ("OrderFilled", "OrderPartiallyFilled")


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def _money(value: float) -> str:
    return f"{value:,.2f}"


class View:
    """Turns a Stack's latest observations into tables (rates per topic come from the log)."""

    def services(self, stack: Stack) -> Table:
        table = Table(title="services", expand=False)
        for column in ("service", "health", "pid", "restarts", "events in", "lag", "dlq", "last exit"):
            table.add_column(column, justify="left" if column in ("service", "health", "last exit") else "right")
        for name, service in stack.services.items():
            s = service.samples
            health = "[green]up[/]" if stack.healthy(name) else (
                "[yellow]starting[/]" if service.child.running else "[red]down[/]")
            events_in = s.total("hean_events_in_total") + s.total("hean_ws_frames_total")
            table.add_row(name, health, str(service.child.pid or "-"), str(service.child.restarts),
                          f"{events_in:,.0f}" if service.metrics_port else "-",
                          str(stack.log.lag.get(name, "-")), f"{s.total('hean_dlq_total'):.0f}",
                          "" if service.child.last_exit is None else str(service.child.last_exit))
        return table

    def topics(self, stack: Stack) -> Table:
        table = Table(title="topics")
        for column in ("topic", "events", "events/s"):
            table.add_column(column, justify="left" if column == "topic" else "right")
        for topic in stack.log.topics:
            table.add_row(topic.name, f"{topic.end:,}", f"{topic.rate:,.0f}")
        return table

    def trading(self, stack: Stack) -> Table:
        execution = stack.samples_of("execution")
        strategy = stack.samples_of("strategy")
        risk = stack.samples_of("risk")
        tick_to_order = execution.buckets("hean_tick_to_order_seconds")
        signal = strategy.buckets("hean_tick_to_emit_seconds")
        table = Table(title="trading (since start)")
        table.add_column("figure")
        table.add_column("value", justify="right")
        table.add_row("tick→signal p50 / p99", " / ".join(_ms(histogram_quantile(q, signal)) for q in (0.5, 0.99)))
        table.add_row("tick→order p50 / p99 / p999",
                      " / ".join(_ms(histogram_quantile(q, tick_to_order)) for q in (0.5, 0.99, 0.999)))
        table.add_row("order ack p50", _ms(histogram_quantile(0.5, execution.buckets("hean_order_ack_seconds"))))
        table.add_row("intents", f"{strategy.total('hean_outputs_total'):.0f}")
        approved = risk.total("hean_outputs_total", kind="approved")
        rejected = {labels["kind"][len("rejected:"):]: v for labels, v in risk.rows("hean_outputs_total")
                    if labels.get("kind", "").startswith("rejected:")}
        table.add_row("approved / rejected", f"{approved:.0f} / {sum(rejected.values()):.0f}")
        if rejected:
            table.add_row("  rejected by rule", ", ".join(f"{k} {v:.0f}" for k, v in sorted(rejected.items())))
        table.add_row("orders placed / refused", f"{execution.total('hean_orders_total', outcome='placed'):.0f} / "
                                                 f"{execution.total('hean_orders_total', outcome='refused'):.0f}")
        fills = sum(execution.total("hean_order_events_total", type=t) for t in FILL_TYPES)
        table.add_row("fills", f"{fills:.0f}")
        halted = [labels["account"] for labels, v in risk.rows("hean_trading_halted") if v]
        table.add_row("halted accounts", ", ".join(f"[bold red]{a}[/]" for a in halted) or "none")
        drifted = [f"{labels['account']} {labels['symbol']} {v:+g}" for labels, v in
                   execution.rows("hean_position_drift") if v]
        table.add_row("position drift (venue - reported)", ", ".join(drifted) or "none")
        return table

    def books(self, stack: Stack) -> Table | None:
        """Each venue's top of book per symbol, side by side (None with one venue only)."""
        bids: dict[tuple[str, str], float] = {}
        asks: dict[tuple[str, str], float] = {}
        for service in stack.services.values():
            bids.update(by_label(service.samples.rows("hean_book_best_bid"), "symbol", "venue"))
            asks.update(by_label(service.samples.rows("hean_book_best_ask"), "symbol", "venue"))
        venues = sorted({venue for _, venue in bids})
        if len(venues) < 2:
            return None
        table = Table(title="books: best bid / ask by venue")
        table.add_column("symbol")
        for venue in venues:
            table.add_column(venue, justify="right")
        table.add_column(f"mid {venues[0]} - {venues[1]}", justify="right")
        for symbol in sorted({symbol for symbol, _ in bids}):
            cells, mids = [], []
            for venue in venues:
                bid, ask = bids.get((symbol, venue)), asks.get((symbol, venue))
                cells.append(f"{bid:,.2f} / {ask:,.2f}" if bid is not None and ask is not None else "-")
                mids.append((bid + ask) / 2 if bid is not None and ask is not None else None)
            gap = f"{mids[0] - mids[1]:+,.2f}" if mids[0] is not None and mids[1] is not None else "-"
            table.add_row(symbol, *cells, gap)
        return table

    def positions(self, stack: Stack) -> Table:
        accounting = stack.samples_of("accounting")
        table = Table(title="positions and PnL")
        for column in ("account", "symbol", "qty", "realized", "unrealized"):
            table.add_column(column, justify="left" if column in ("account", "symbol") else "right")
        qty = by_label(accounting.rows("hean_position_qty"), "account", "symbol")
        realized = by_label(accounting.rows("hean_position_realized_pnl"), "account", "symbol")
        unrealized = by_label(accounting.rows("hean_position_unrealized_pnl"), "account", "symbol")
        for key in sorted(qty):
            table.add_row(*key, f"{qty[key]:g}", _money(realized.get(key, 0.0)), _money(unrealized.get(key, 0.0)))
        for (account,), equity in sorted(by_label(accounting.rows("hean_account_equity"), "account").items()):
            fees = accounting.total("hean_account_fees", account=account)
            table.add_row(account, "[b]equity[/]", "", _money(equity), f"fees {_money(fees)}")
        return table

    def render(self, stack: Stack) -> Group:
        elapsed = time.monotonic() - stack.started
        header = (f"[b]HEAN[/] local stack, {elapsed:,.0f} s, session prefix {stack.config.prefix!r}; "
                  f"logs in {stack.config.home / 'logs'}; Ctrl-C stops")
        books = self.books(stack)
        return Group(header, self.services(stack), self.topics(stack), *([books] if books else []),
                     self.trading(stack), self.positions(stack))

    def status_line(self, stack: Stack) -> str:
        """One line for headless runs (every few seconds)."""
        up = sum(stack.healthy(n) for n in stack.services)
        execution = stack.samples_of("execution")
        fills = sum(execution.total("hean_order_events_total", type=t) for t in FILL_TYPES)
        p50 = histogram_quantile(0.5, execution.buckets("hean_tick_to_order_seconds"))
        trades = next((t.end for t in stack.log.topics if t.name == "md.trades"), 0)
        dlq = sum(s.samples.total("hean_dlq_total") for s in stack.services.values())
        halted = [labels["account"] for labels, v in stack.samples_of("risk").rows("hean_trading_halted") if v]
        return (f"t={time.monotonic() - stack.started:5.0f}s up {up}/{len(stack.services)} md.trades {trades:,} "
                f"orders {execution.total('hean_orders_total', outcome='placed'):.0f} fills {fills:.0f} "
                f"tick→order p50 {_ms(p50)} lag {sum(stack.log.lag.values())} dlq {dlq:.0f}"
                + (f" HALTED {','.join(halted)}" if halted else ""))


def summary(console: Console, view: View, stack: Stack, healthy: bool) -> None:
    """The final report of a run (for scripts and CI): every table once, then the verdict."""
    books = view.books(stack)
    for table in (view.services(stack), view.topics(stack), *([books] if books else []), view.trading(stack),
                  view.positions(stack)):
        console.print(table)
    restarts = sum(s.child.restarts for s in stack.services.values())
    verdict = "all services healthy" if healthy else "NOT all services healthy (see the table and .hean/logs)"
    console.print(f"hean up: {verdict}; {restarts} restart(s)")
    prefix = stack.config.prefix
    console.print(f"inspect the session: hean state accounting --topic-prefix {prefix}; "
                  f"hean replay risk --from-beginning --topic-prefix {prefix}; hean topics --prefix {prefix}")


def make_renderer(console: Console, live: Any | None, status_every: float = 10.0) -> tuple[View, Any]:
    """A `render(stack)` for run_stack: a rich Live view on a TTY, status lines otherwise."""
    view = View()
    last = [0.0]

    def render(stack: Stack) -> None:
        if live is not None:
            live.update(view.render(stack))
            return
        if time.monotonic() - last[0] >= status_every:
            last[0] = time.monotonic()
            console.print(view.status_line(stack))
    return view, render
