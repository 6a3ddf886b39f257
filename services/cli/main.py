"""`hean`: one command for the whole platform; every subcommand has `--help`."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson


def _time_ms(text: str) -> int:
    """A start time as ms since the epoch: digits are taken as ms, anything else as ISO 8601."""
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ms since the epoch or ISO 8601, got {text!r}") from None
    return int(moment.timestamp() * 1000)


def _add_start_options(parser: argparse.ArgumentParser, required: bool) -> None:
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--from-beginning", action="store_true", help="rebuild from the start of the log")
    group.add_argument("--from-offset", type=int, metavar="N", help="rebuild from offset N of every input partition")
    group.add_argument("--from-time", type=_time_ms, metavar="T",
                       help="rebuild from time T (ms since the epoch or ISO 8601)")


def _start_from(args: argparse.Namespace) -> Any:
    from services.runtime.service import StartFrom

    if args.from_beginning:
        return StartFrom("beginning")
    if args.from_offset is not None:
        return StartFrom("offset", args.from_offset)
    if args.from_time is not None:
        return StartFrom("time", args.from_time)
    return StartFrom()


def _settings(args: argparse.Namespace, session_default: bool = False) -> Any:
    """Runtime settings from HEAN_* and the command line; `session_default`: a reading command
    that, given no prefix, reads the current session (services/cli/session.py)."""
    from services.runtime.settings import RuntimeSettings, load_settings

    prefix = getattr(args, "topic_prefix", None)
    if session_default:
        prefix = _reader_prefix(prefix)
    return load_settings(RuntimeSettings, "HEAN", instance=getattr(args, "instance", None),
                         metrics_port=getattr(args, "metrics_port", None), topic_prefix=prefix)


def _reader_prefix(explicit: str | None) -> str:
    from services.cli import session
    from services.cli.infra import LocalStack

    return session.for_reader(LocalStack.from_env().home, explicit)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hean", description="HEAN: event-sourced crypto trading on a Kafka log.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    infra = sub.add_parser("infra", help="start, stop or inspect the local stack (Kafka, Redis, chDB)")
    infra.add_argument("action", choices=["up", "down", "status"])

    topics = sub.add_parser("topics", help="list topics with end offsets and consumer lag, or create them")
    topics.add_argument("action", nargs="?", choices=["list", "create"], default="list")
    topics.add_argument("--prefix", help="topic name prefix (default: the current session of hean up)")

    schemas = sub.add_parser("schemas", help="export the event schemas as docs")
    schemas.add_argument("action", choices=["export"])
    schemas.add_argument("--format", choices=["markdown", "json"], default="markdown")
    schemas.add_argument("--out", type=Path, help="write here instead of stdout")

    run = sub.add_parser("run", help="run a service (tally, exchange-sim, ingest, recorder) until SIGTERM/Ctrl-C")
    run.add_argument("service")
    _add_start_options(run, required=False)
    run.add_argument("--instance", help="instance id (unique per process of one service; default 0)")
    run.add_argument("--metrics-port", type=int, help="port of /metrics (0 = any free port)")
    run.add_argument("--topic-prefix", help="prefix of every topic name (isolates test runs)")

    replay = sub.add_parser("replay", help="rebuild a service's state from the log without effects")
    replay.add_argument("service")
    _add_start_options(replay, required=True)
    replay.add_argument("--to-offset", type=int, metavar="M", help="stop before offset M of every partition")
    replay.add_argument("--workers", type=int, metavar="N",
                        help="processes folding partition groups side by side, where the service allows it "
                             "(default: cores + 1; 1 = one process)")
    replay.add_argument("--json", action="store_true", help="print the result as JSON")
    replay.add_argument("--topic-prefix", help="prefix of every topic name (default: the current session)")

    state = sub.add_parser("state", help="print a service's live state (from its snapshots) and hash")
    state.add_argument("service")
    state.add_argument("--json", action="store_true", help="print the result as JSON")
    state.add_argument("--topic-prefix", help="prefix of every topic name (default: the current session)")

    sql = sub.add_parser("sql", help="read-only SQL on the ClickHouse store, also while the recorder runs "
                         "(docs/ANALYTICS.md)")
    sql.add_argument("query", help='e.g. "SELECT symbol, count() FROM hean.trades GROUP BY symbol"')
    sql.add_argument("--store", help="chdb://PATH or clickhouse://user:pass@host:8123/db (default: RECORDER_STORE)")
    sql.add_argument("--format", default="table",
                     help="table, csv (with header), json (one object per line), parquet, "
                          "or any ClickHouse output format name (default: table)")
    sql.add_argument("--output", type=Path, metavar="FILE", help="write the result here (needed for parquet "
                     "when stdout is a terminal)")

    kill = sub.add_parser("kill-switch", help="halt (on) or resume (off) an account's trading: a control event")
    kill.add_argument("state", choices=["on", "off"])
    kill.add_argument("--account", required=True)
    kill.add_argument("--reason", required=True)
    kill.add_argument("--flatten", action="store_true",
                      help="with on: also close every position with reduce-only market orders")
    kill.add_argument("--topic-prefix", help="prefix of every topic name (default: the current session)")

    orders = sub.add_parser("orders", help="every order with its state, folded from the log")
    orders.add_argument("--account", help="only this account's orders")
    orders.add_argument("--open", action="store_true", help="only orders still working")
    orders.add_argument("--topic-prefix", help="prefix of every topic name (default: the current session)")

    order = sub.add_parser("order", help="an operator's manual order through risk: submit, amend or cancel")
    order.add_argument("action", choices=["submit", "amend", "cancel"])
    order.add_argument("--account", required=True)
    order.add_argument("--symbol", required=True)
    order.add_argument("--side", help="submit: Buy or Sell")
    order.add_argument("--qty", help="submit: the quantity; amend: the new whole quantity")
    order.add_argument("--price", help="submit: the limit price (none: a market order); amend: the new price")
    order.add_argument("--type", choices=["Limit", "Market"], help="submit: default Limit with --price, else Market")
    order.add_argument("--tif", default="GTC", help="submit: GTC (default), IOC, FOK or PostOnly")
    order.add_argument("--reduce-only", action="store_true", help="submit: only reduce the position")
    order.add_argument("--intent", help="amend, cancel: the order's intent id (as `hean orders` shows)")
    order.add_argument("--all", action="store_true", help="cancel: every open order of the account on the symbol")
    order.add_argument("--wait", type=float, default=10.0, help="seconds to follow the log for the outcome")
    order.add_argument("--topic-prefix", help="prefix of every topic name (default: the current session)")

    up = sub.add_parser("up", help="the whole local stack as supervised processes, live in the terminal")
    up.add_argument("--duration", type=float, default=0, help="seconds to run, then summarize (0 = until Ctrl-C)")
    up.add_argument("--symbols", default="BTCUSDT,ETHUSDT,SOLUSDT", help="comma-separated symbols to trade")
    up.add_argument("--no-recorder", action="store_true", help="do not record ticks into ClickHouse")
    up.add_argument("--market-rate", type=float, default=20.0,
                    help="the simulator's market events per second per symbol (default 20)")
    up.add_argument("--topic-prefix", help="topic prefix of the session (default: continue the current session)")
    up.add_argument("--scale", action="append", default=[], metavar="NAME=N",
                    help="run N instances of a service: strategy (by partition), execution (standbys), "
                         "ingest (by symbol set); repeatable")
    up.add_argument("--venue", default="sim", choices=["sim", "bybit-testnet", "bybit"],
                    help="where to trade: the bundled simulator (default), Bybit's testnet or Bybit itself "
                         "(needs EXECUTION_API_KEY and EXECUTION_API_SECRET; docs/REAL-VENUE.md)")
    up.add_argument("--binance", action="store_true",
                    help="also ingest Binance USDⓈ-M futures market data (the simulator's Binance dialect; "
                         "Binance itself with a real venue) and show both venues' books side by side")
    up.add_argument("--new-session", action="store_true",
                    help="start a fresh session (new topics, a fresh simulator account) instead of continuing")

    from services.backtest.cli import add_parser as add_backtest
    from services.cli.algo import add_parser as add_algo
    from services.cli.compose import add_parser as add_compose

    add_backtest(sub)
    add_algo(sub)
    add_compose(sub)

    demo = sub.add_parser("demo", help="the runtime end to end: synthetic trades → tally, live summary")
    demo.add_argument("--duration", type=float, default=0, help="seconds to run (0 = until Ctrl-C)")
    demo.add_argument("--rate", type=int, default=2000, help="synthetic trades per second")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from services.runtime.errors import ConfigError
    from services.runtime.logs import configure_logging

    try:
        return _dispatch(args, configure_logging)
    except ConfigError as exc:
        print(f"hean: configuration error: {exc}", file=sys.stderr)
        return 2


def _dispatch(args: argparse.Namespace, configure_logging: Any) -> int:
    if args.command == "infra":
        from services.cli import infra

        return {"up": infra.up, "down": infra.down, "status": infra.status}[args.action]()
    if args.command == "topics":
        from services.cli.topics import create_topics, list_topics

        prefix = _reader_prefix(args.prefix)
        return create_topics(prefix) if args.action == "create" else list_topics(prefix)
    if args.command == "schemas":
        from services.cli.schemas_export import export

        text = export(args.format)
        if args.out:
            args.out.write_text(text + "\n")
        else:
            print(text)
        return 0
    if args.command == "run":
        return _run(args, configure_logging)
    if args.command == "replay":
        return _replay(args)
    if args.command == "state":
        return _state(args)
    if args.command == "kill-switch":
        from services.cli.control import kill_switch

        if args.flatten and args.state != "on":
            raise SystemExit("hean kill-switch: --flatten goes with 'on'")
        return kill_switch(args.state, args.account, args.reason, _reader_prefix(args.topic_prefix), args.flatten)
    if args.command == "orders":
        from services.cli.orders import list_orders

        return list_orders(_reader_prefix(args.topic_prefix), args.account, args.open)
    if args.command == "order":
        from services.cli.orders import run_order_command

        return run_order_command(args, _reader_prefix(args.topic_prefix))
    if args.command == "algo":
        from services.cli.algo import main as algo

        return algo(args, _reader_prefix(args.topic_prefix))
    if args.command == "sql":
        return _sql(args)
    if args.command == "compose":
        from services.cli.compose import main as compose

        return compose(args)
    if args.command == "up":
        from services.cli import session
        from services.cli.infra import LocalStack
        from services.supervisor.main import up
        from services.supervisor.stack import StackConfig

        configure_logging("up", level="WARNING")
        symbols = tuple(s.strip() for s in args.symbols.split(",") if s.strip())
        home = LocalStack.from_env().home
        # A run continues the current session (its topics, snapshots and the simulator's saved
        # venue), so positions and PnL carry on; --new-session starts fresh.
        prefix, continued = session.for_up(home, args.topic_prefix, args.new_session, args.venue)
        try:  # refuse a bad venue setting before the session is made current
            StackConfig(home=home, prefix=prefix, symbols=symbols, market_rate=args.market_rate,
                        scale=_scale(args.scale), venue=args.venue)
        except ValueError as exc:
            print(f"hean up: {exc}", file=sys.stderr)
            return 2
        session.remember(home, prefix, args.venue)
        print(f"hean up: {'continuing' if continued else 'new'} session {prefix!r} on {args.venue}"
              + (" (--new-session starts a fresh one)" if continued else ""), flush=True)
        return up(args.duration, prefix, symbols, not args.no_recorder, home, _scale(args.scale), args.venue,
                  args.binance, args.market_rate)
    if args.command == "backtest":
        from services.backtest.cli import main as backtest

        configure_logging("backtest", level="ERROR")  # a client library's retry warning is not the one line
        return backtest(args)
    if args.command == "demo":
        from services.cli.demo import run_demo

        configure_logging("demo", level="WARNING")
        return run_demo(duration=args.duration, rate=args.rate)
    raise AssertionError(args.command)


def _run(args: argparse.Namespace, configure_logging: Any) -> int:
    from services.registry import definition, process
    from services.runtime.run import ServiceRunner, run_until_signal

    configure_logging(args.service, level=os.environ.get("HEAN_LOG_LEVEL", "INFO"))
    settings = _settings(args)
    run_process = process(args.service)
    if run_process is not None:
        run_until_signal(lambda stop: run_process(settings, stop))
        return 0
    runner = ServiceRunner(definition(args.service), settings, _start_from(args))
    run_until_signal(runner.run)
    return 0


def _sql(args: argparse.Namespace) -> int:
    from services.cli.infra import LocalStack
    from services.cli.sql import run_sql

    store = args.store or os.environ.get("RECORDER_STORE", "")
    return run_sql(args.query, store, args.format, args.output, LocalStack.from_env().chdb_dir)


def _replay(args: argparse.Namespace) -> int:
    from services.registry import definition
    from services.runtime.parallel import replay_split

    if args.workers is not None and args.workers < 1:
        raise SystemExit(f"--workers must be 1 or more, was {args.workers}")
    service = definition(args.service)
    tty = sys.stderr.isatty()
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if tty and now - last[0] > 0.2:
            last[0] = now
            width = 30
            filled = int(width * done / total) if total else width
            sys.stderr.write(f"\rreplaying {args.service} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
            sys.stderr.flush()

    result = asyncio.run(replay_split(args.service, service, _settings(args, session_default=True),
                                      _start_from(args), args.to_offset,
                                      progress, workers=args.workers))
    if tty:
        sys.stderr.write("\n")
    summary = {"service": args.service, "records": result.records, "undecodable": result.undecodable,
               "seconds": round(result.seconds, 3),
               "events_per_second": round(result.records / result.seconds) if result.seconds else None,
               "hash": result.hash,
               "summary": {str(k): service.summarize(v) for k, v in sorted(result.states.items())}}
    _print(summary, args.json)
    return 0


def _state(args: argparse.Namespace) -> int:
    from services.registry import definition
    from services.runtime.service import state_hash
    from services.runtime.snapshot import SnapshotStore

    service = definition(args.service)
    settings = _settings(args, session_default=True)

    async def load() -> list[Any]:
        prefix = settings.topic_prefix
        store = SnapshotStore(settings.redis_url, namespace=f"hean:{prefix}" if prefix else "hean")
        try:
            return await store.load_scopes(args.service)
        finally:
            await store.close()

    snapshots = asyncio.run(load())
    if not snapshots:
        print(f"hean: no snapshot of {args.service!r} yet; run it first (hean run {args.service})", file=sys.stderr)
        return 1
    try:
        states = _join_scopes(service, snapshots)
    except ValueError as exc:
        print(f"hean: the snapshots of {args.service!r} do not join: {exc}", file=sys.stderr)
        return 2
    now = time.time_ns()
    summary = {"service": args.service, "hash": state_hash(states),
               "records": sum(s.events_applied for s in snapshots),
               "shards": {f"{s.service}:{s.shard}" if s.service != args.service else str(s.shard): {
                   "offsets": s.offsets, "age_s": round((now - s.taken_at_ns) / 1e9, 1),
                   "events_applied": s.events_applied} for s in snapshots},
               "summary": {str(k): service.summarize(v) for k, v in sorted(states.items())}}
    _print(summary, args.json)
    return 0


def _scale(entries: list[str]) -> dict[str, int]:
    """--scale NAME=N entries; a malformed one is a usage error naming it."""
    scale: dict[str, int] = {}
    for entry in entries:
        name, _, count = entry.partition("=")
        if not name or not count.isdigit():
            raise SystemExit(f"hean up: --scale expects NAME=N (e.g. strategy=2), got {entry!r}")
        scale[name] = int(count)
    return scale


def _join_scopes(service: Any, snapshots: list[Any]) -> dict[int, Any]:
    """Shard → state; the snapshots of instances serving disjoint accounts ("risk@acc-a",
    "risk@acc-b") are joined into the one state a single instance would hold, so the hash
    compares with `hean replay`. ValueError when they overlap (an old all-accounts snapshot
    beside scoped ones, say)."""
    by_shard: dict[int, list[Any]] = {}
    for snapshot in snapshots:
        by_shard.setdefault(snapshot.shard, []).append(service.decode_state(snapshot.state))
    states = {}
    for shard, parts in by_shard.items():
        if len(parts) == 1:
            states[shard] = parts[0]
        elif service.merge_accounts is None:
            raise ValueError(f"{len(parts)} snapshots of shard {shard} and no way to join them")
        else:
            states[shard] = service.merge_accounts(parts)
    return states


def _print(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(orjson.dumps(summary).decode())
        return
    for key, value in summary.items():
        if isinstance(value, dict):
            print(f"{key}:")
            for k, v in value.items():
                print(f"  {k}: {orjson.dumps(v).decode()}")
        else:
            print(f"{key}: {value}")


if __name__ == "__main__":
    sys.exit(main())
