"""`hean backtest`: one run (report table, PNG, HTML, stored in backtest_runs) or a `--grid` sweep
over processes with a ranked table; `--algo` adds parent orders worked by the algos core, with
their execution reports (printed, in the HTML, stored in backtest_algo_reports). Every failure is
one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any, NoReturn

ROOT = Path(__file__).resolve().parents[2]
RANKABLE = ("sharpe", "sortino", "calmar", "pnl", "total_return", "win_rate")


class BadInput(Exception):
    """What the user asked for cannot run; the message is the one line printed."""


def _time_ns(text: str) -> int:
    """ms since the epoch (digits) or ISO 8601 (UTC unless it says otherwise), as ns."""
    if text.isdigit():
        return int(text) * 1_000_000
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ms since the epoch or ISO 8601, got {text!r}") from None
    if moment.tzinfo is None:
        from datetime import UTC

        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1_000_000) * 1000


def add_parser(sub: Any) -> None:
    """The `backtest` subcommand on hean's parser (services/cli/main.py)."""
    parser = sub.add_parser("backtest", help="run a strategy over recorded market data on the live cores "
                                             "(strategy → risk → fill model → accounting), report and store it")
    parser.add_argument("--strategy", required=True, help="ema, maker, ema+maker (the live default) or none "
                                                          "(only --algo parents trade)")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="a strategy, risk_* or accounting setting (as STRATEGY_*/RISK_*/ACCOUNTING_* live); "
                             "repeatable")
    parser.add_argument("--symbols", required=True, help="comma-separated symbols")
    parser.add_argument("--from", dest="from_ns", required=True, type=_time_ns, metavar="T",
                        help="start (inclusive): ms since the epoch or ISO 8601")
    parser.add_argument("--to", dest="to_ns", required=True, type=_time_ns, metavar="T",
                        help="end (exclusive): ms since the epoch or ISO 8601")
    parser.add_argument("--source", choices=["clickhouse", "log"], default="clickhouse",
                        help="the recorder's store (chDB or a ClickHouse server) or the md topics of the log")
    parser.add_argument("--store", help="chdb://PATH or clickhouse://… (default: RECORDER_STORE, else the local chDB); "
                                        "read with --source clickhouse, and where the run is stored")
    parser.add_argument("--topic-prefix", help="the session whose data to read (default: the current session)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="decision → venue latency (default 0)")
    parser.add_argument("--funding-hours", type=float, default=8.0,
                        help="funding settles every this many hours of venue time, at the recorded rate (default 8)")
    parser.add_argument("--algo", action="append", default=[], metavar="KIND:NAME=VALUE,…",
                        help="a parent order worked by the algos service, e.g. twap:side=Buy,qty=0.5,duration=600,"
                             "slices=10,start=T; names as `hean algo submit` takes them, plus start (default "
                             "--from); repeatable")
    parser.add_argument("--grid", action="append", default=[], metavar="NAME=A,B,C",
                        help="sweep a parameter over values (repeatable: every combination), on several processes")
    parser.add_argument("--rank-by", choices=RANKABLE, default="sharpe", help="the grid's ranking (default sharpe)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="grid processes (default: cores)")
    parser.add_argument("--out", type=Path, help="directory for report.png and report.html "
                                                 "(default: $HEAN_HOME/backtests/RUN_ID)")
    parser.add_argument("--no-store", action="store_true", help="do not write backtest_runs / backtest_trades")
    parser.add_argument("--json", action="store_true", help="print the metrics as one JSON line instead of a table")

    def error(message: str) -> NoReturn:  # argparse's own errors: one line and exit 2 as well
        print(f"hean backtest: {message}", file=sys.stderr)
        raise SystemExit(2)

    parser.error = error  # type: ignore[method-assign]


def main(args: argparse.Namespace) -> int:
    """Run the command; a BadInput (or a source or store failure) is one line and exit 2."""
    import logging

    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)  # client libraries' retry warnings are not the one line
    try:
        return _main(args)
    except BadInput as exc:
        print(f"hean backtest: {exc}", file=sys.stderr)
        return 2
    finally:
        logging.disable(previous)


def _parents(specs: Sequence[str], account: str, symbols: tuple[str, ...], from_ns: int, to_ns: int,
             store_url: str) -> tuple[Any, ...]:
    from services.backtest import algos

    try:
        return algos.parents(specs, account, symbols, from_ns, to_ns, _time_ns, store_url)
    except algos.AlgoSpecError as exc:
        raise BadInput(str(exc)) from None


def _main(args: argparse.Namespace) -> int:
    import msgspec

    from services.backtest import setup
    from services.backtest.sources import Query

    symbols = tuple(s.strip() for s in args.symbols.split(",") if s.strip())
    if not symbols:
        raise BadInput("--symbols names no symbol")
    if args.from_ns >= args.to_ns:
        raise BadInput("--from must be before --to")
    store_url = args.store or os.environ.get("RECORDER_STORE", "")
    try:
        params = setup.parse_params(args.param)
        grid = _grid(args.grid)
        for point in grid or [{}]:
            built = setup.build(args.strategy, {**params, **point}, symbols, args.latency_ms, args.funding_hours)
    except setup.SetupError as exc:
        raise BadInput(str(exc)) from None
    parents = _parents(args.algo, built.account(), symbols, args.from_ns, args.to_ns, store_url)
    if args.workers < 1:
        raise BadInput("--workers must be >= 1")
    home = _home()
    prefix = _prefix(args.topic_prefix)
    query = Query(symbols=symbols, from_ns=args.from_ns, to_ns=args.to_ns, prefix=prefix)
    recorded = _load(args.source, query, store_url, home)
    events = recorded.events
    if not events:
        raise BadInput(f"no market data for {','.join(symbols)} in [{args.from_ns // 10**6}, {args.to_ns // 10**6}) ms "
                       f"of session {prefix!r} in the {args.source}")
    description = {"strategy": args.strategy, "params": params, "symbols": list(symbols), "source": args.source,
                   "from_ns": args.from_ns, "to_ns": args.to_ns, "latency_ms": args.latency_ms,
                   "funding_hours": args.funding_hours,
                   "code_version": _code_version(), "market_events": len(events), "prefix": prefix,
                   **({"algos": [msgspec.to_builtins(p) for p in parents]} if parents else {})}
    if grid:
        return _sweep(args, description, grid, recorded, store_url, home, parents)
    return _single(args, description, recorded, store_url, home, parents)


def _single(args: argparse.Namespace, description: dict[str, Any], recorded: Any, store_url: str,
            home: Path, parents: tuple[Any, ...]) -> int:

    from schemas.topics import ORDERS_DECISIONS, ORDERS_INTENTS
    from services.backtest import algos, metrics, report, runs, setup

    built = setup.build(args.strategy, description["params"], description["symbols"], args.latency_ms,
                        args.funding_hours, parents)
    outcome = _run_with_progress(built, recorded)
    account = built.account()
    figures = metrics.compute(outcome, account, built.starting_balance)
    rid = runs.run_id(description)
    title = f"backtest {args.strategy} {','.join(description['symbols'])} ({rid[:12]})"
    out = args.out or home / "backtests" / rid
    out.mkdir(parents=True, exist_ok=True)
    data = report.series(outcome, account, built.starting_balance)
    report.write_png(data, out / "report.png", title)
    report.write_html(data, figures, out / "report.html", title, algos.html(outcome))
    if args.json:
        import orjson

        print(orjson.dumps({"run_id": rid, **figures.as_dict(), "intents": len(outcome.of(ORDERS_INTENTS)),
                            "decisions": len(outcome.of(ORDERS_DECISIONS)),
                            **({"algos": algos.rows(outcome)} if parents else {})}, default=str).decode())
    else:
        console = _out()
        console.print(report.table(figures, title))
        if parents:
            console.print(algos.table(outcome))
        console.print(f"intents {len(outcome.of(ORDERS_INTENTS))}, decisions "
                      f"{len(outcome.of(ORDERS_DECISIONS))}, market events {outcome.market_events}; "
                      f"report: {out / 'report.html'}, {out / 'report.png'}")
    if not args.no_store:
        try:
            runs.store_run(store_url, home / "chdb", rid, description, figures, metrics.fills(outcome, account),
                           algos.reports(outcome))
        except runs.StoreError as exc:
            raise BadInput(f"run {rid} not stored: {exc} (--no-store skips storing)") from None
    return 0


def _run_with_progress(built: Any, recorded: Any) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from services.backtest import loop

    console = Console(stderr=True)
    with Progress(TextColumn("backtest"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=console, transient=True, disable=not console.is_terminal) as progress:
        events = recorded.events
        task = progress.add_task("events", total=len(events))
        return loop.run(built, events, progress=lambda n: progress.advance(task, n),
                        price_every=max(1, len(events) // 20000), instruments=recorded.instruments)


# ------------------------------------------------------------------ grid


def _grid(pairs: Sequence[str]) -> list[dict[str, str]]:
    """--grid NAME=A,B,C ... → every combination, as parameter dicts ([] without --grid)."""
    if not pairs:
        return []
    axes: list[tuple[str, list[str]]] = []
    for pair in pairs:
        name, sep, values = pair.partition("=")
        choices = [v for v in values.split(",") if v]
        if not sep or not name or not choices:
            raise BadInput(f"--grid takes NAME=A,B,C, got {pair!r}")
        if name in dict(axes):
            raise BadInput(f"--grid {name} given twice")
        axes.append((name, choices))
    return [dict(zip([n for n, _ in axes], combo, strict=True)) for combo in itertools.product(*(v for _, v in axes))]


_EVENTS: list[Any] = []
_INSTRUMENTS: list[Any] = []


def _init_worker(payload: bytes, definitions: bytes) -> None:
    import msgspec

    from schemas.events import InstrumentDefined
    from services.backtest.sources import MarketEvent

    _EVENTS[:] = msgspec.msgpack.decode(payload, type=list[MarketEvent])
    _INSTRUMENTS[:] = msgspec.msgpack.decode(definitions, type=list[InstrumentDefined])


def _grid_point(strategy: str, params: dict[str, str], symbols: list[str], latency_ms: float,
                funding_hours: float, parents: tuple[Any, ...] = ()) -> dict[str, Any]:
    """One grid point in a worker process: its metrics, fills and algo reports (for the store)."""
    from services.backtest import algos, loop, metrics, setup

    built = setup.build(strategy, params, symbols, latency_ms, funding_hours, parents)
    outcome = loop.run(built, _EVENTS, price_every=len(_EVENTS) + 1, instruments=_INSTRUMENTS)
    account = built.account()
    return {"params": params, "metrics": metrics.compute(outcome, account, built.starting_balance),
            "fills": metrics.fills(outcome, account), "algo_reports": algos.reports(outcome)}


def _sweep(args: argparse.Namespace, description: dict[str, Any], grid: list[dict[str, str]], recorded: Any,
           store_url: str, home: Path, parents: tuple[Any, ...]) -> int:
    import msgspec
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from rich.table import Table

    from services.backtest import report, runs

    payload = msgspec.msgpack.encode(recorded.events)
    definitions = msgspec.msgpack.encode(recorded.instruments)
    base = description["params"]
    results: list[dict[str, Any]] = []
    console = Console(stderr=True)
    workers = min(args.workers, len(grid))
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker,
                             initargs=(payload, definitions)) as pool, \
            Progress(TextColumn("grid"), BarColumn(), MofNCompleteColumn(), console=console, transient=True,
                     disable=not console.is_terminal) as progress:
        task = progress.add_task("points", total=len(grid))
        futures = [pool.submit(_grid_point, args.strategy, {**base, **point}, description["symbols"],
                               args.latency_ms, args.funding_hours, parents) for point in grid]
        for future in futures:
            results.append(future.result())
            progress.advance(task)
    key = args.rank_by
    results.sort(key=lambda r: (getattr(r["metrics"], key) is None, -float(getattr(r["metrics"], key) or 0)))
    names = list(grid[0])
    table = Table(title=f"grid {args.strategy} {','.join(description['symbols'])}: {len(grid)} runs, "
                        f"ranked by {key}", title_justify="left")
    for column in ("rank", *names, "run", "PnL", "return", "Sharpe", "Sortino", "max DD %", "fees", "trades"):
        table.add_column(column, justify="right")
    stored_error = ""
    for rank, result in enumerate(results, 1):
        figures = result["metrics"]
        rid = runs.run_id({**description, "params": result["params"]})
        if not args.no_store and not stored_error:
            try:
                runs.store_run(store_url, home / "chdb", rid, {**description, "params": result["params"]}, figures,
                               result["fills"], result["algo_reports"])
            except runs.StoreError as exc:
                stored_error = str(exc)
        table.add_row(str(rank), *(result["params"][n] for n in names), rid[:8], report.text("pnl", figures.pnl),
                      report.text("total_return", figures.total_return), report.text("sharpe", figures.sharpe),
                      report.text("sortino", figures.sortino),
                      report.text("max_drawdown_pct", figures.max_drawdown_pct), report.text("fees", figures.fees),
                      str(figures.trades))
    _out().print(table)
    if stored_error:
        raise BadInput(f"grid runs not stored: {stored_error} (--no-store skips storing)")
    return 0


def _out() -> Any:
    """stdout; tables keep their width when it is a pipe or a file (rich would fold them to 80)."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=160)


# ------------------------------------------------------------------ where things are


def _load(source: str, query: Any, store_url: str, home: Path) -> Any:
    from services.backtest import sources

    try:
        if source == "log":
            from services.runtime.settings import RuntimeSettings, load_settings

            bootstrap = load_settings(RuntimeSettings, "HEAN").kafka_bootstrap
            return asyncio.run(sources.from_log(bootstrap, query))
        return sources.from_store(store_url, home / "chdb", query)
    except sources.SourceError as exc:
        raise BadInput(str(exc)) from None


def _home() -> Path:
    from services.cli.infra import LocalStack

    return LocalStack.from_env().home


def _prefix(explicit: str | None) -> str:
    from services.cli import session
    from services.runtime.errors import ConfigError

    try:
        return session.for_reader(_home(), explicit)
    except ConfigError as exc:
        raise BadInput(str(exc)) from None


def _code_version() -> str:
    from services.backtest.runs import code_version

    return code_version(ROOT)
