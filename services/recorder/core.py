"""Events → table rows: which table each topic fills and the columns of each row. No I/O.

Every row carries its Kafka position (_topic, _partition, _offset). Timestamps stay integer ns and
money stays Decimal here; each store converts them for its engine.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

from schemas.events import BookDeltaReceived, BookSnapshotReceived, Event, TickerUpdated, TradeReceived
from schemas.topics import MD_BOOK, MD_TICKERS, MD_TRADES

Row = tuple[Any, ...]


@dataclass(frozen=True)
class TableSpec:
    """A table the recorder fills: its name, its columns and the DDL type of each."""

    name: str
    topic: str
    accepts: Any
    columns: tuple[tuple[str, str], ...]
    row: Callable[[Any], Row]

    @property
    def column_names(self) -> list[str]:
        return [c for c, _ in self.columns]


def ddl(db: str) -> list[str]:
    """The CREATE statements of schemas/clickhouse/*.sql for database `db`, one per statement."""
    statements = []
    for sql_file in sorted(resources.files("schemas.clickhouse").iterdir(), key=lambda f: f.name):
        if not sql_file.name.endswith(".sql"):
            continue
        text = "\n".join(line for line in sql_file.read_text().splitlines() if not line.strip().startswith("--"))
        statements += [s.strip().replace("{db}", db) for s in text.split(";") if s.strip()]
    return statements


def ddl_columns(statement: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """(table, ((column, type), ...)) parsed from one CREATE TABLE statement."""
    table = re.search(r"CREATE TABLE IF NOT EXISTS \S+?\.(\w+)", statement)
    body = statement[statement.index("(") + 1: statement.index("\n)")]
    columns = []
    for line in body.splitlines():
        line = line.strip().rstrip(",")
        if line:
            name, rest = line.split(None, 1)
            columns.append((name, rest.split(" CODEC")[0].strip()))
    assert table is not None
    return table.group(1), tuple(columns)


def _position(event: Event) -> tuple[Any, ...]:
    return (event.ts_event, event.ts_ingest, getattr(event, "venue", ""), getattr(event, "category", ""))


def trade_row(e: TradeReceived) -> Row:
    return (e.symbol, *_position(e), e.trade_id, e.side, e.price, e.qty, e.id)


def book_top_row(e: BookSnapshotReceived | BookDeltaReceived) -> Row:
    bid, ask = e.best_bid or (None, None), e.best_ask or (None, None)
    kind = "snapshot" if isinstance(e, BookSnapshotReceived) else "delta"
    return (e.symbol, *_position(e), e.depth, e.update_id, kind, bid[0], bid[1], ask[0], ask[1], e.id)


def ticker_row(e: TickerUpdated) -> Row:
    return (e.symbol, *_position(e), e.last_price, e.mark_price, e.index_price, e.bid1_price, e.bid1_size,
            e.ask1_price, e.ask1_size, e.volume_24h, e.turnover_24h, e.funding_rate, e.open_interest, e.id)


def _spec(name: str, topic: str, accepts: Any, row: Callable[[Any], Row]) -> TableSpec:
    [statement] = [s for s in ddl("hean") if f".{name}\n" in s or f".{name} " in s]
    return TableSpec(name, topic, accepts, ddl_columns(statement)[1], row)


TABLES: tuple[TableSpec, ...] = (
    _spec("trades", MD_TRADES, TradeReceived, trade_row),
    _spec("book_top", MD_BOOK, BookSnapshotReceived | BookDeltaReceived, book_top_row),
    _spec("tickers", MD_TICKERS, TickerUpdated, ticker_row),
)
BY_TOPIC: dict[str, TableSpec] = {t.topic: t for t in TABLES}
BY_TABLE: dict[str, TableSpec] = {t.name: t for t in TABLES}
