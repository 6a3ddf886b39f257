"""Every backtest in the store: `backtest_runs` (what ran, on what data, with which code, and its
metrics), `backtest_trades` (its fills) and `backtest_algo_reports` (its parent orders' execution
reports, the live `algo_reports` columns after the run id), so runs are compared in SQL beside the
recorded data.

Both are ReplacingMergeTree tables keyed by the run id, which derives from everything that decides
the result (strategy, parameters, symbols, data range, source, latency, code version): running
the same backtest again replaces its rows instead of doubling them (`FINAL` reads them exact).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from schemas.events import AlgoReport, OrderFilled, OrderPartiallyFilled, derive_id
from services.backtest.metrics import Metrics

RUNS_DDL = """CREATE TABLE IF NOT EXISTS {db}.backtest_runs
(
    run_id                  String,
    started_at              DateTime64(3, 'UTC'),
    strategy                LowCardinality(String),
    params                  String,
    symbols                 Array(String),
    source                  LowCardinality(String),
    data_from               DateTime64(9, 'UTC'),
    data_to                 DateTime64(9, 'UTC'),
    latency_ms              Float64,
    code_version            String,
    market_events           UInt64,
    starting_balance        Decimal(38, 18),
    final_equity            Decimal(38, 18),
    pnl                     Decimal(38, 18),
    total_return            Float64,
    sharpe                  Nullable(Float64),
    sortino                 Nullable(Float64),
    calmar                  Nullable(Float64),
    max_drawdown            Decimal(38, 18),
    max_drawdown_pct        Float64,
    max_drawdown_duration_s Float64,
    turnover                Decimal(38, 18),
    fees                    Decimal(38, 18),
    funding                 Decimal(38, 18),
    win_rate                Nullable(Float64),
    trades                  UInt64,
    exposure                Float64,
    duration_s              Float64
)
ENGINE = ReplacingMergeTree(started_at)
ORDER BY run_id"""

TRADES_DDL = """CREATE TABLE IF NOT EXISTS {db}.backtest_trades
(
    run_id      String,
    ts_event    DateTime64(9, 'UTC'),
    symbol      LowCardinality(String),
    side        Enum8('Buy' = 1, 'Sell' = 2),
    qty         Decimal(38, 18),
    price       Decimal(38, 18),
    fee         Decimal(38, 18),
    is_maker    Bool,
    intent_id   String,
    exec_id     String
)
ENGINE = ReplacingMergeTree
ORDER BY (run_id, ts_event, exec_id)"""

def algo_columns() -> list[Any]:
    """The live algo_reports table's columns (services/recorder/tables.py), without the Kafka position."""
    from services.recorder.tables import POSITION_COLUMNS, TABLE_DEFS

    kafka = {name for name, _ in POSITION_COLUMNS}
    [table] = [t for t in TABLE_DEFS if t.name == "algo_reports"]
    return [c for c in table.columns if c.name not in kafka]


def algo_reports_ddl(db: str) -> str:
    """backtest_algo_reports: one row per report of a run's parent order, keyed by the run."""
    columns = ",\n".join(f"    {c.name} {c.ch_type}" for c in algo_columns())
    return (f"CREATE TABLE IF NOT EXISTS {db}.backtest_algo_reports\n(\n    run_id String,\n{columns}\n)\n"
            "ENGINE = ReplacingMergeTree\nORDER BY (run_id, parent_id, ts_event, id)")


METRIC_COLUMNS = ("starting_balance", "final_equity", "pnl", "total_return", "sharpe", "sortino", "calmar",
                  "max_drawdown", "max_drawdown_pct", "max_drawdown_duration_s", "turnover", "fees", "funding",
                  "win_rate", "trades", "exposure", "duration_s")


class StoreError(Exception):
    """The run could not be stored; the message is one line."""


def run_id(description: dict[str, Any]) -> str:
    """The run's id: a hash of everything that decides its result."""
    return derive_id("backtest", json.dumps(description, sort_keys=True, default=str))


def code_version(root: Path) -> str:
    """The git commit the code is at (+ "-dirty" with local changes), or "unknown" outside git."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "services", "schemas"],
                               cwd=root, capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Decimal):
        return f"'{value:f}'"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _time(ns: int) -> str:
    seconds, rest = divmod(ns, 10**9)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S") + f".{rest:09d}"


def _cell(column: Any, event: Any) -> str:
    """One column's value of an event as a literal (times as DateTime64 text, like the other tables)."""
    value = column.get(event)
    if value is not None and "DateTime64" in column.ch_type:
        return _literal(_time(value))
    return _literal(value)


class _Connection:
    """A writing connection to the store: chDB in this process, or a ClickHouse server."""

    def __init__(self, url: str, default_path: Path) -> None:
        from urllib.parse import urlsplit

        if not url or url.startswith("chdb://"):
            path = Path(url[len("chdb://"):] or default_path)
            from chdb import session

            path.mkdir(parents=True, exist_ok=True)
            try:
                self.session: Any = session.Session(str(path))
            except RuntimeError as exc:
                raise StoreError(f"cannot open the chDB store at {path} ({str(exc).splitlines()[0][:120]}); only "
                                 "one process can: a running recorder holds it") from None
            self.client: Any = None
            self.db = "hean"
            return
        parts = urlsplit(url)
        if parts.scheme not in ("clickhouse", "http"):
            raise StoreError(f"--store must be chdb://PATH or clickhouse://user:pass@host:port/db, was {url!r}")
        import clickhouse_connect
        from clickhouse_connect.driver.exceptions import ClickHouseError

        try:
            self.client = clickhouse_connect.get_client(host=parts.hostname or "localhost", port=parts.port or 8123,
                                                        username=parts.username or "default",
                                                        password=parts.password or "", connect_timeout=2)
        except ClickHouseError as exc:
            raise StoreError(f"cannot reach the ClickHouse server at {parts.hostname}:{parts.port}: "
                             f"{str(exc).splitlines()[0][:120]}") from None
        self.session = None
        self.db = (parts.path or "/hean").strip("/") or "hean"

    def execute(self, sql: str) -> None:
        if self.session is not None:
            self.session.query(sql)
        else:
            self.client.command(sql)

    def close(self) -> None:
        (self.session or self.client).close()


def store_run(store_url: str, default_path: Path, rid: str, description: dict[str, Any], metrics: Metrics,
              trades: Sequence[OrderFilled | OrderPartiallyFilled], algo_reports: Sequence[AlgoReport] = ()) -> None:
    """Create the tables if needed and write the run, its fills and its parents' reports."""
    store = _Connection(store_url, default_path)
    try:
        execute = store.execute
        execute(f"CREATE DATABASE IF NOT EXISTS {store.db}")
        execute(RUNS_DDL.format(db=store.db))
        execute(TRADES_DDL.format(db=store.db))
        started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        values = [rid, started, description["strategy"], json.dumps(description["params"], sort_keys=True),
                  list(description["symbols"]), description["source"], _time(description["from_ns"]),
                  _time(description["to_ns"]), float(description["latency_ms"]), description["code_version"],
                  int(description["market_events"]), *(getattr(metrics, c) for c in METRIC_COLUMNS)]
        columns = ("run_id", "started_at", "strategy", "params", "symbols", "source", "data_from", "data_to",
                   "latency_ms", "code_version", "market_events", *METRIC_COLUMNS)
        execute(f"INSERT INTO {store.db}.backtest_runs ({', '.join(columns)}) "
                f"VALUES ({', '.join(map(_literal, values))})")
        for chunk in range(0, len(trades), 5000):
            rows = ", ".join("(" + ", ".join(map(_literal, (rid, _time(f.ts_event), f.symbol, f.side, f.fill_qty,
                                                            f.fill_price, f.fee, f.is_maker, f.intent_id,
                                                            f.exec_id))) + ")"
                             for f in trades[chunk:chunk + 5000])
            execute(f"INSERT INTO {store.db}.backtest_trades VALUES {rows}")
        if algo_reports:
            columns = algo_columns()
            execute(algo_reports_ddl(store.db))
            rows = ", ".join("(" + ", ".join([_literal(rid), *(_cell(c, r) for c in columns)]) + ")"
                             for r in algo_reports)
            execute(f"INSERT INTO {store.db}.backtest_algo_reports (run_id, {', '.join(c.name for c in columns)}) "
                    f"VALUES {rows}")
    except Exception as exc:  # one line for the person; the run's report is already out
        raise StoreError(f"storing the run failed: {str(exc).splitlines()[0][:300]}") from None
    finally:
        store.close()
