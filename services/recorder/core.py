"""Events → table rows: which tables each topic fills and the columns of each row. No I/O.

The tables come from services/recorder/tables.py (derived from schemas/events.py); the store
runs the generated schemas/clickhouse/*.sql. Every row carries its Kafka position (_topic,
_partition, _offset). Timestamps stay integer ns and money stays Decimal here; each store
converts them for its engine.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce
from importlib import resources
from operator import or_
from typing import Any

from schemas.events import TickerUpdated, TradeReceived
from services.recorder.tables import POSITION_COLUMNS, TABLE_DEFS, TableDef

Row = tuple[Any, ...]


@dataclass(frozen=True)
class TableSpec:
    """A table the recorder fills: its name, its topic, the events it takes and its columns."""

    name: str
    topic: str
    accepts: Any
    columns: tuple[tuple[str, str], ...]
    getters: tuple[Callable[[Any], Any], ...]
    explode: Callable[[Any], list[Any]] | None = None
    fields: tuple[str, ...] = ()
    """Per event column, the field it holds as it is, or '' (see tables.Column.field)."""
    one_per_id: bool = False
    """A repeated id is not recorded again (see tables.TableDef.one_per_id)."""

    @property
    def column_names(self) -> list[str]:
        return [c for c, _ in self.columns]

    def rows(self, event: Any) -> list[Row]:
        """The rows of one event, without the Kafka position: one, or one per book level."""
        items = self.explode(event) if self.explode is not None else (event,)
        getters = self.getters
        return [tuple(get(item) for get in getters) for item in items]


def ddl(db: str) -> list[str]:
    """The statements of schemas/clickhouse/*.sql for database `db`, one per statement, in file order."""
    statements = []
    for sql_file in sorted(resources.files("schemas.clickhouse").iterdir(), key=lambda f: f.name):
        if not sql_file.name.endswith(".sql"):
            continue
        text = "\n".join(line for line in sql_file.read_text().splitlines() if not line.strip().startswith("--"))
        statements += [s.strip().replace("{db}", db) for s in text.split(";") if s.strip()]
    return statements


def upgrades(db: str, existing: dict[str, set[str]]) -> list[str]:
    """ALTERs that add the columns a table of an older store lacks (`existing`: table → columns
    it has). Tables are created with IF NOT EXISTS, so a store made before an event gained a field
    keeps its old columns, and the recorder's INSERT of the new column would fail on it; an
    added column reads as NULL (or its type's default) for the rows recorded before."""
    statements = []
    for statement in ddl(db):
        parsed = ddl_columns(statement)
        if parsed is None or parsed[0] not in existing:
            continue
        table, columns = parsed
        for name, ch_type in columns:
            if name not in existing[table]:
                statements.append(f"ALTER TABLE {db}.{table} ADD COLUMN IF NOT EXISTS {name} {ch_type}")
    return statements


def ddl_columns(statement: str) -> tuple[str, tuple[tuple[str, str], ...]] | None:
    """(table, ((column, type), ...)) parsed from one CREATE TABLE statement; None for a view."""
    table = re.search(r"CREATE TABLE IF NOT EXISTS \S+?\.(\w+)", statement)
    if table is None:
        return None
    body = statement[statement.index("(") + 1: statement.index("\n)")]
    columns = []
    for line in body.splitlines():
        line = line.strip().rstrip(",")
        if line:
            name, rest = line.split(None, 1)
            columns.append((name, rest.split(" CODEC")[0].strip()))
    return table.group(1), tuple(columns)


def _spec(table: TableDef) -> TableSpec:
    """The spec of `table` with the column types of the committed DDL: the store writes what it created."""
    parsed = dict(p for p in map(ddl_columns, ddl("hean")) if p is not None)
    columns = parsed[table.name]
    expected = tuple(c.name for c in table.columns) + tuple(n for n, _ in POSITION_COLUMNS)
    if tuple(n for n, _ in columns) != expected:
        raise RuntimeError(f"Expected the columns {expected} in schemas/clickhouse for {table.name}, found "
                           f"{tuple(n for n, _ in columns)}; regenerate: python -m services.recorder.tables")
    accepts = reduce(or_, table.events)
    return TableSpec(table.name, table.topic, accepts, columns, tuple(c.get for c in table.columns), table.explode,
                     tuple(c.field for c in table.columns), table.one_per_id)


TABLES: tuple[TableSpec, ...] = tuple(_spec(t) for t in TABLE_DEFS)
BY_TABLE: dict[str, TableSpec] = {t.name: t for t in TABLES}
TOPIC_TABLES: dict[str, tuple[TableSpec, ...]] = {}
for _table in TABLES:
    TOPIC_TABLES[_table.topic] = (*TOPIC_TABLES.get(_table.topic, ()), _table)
BY_TOPIC: dict[str, TableSpec] = {topic: tables[0] for topic, tables in TOPIC_TABLES.items()}
"""Each topic's first table (md.book → book_top), one row per record: where a record's offset is found."""
TOPIC_ACCEPTS: dict[str, Any] = {topic: tables[0].accepts for topic, tables in TOPIC_TABLES.items()}


def trade_row(e: TradeReceived) -> Row:
    [row] = BY_TABLE["trades"].rows(e)
    return row


def ticker_row(e: TickerUpdated) -> Row:
    [row] = BY_TABLE["tickers"].rows(e)
    return row
