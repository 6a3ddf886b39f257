"""Where the recorder writes: chDB in-process (local default) or a ClickHouse server.

Both run the same DDL (schemas/clickhouse/*.sql) and answer the same SQL. Both are blocking
clients; the recorder calls them from one worker thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import orjson

from services.recorder.core import TableSpec, ddl
from services.runtime.errors import ConfigError

Row = tuple[Any, ...]


class Store(Protocol):
    db: str

    def insert(self, spec: TableSpec, rows: Sequence[Row]) -> None: ...

    def query(self, sql: str) -> list[list[Any]]: ...

    def close(self) -> None: ...


def max_offsets(store: Store, spec: TableSpec, topic: str) -> dict[int, int]:
    """The last Kafka offset recorded per partition of `topic` in `spec`'s table: the resume point."""
    rows = store.query(
        f"SELECT _partition, max(_offset) FROM {store.db}.{spec.name} WHERE _topic = '{_quote(topic)}' "
        "GROUP BY _partition"
    )
    return {int(p): int(o) for p, o in rows}


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _select_expression(name: str, ch_type: str) -> str:
    """How a column travels into chDB: ns ints for DateTime64, decimal strings cast exactly."""
    if ch_type.startswith("DateTime64"):
        return f"fromUnixTimestamp64Nano({name}, 'UTC')"
    if ch_type.startswith("Nullable("):
        return f"CAST(nullIf({name}, '') AS {ch_type})"  # '' stands for NULL: see _to_chdb
    return f"CAST({name} AS {ch_type})"


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
        self._selects = {}

    def insert(self, spec: TableSpec, rows: Sequence[Row]) -> None:
        if not rows:
            return
        names = spec.column_names
        transposed = zip(*rows, strict=True)
        # chDB's Python() table function reads `columns` by name from this frame.
        columns = {name: _to_chdb(values, ch_type)  # noqa: F841
                   for (name, ch_type), values in zip(spec.columns, transposed, strict=True)}
        select = self._selects.get(spec.name)
        if select is None:
            select = self._selects[spec.name] = ", ".join(_select_expression(n, t) for n, t in spec.columns)
        self.session.query(
            f"INSERT INTO {self.db}.{spec.name} ({', '.join(names)}) SELECT {select} FROM Python(columns)")

    def query(self, sql: str) -> list[list[Any]]:
        result = self.session.query(sql, "JSONCompactEachRow")
        text = result.bytes() if hasattr(result, "bytes") else bytes(result)
        return [orjson.loads(line) for line in text.splitlines() if line]

    def query_text(self, sql: str, fmt: str = "PrettyCompactMonoBlock") -> str:
        return str(self.session.query(sql, fmt))

    def close(self) -> None:
        self.session.close()


def _to_chdb(values: tuple[Any, ...], ch_type: str) -> list[Any]:
    """Decimals travel as their exact strings (cast back to Decimal by the SELECT). NULL travels
    as '' because chDB cannot infer a type for a column that is all None; a nullable bool as
    '0'/'1', which ClickHouse casts to Bool."""
    if ch_type.startswith("Decimal"):
        return list(map(str, values))
    if ch_type.startswith("Nullable("):
        return ["" if v is None else str(int(v)) if isinstance(v, bool) else str(v) for v in values]
    return list(values)


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

    def insert(self, spec: TableSpec, rows: Sequence[Row]) -> None:
        if rows:
            # DateTime64(9) takes ns ints as raw ticks; Decimal columns take Decimal objects.
            self.client.insert(f"{self.db}.{spec.name}", list(rows), column_names=spec.column_names)

    def query(self, sql: str) -> list[list[Any]]:
        return [[_plain(v) for v in row] for row in self.client.query(sql).result_rows]

    def query_text(self, sql: str, fmt: str = "PrettyCompactMonoBlock") -> str:
        return self.client.command(f"{sql} FORMAT {fmt}")

    def close(self) -> None:
        self.client.close()


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
