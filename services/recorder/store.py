"""Where the recorder writes: chDB in-process (local default) or a ClickHouse server.

Both run the same DDL (schemas/clickhouse/*.sql) and answer the same SQL. Both are blocking
clients; the recorder calls them from one worker thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import orjson

from services.recorder.columns import Columns, arrow_table, rows_to_columns, select_expression
from services.recorder.core import TableSpec, ddl, upgrades
from services.runtime.errors import ConfigError

Row = tuple[Any, ...]


class Store(Protocol):
    db: str

    def insert(self, spec: TableSpec, rows: Sequence[Row]) -> None: ...

    def insert_columns(self, spec: TableSpec, columns: Columns) -> None: ...

    def query(self, sql: str) -> list[list[Any]]: ...

    def close(self) -> None: ...


def max_offsets(store: Store, spec: TableSpec, topic: str) -> dict[int, int]:
    """The last Kafka offset recorded per partition of `topic` in `spec`'s table: the resume point."""
    rows = store.query(
        f"SELECT _partition, max(_offset) FROM {store.db}.{spec.name} WHERE _topic = '{_quote(topic)}' "
        "GROUP BY _partition"
    )
    return {int(p): int(o) for p, o in rows}


def recent_ids(store: Store, spec: TableSpec, topic: str,
               floor: Callable[[int], int]) -> dict[int, list[tuple[str, int]]]:
    """Per partition of `topic`, the (id, ts_event ns) of the rows `spec`'s table holds from
    `floor(newest ts_event of that partition)` on: what the recorder's repeat filter starts from."""
    table, where = f"{store.db}.{spec.name}", f"_topic = '{_quote(topic)}'"
    newest = store.query(f"SELECT _partition, toUnixTimestamp64Nano(max(ts_event)) FROM {table} WHERE {where} "
                         "GROUP BY _partition")
    found: dict[int, list[tuple[str, int]]] = {}
    for partition, ts in newest:
        rows = store.query(
            f"SELECT id, toUnixTimestamp64Nano(ts_event) FROM {table} WHERE {where} AND _partition = {int(partition)} "
            f"AND ts_event >= fromUnixTimestamp64Nano(toInt64({int(floor(int(ts)))}), 'UTC')")
        found[int(partition)] = [(str(i), int(t)) for i, t in rows]
    return found


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


class ChdbStore:
    """chDB, ClickHouse's engine in this process, file-backed (survives restarts).

    Only one process can open a chDB path at a time: the running recorder owns it and answers
    `hean sql` itself (services/recorder/query.py); `hean sql` opens it when no recorder runs.
    """

    def __init__(self, path: str | Path, db: str = "hean") -> None:
        from chdb import session

        self.path = Path(path).resolve()
        self.path.mkdir(parents=True, exist_ok=True)
        try:
            self.session = session.Session(str(path))
        except RuntimeError as exc:
            raise ConfigError(f"cannot open the chDB store at {path}: {exc}. Only one process can open it; "
                              "stop the recorder (or the other `hean sql`) first.") from None
        self.db = db
        self.session.query("SET output_format_json_quote_decimals = 1")  # exact decimals when read back
        self.session.query(f"CREATE DATABASE IF NOT EXISTS {db}")
        for statement in ddl(db):
            self.session.query(statement)
        for statement in upgrades(db, _columns_of(self.query(_COLUMNS.format(db=db)))):
            self.session.query(statement)

    def insert(self, spec: TableSpec, rows: Sequence[Row]) -> None:
        """Row tuples (tests, hand-made rows): the same path as the recorder's columns."""
        self.insert_columns(spec, rows_to_columns(spec, rows))

    def insert_columns(self, spec: TableSpec, columns: Columns) -> None:
        """One INSERT of typed Arrow columns: chDB reads them without a per-value Python step."""
        table = arrow_table(spec, columns)
        if not table.num_rows:
            return
        select = ", ".join(select_expression(name, ch_type, table.schema.field(name).type)
                           for name, ch_type in spec.columns)
        # chDB's Python() table function reads `table` by name from this frame.
        self.session.query(
            f"INSERT INTO {self.db}.{spec.name} ({', '.join(spec.column_names)}) SELECT {select} FROM Python(table)")

    def query(self, sql: str) -> list[list[Any]]:
        result = self.session.query(sql, "JSONCompactEachRow")
        text = result.bytes() if hasattr(result, "bytes") else bytes(result)
        return [orjson.loads(line) for line in text.splitlines() if line]

    def query_text(self, sql: str, fmt: str = "PrettyCompactMonoBlock") -> str:
        return str(self.session.query(sql, fmt))

    def close(self) -> None:
        self.session.close()


class ClickHouseStore:
    """A ClickHouse server through clickhouse-connect (the compose stack)."""

    def __init__(self, host: str, port: int = 8123, username: str = "default", password: str = "",
                 db: str = "hean") -> None:
        import clickhouse_connect

        self.client = clickhouse_connect.get_client(host=host, port=port, username=username, password=password)
        self.db = db
        self.client.command(f"CREATE DATABASE IF NOT EXISTS {db}")
        for statement in ddl(db):
            self.client.command(statement)
        for statement in upgrades(db, _columns_of(self.client.query(_COLUMNS.format(db=db)).result_rows)):
            self.client.command(statement)

    def insert(self, spec: TableSpec, rows: Sequence[Row]) -> None:
        self.insert_columns(spec, rows_to_columns(spec, rows))

    def insert_columns(self, spec: TableSpec, columns: Columns) -> None:
        names = spec.column_names
        if columns[names[0]]:
            # DateTime64(9) takes ns ints as raw ticks; Decimal columns take Decimal objects (a
            # column the recorder decoded as text is made of them here, off the chDB path).
            data = [_decimals(columns[n]) if "Decimal" in t else columns[n] for n, t in spec.columns]
            self.client.insert(f"{self.db}.{spec.name}", data, column_names=names, column_oriented=True)

    def query(self, sql: str) -> list[list[Any]]:
        return [[_plain(v) for v in row] for row in self.client.query(sql).result_rows]

    def query_text(self, sql: str, fmt: str = "PrettyCompactMonoBlock") -> str:
        return self.client.command(f"{sql} FORMAT {fmt}")

    def close(self) -> None:
        self.client.close()


def _decimals(values: list[Any]) -> list[Any]:
    if not any(isinstance(v, str) for v in values):
        return values
    return [Decimal(v) if isinstance(v, str) else v for v in values]


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal) else value


def open_store(url: str, default_path: Path) -> ChdbStore | ClickHouseStore:
    """`chdb://PATH` (or empty: the local default) or `clickhouse://user:password@host:port/db`."""
    from urllib.parse import urlsplit

    if not url or url.startswith("chdb://"):
        path = url[len("chdb://"):] if url else ""
        return ChdbStore(path or default_path)
    parts = urlsplit(url)
    if parts.scheme not in ("clickhouse", "http"):
        raise ConfigError(f"RECORDER_STORE must be chdb://PATH or clickhouse://user:pass@host:port/db, was {url!r}")
    return ClickHouseStore(parts.hostname or "localhost", parts.port or 8123, parts.username or "default",
                           parts.password or "", (parts.path or "/hean").strip("/") or "hean")


_COLUMNS = "SELECT table, name FROM system.columns WHERE database = '{db}'"


def _columns_of(rows: Sequence[Sequence[Any]]) -> dict[str, set[str]]:
    """table → the columns it has, from (table, column) rows of system.columns."""
    existing: dict[str, set[str]] = {}
    for table, name in rows:
        existing.setdefault(table, set()).add(name)
    return existing
