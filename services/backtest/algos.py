"""Parent orders in a backtest: `--algo KIND:name=value,…` into SubmitAlgo events, and the
execution reports the run's algos core wrote, as a table, JSON rows and stored rows.

A spec takes the names and values of `hean algo submit` (account, symbol, side, qty, price,
duration, slices, display, participation, profile-days) plus `start` (ms since the epoch or ISO
8601; default: the run's --from). It is parsed by that command's own parser and validated by its
own `parent_order`, so a parameter means and refuses exactly what it does live; only the defaults
differ: the account is the strategy's, and the symbol the run's when it has one.

The parent is dated `start`: the loop hands it to the algos core before the first market step at or
after that time, and the core starts it when market time reaches it (services/algos/core.py), as a
live parent sent before its market. Reports are the algos core's own (services/algos/report.py).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from schemas.events import AlgoReport, SubmitAlgo
from schemas.topics import ALGOS_REPORTS, ORDERS_INTENTS
from services.backtest.loop import Outcome

KEYS = ("account", "symbol", "side", "qty", "price", "duration", "slices", "display", "participation",
        "profile-days")
"""The names a spec takes besides `start`: `hean algo submit`'s options, without their dashes."""


class AlgoSpecError(ValueError):
    """A --algo spec that cannot make a parent order; the message is one line."""


def _submit_parser() -> argparse.ArgumentParser:
    """`hean algo submit`'s own parser (services/cli/algo.py), errors raised instead of printed."""
    from services.cli import algo

    root = argparse.ArgumentParser(prog="hean", add_help=False)
    algo.add_parser(root.add_subparsers(dest="command"))
    [commands] = [a for a in root._actions if isinstance(a, argparse._SubParsersAction)]
    [actions] = [a for a in commands.choices["algo"]._actions if isinstance(a, argparse._SubParsersAction)]
    submit: argparse.ArgumentParser = actions.choices["submit"]

    def error(message: str) -> Any:
        raise AlgoSpecError(message)

    submit.error = error  # type: ignore[method-assign]
    return submit


def parse(spec: str, account: str, symbols: Sequence[str], from_ns: int, to_ns: int,
          time_ns: Callable[[str], int], store: str = "") -> SubmitAlgo:
    """One --algo spec as the parent `hean algo submit` would send at `start`; AlgoSpecError names
    what is wrong with it. A vwap with profile-days takes its profile from the trades in `store`
    before its start, as live it takes the days before now."""
    from services.cli.algo import parent_order
    from services.cli.orders import UsageError

    kind, sep, rest = spec.partition(":")
    if not sep and "=" in kind:
        raise AlgoSpecError(f"--algo takes KIND:name=value,…, got {spec!r}")
    given: dict[str, str] = {}
    for pair in (p for p in rest.split(",") if p.strip()):
        name, eq, value = pair.partition("=")
        name = name.strip().replace("_", "-")
        if not eq or not name or not value.strip():
            raise AlgoSpecError(f"--algo {spec!r}: expected name=value, got {pair!r}")
        if name != "start" and name not in KEYS:
            raise AlgoSpecError(f"--algo {spec!r}: unknown parameter {name!r}; parameters: start, {', '.join(KEYS)}")
        if name in given:
            raise AlgoSpecError(f"--algo {spec!r}: {name} given twice")
        given[name] = value.strip()
    start = from_ns
    if "start" in given:
        try:
            start = time_ns(given.pop("start"))
        except (argparse.ArgumentTypeError, ValueError) as exc:
            raise AlgoSpecError(f"--algo {spec!r}: start: {exc}") from None
        if not from_ns <= start < to_ns:
            raise AlgoSpecError(f"--algo {spec!r}: start must lie in [--from, --to)")
    given.setdefault("account", account)
    if "symbol" not in given:
        if len(symbols) != 1:
            raise AlgoSpecError(f"--algo {spec!r}: name its symbol (symbol=…): the run has several")
        given["symbol"] = symbols[0]
    if given["symbol"] not in symbols:
        raise AlgoSpecError(f"--algo {spec!r}: symbol {given['symbol']} is not among --symbols")
    if store and "profile-days" in given:
        given["store"] = store
    argv = [kind, *(x for name, value in given.items() for x in (f"--{name}", value))]
    try:
        args = _submit_parser().parse_args(argv)
        return parent_order(args, start)
    except (AlgoSpecError, UsageError) as exc:
        raise AlgoSpecError(f"--algo {spec!r}: {exc}") from None


def parents(specs: Sequence[str], account: str, symbols: Sequence[str], from_ns: int, to_ns: int,
            time_ns: Callable[[str], int], store: str = "") -> tuple[SubmitAlgo, ...]:
    """Every spec's parent, in start order; two parents with one id (the same account, symbol and
    start, as `hean algo submit` derives it) are refused: the core would work only the first."""
    out = [parse(s, account, symbols, from_ns, to_ns, time_ns, store) for s in specs]
    ids = [p.id for p in out]
    if len(set(ids)) != len(ids):
        raise AlgoSpecError("two --algo parents on one symbol and account start at the same time: give each its "
                            "own start")
    return tuple(sorted(out, key=lambda p: (p.ts_event, p.id)))


def latest(outcome: Outcome) -> list[tuple[SubmitAlgo, AlgoReport | None]]:
    """Each parent of the run with its last report (its completion once it ended; None: it never
    started, its symbol had no market at or after its start), as `hean algo status` shows them."""
    from services.cli.algo import latest_reports

    return latest_reports(outcome.of(ORDERS_INTENTS), outcome.of(ALGOS_REPORTS))


def reports(outcome: Outcome) -> list[AlgoReport]:
    """Every report the run's algos core wrote, in log order: the rows of `algo_reports` live."""
    return [r for r in outcome.of(ALGOS_REPORTS) if isinstance(r, AlgoReport)]


def _text(value: Decimal | None) -> str:
    return "" if value is None else f"{value.normalize():f}"


def rows(outcome: Outcome) -> list[dict[str, Any]]:
    """Per parent, the figures of its last report (plain values, for --json and the HTML)."""
    out = []
    for parent, report in latest(outcome):
        row: dict[str, Any] = {"parent": parent.id, "kind": parent.kind, "symbol": parent.symbol,
                               "side": parent.side, "qty": _text(parent.qty), "start_ns": parent.ts_event}
        if report is None:
            row |= {"status": "waiting", "filled": "0", "children": 0}
        else:
            row |= {"status": report.status, "filled": _text(report.filled_qty), "children": report.children,
                    "arrival": _text(report.arrival_price), "avg_fill": _text(report.avg_price),
                    "market_vwap": _text(report.market_vwap), "shortfall": _text(report.shortfall),
                    "shortfall_bps": _text(report.shortfall_bps), "fees": _text(report.fees),
                    "detail": report.detail}
        out.append(row)
    return out


COLUMNS = (("parent", "parent"), ("kind", "kind"), ("side", "side"), ("qty", "qty"), ("filled", "filled"),
           ("children", "children"), ("status", "status"), ("arrival", "arrival"), ("avg_fill", "avg fill"),
           ("market_vwap", "market VWAP"), ("shortfall", "shortfall"), ("shortfall_bps", "bps"), ("fees", "fees"))


def table(outcome: Outcome) -> Any:
    """The parents' execution reports as a terminal table."""
    from rich.table import Table

    out = Table(title="execution algorithms (shortfall: a cost is positive)", title_justify="left")
    for _, label in COLUMNS:
        out.add_column(label, justify="left" if label in ("parent", "kind", "side", "status") else "right")
    for row in rows(outcome):
        out.add_row(*(str(row.get(key, "")) if key != "parent" else row[key][:12] for key, _ in COLUMNS))
    return out


def html(outcome: Outcome) -> str:
    """The same table for report.html ('' without parents)."""
    from html import escape

    found = rows(outcome)
    if not found:
        return ""
    head = "".join(f"<th>{label}</th>" for _, label in COLUMNS)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(row.get(key, '')))}</td>" for key, _ in COLUMNS) + "</tr>"
                   for row in found)
    return (f"<h3>execution algorithms (implementation shortfall: a cost is positive)</h3>"
            f"<table border='1' cellspacing='0' cellpadding='3'><tr>{head}</tr>{body}</table>")
