"""The recorder's tables, derived from the event structs: one source of truth for the DDL.

Each table lists the topic it records and the event types it accepts; its columns are those
types' fields (in declaration order, `version` left out), typed by `column_type`. A field that
only some accepted types carry becomes Nullable, except strings, which stay String with ''
(a string's absence and its empty value mean the same thing in every event here). A nested event
(IntentApproved.intent) is flattened into `intent_<field>` columns. `python -m
services.recorder.tables` writes schemas/clickhouse/00N_*.sql, and tests/schemas/test_ddl_drift.py
fails when the committed files differ from what these definitions generate.
"""

from __future__ import annotations

import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import UnionType
from typing import Any, Literal

import msgspec

from schemas import events as ev
from schemas.topics import (
    ACCOUNTING_POSITIONS,
    ALGOS_REPORTS,
    CONTROL,
    DLQ,
    MD_BARS,
    MD_BOOK,
    MD_TICKERS,
    MD_TRADES,
    ORDERS_DECISIONS,
    ORDERS_EVENTS,
    ORDERS_INTENTS,
    REF_INSTRUMENTS,
)

MONEY = "Decimal(38, 18)"
TIME = "DateTime64(9, 'UTC')"
TIME_CODEC = "CODEC(DoubleDelta, ZSTD(1))"
LOW_CARDINALITY = {"symbol", "venue", "category", "account", "strategy", "fee_currency", "service", "source_topic",
                   "rule", "actor", "type", "reason", "intent_type", "intent_account", "intent_strategy",
                   "intent_symbol", "base_coin", "quote_coin", "status"}
"""Names, tags and reason codes: a handful of distinct values, so a dictionary per part beats ZSTD."""
INTEGER_TYPES = {"depth": "UInt16", "update_id": "UInt64 CODEC(Delta, ZSTD(1))", "seq": "UInt64 CODEC(Delta, ZSTD(1))",
                 "source_partition": "UInt16", "source_offset": "UInt64", "ret_code": "Int32", "interval_s": "UInt32"}
POSITION_COLUMNS = (("_topic", "LowCardinality(String)"), ("_partition", "UInt16"),
                    ("_offset", "UInt64 CODEC(Delta, ZSTD(1))"))
"""The Kafka position of every row: the recorder resumes from max(_offset) per partition."""


@dataclass(frozen=True)
class Column:
    """One column: its DDL type (with codec) and how to read its value from an event."""

    name: str
    ch_type: str
    get: Callable[[Any], Any]
    field: str = ""
    """The event field this column holds as it is ('' when `get` computes it): lets the recorder
    read whole columns at C speed (services/recorder/columns.py)."""


@dataclass(frozen=True)
class TableDef:
    """A table, the topic it records, the event types it takes, its columns and its sort key."""

    name: str
    topic: str
    events: tuple[type[ev.Event], ...]
    columns: tuple[Column, ...]
    order_by: str
    file: str
    explode: Callable[[Any], list[Any]] | None = None
    comment: str = ""
    one_per_id: bool = False
    """One row per event id: a repeat of an id already recorded is dropped (services/recorder/
    repeats.py). For the tables of topics whose writers may log an event twice after a crash (the
    idempotent commit mode, docs/COMMITS.md, and dead letters); not for bars, whose id is reused by
    design (a republished bar), nor instruments (every ingest start re-reads the same rules)."""


def _attr(name: str, default: Any = None) -> Callable[[Any], Any]:
    return lambda e: getattr(e, name, default)


def _nested(outer: str, name: str, default: Any = None) -> Callable[[Any], Any]:
    return lambda e: getattr(getattr(e, outer), name, default)


def _tag(e: Any) -> str:
    return ev.event_tag(type(e))


def column_type(name: str, hint: Any, everywhere: bool) -> str:
    """The DDL type of an event field; `everywhere` is false when some accepted type lacks it."""
    nullable = not everywhere
    if isinstance(hint, UnionType) and type(None) in hint.__args__:
        [hint] = [a for a in hint.__args__ if a is not type(None)]
        nullable = True
    if hint is str or hint is bytes:  # bytes: a dead letter's payload as hex (see DeadLettered rows)
        return "LowCardinality(String)" if name in LOW_CARDINALITY else "String CODEC(ZSTD(1))"
    if typing.get_origin(hint) is Literal:
        base = "Enum8(" + ", ".join(f"'{v}' = {i}" for i, v in enumerate(hint.__args__, 1)) + ")"
        codec = ""
    elif hint is Decimal:
        base, codec = MONEY, " CODEC(ZSTD(1))"
    elif hint is bool:
        base, codec = "Bool", ""
    elif hint is int and (name.startswith("ts_") or name.endswith("_ts") or name.endswith("_ts_event")
                          or name.endswith("_ts_ingest")):
        base, codec = TIME, " " + TIME_CODEC
    elif hint is int:
        base, _, rest = INTEGER_TYPES.get(name, "Int64 CODEC(ZSTD(1))").partition(" ")
        codec = " " + rest if rest else ""
    else:
        raise TypeError(f"Expected a scalar field type for column {name}, found {hint!r}; add a mapping in "
                        "services/recorder/tables.py")
    return f"Nullable({base}){codec}" if nullable else base + codec


def _hints(events: tuple[type, ...]) -> dict[str, list[Any]]:
    """field → its type in each accepted event that has it, in first-declaration order."""
    found: dict[str, list[Any]] = {}
    for event in events:
        hints = typing.get_type_hints(event)
        for f in msgspec.structs.fields(event):
            if f.name != "version":
                found.setdefault(f.name, []).append(hints[f.name])
    return found


def event_columns(events: tuple[type, ...], only: tuple[str, ...] = (), tagged: bool = True) -> list[Column]:
    """Columns for the fields of `events` (all, or `only` in that order), flattening nested events."""
    columns = [Column("type", "LowCardinality(String)", _tag)] if tagged else []
    found = _hints(events)
    for name in only or tuple(found):
        types = found[name]
        everywhere = len(types) == len(events)
        hint = types[0]
        members = hint.__args__ if isinstance(hint, UnionType) else (hint,)
        if all(isinstance(m, type) and issubclass(m, ev.Event) for m in members):
            columns.append(Column(f"{name}_type", "LowCardinality(String)", lambda e, n=name: _tag(getattr(e, n))))
            for sub in event_columns(members, tagged=False):
                flat = f"{name}_{sub.name}"
                ch_type = column_type(flat, _sub_hint(members, sub.name), _in_all(members, sub.name))
                columns.append(Column(flat, ch_type, _nested(name, sub.name, "" if "String" in ch_type else None)))
            continue
        if typing.get_origin(types[0]) is tuple:  # a vwap's volume profile: its weights as text
            columns.append(Column(name, "String CODEC(ZSTD(1))", _joined(name)))
            continue
        default = "" if types[0] in (str, bytes) else None
        getter = _hex(name) if types[0] is bytes else _attr(name, default)
        plain = types[0] is not bytes and everywhere
        columns.append(Column(name, column_type(name, types[0], everywhere), getter, name if plain else ""))
    return columns


def _sub_hint(members: tuple[type, ...], name: str) -> Any:
    return next(typing.get_type_hints(m)[name] for m in members if name in typing.get_type_hints(m))


def _in_all(members: tuple[type, ...], name: str) -> bool:
    return all(name in typing.get_type_hints(m) for m in members)


def _hex(name: str) -> Callable[[Any], str]:
    """Bytes as lowercase hex: every output format (JSON, CSV, a terminal) carries hex unchanged,
    chDB's Python() input takes no bytes, and `unhex(payload)` gives the exact bytes back."""
    return lambda e: getattr(e, name).hex()


def _joined(name: str) -> Callable[[Any], str]:
    """A tuple of Decimals as its exact values joined by commas ('' when absent or empty): one
    String column in chDB and ClickHouse alike, `arrayMap(toDecimal128OrNull(x, 18), splitByChar(',', c))`
    in SQL gives the numbers back."""
    return lambda e: ",".join(str(v) for v in getattr(e, name, ()))


def _level(i: int) -> Callable[[Any], Any]:
    return lambda level: level[i]


def book_levels(e: ev.BookSnapshotReceived | ev.BookDeltaReceived) -> list[tuple[str, Decimal, Decimal]]:
    """One (side, price, size) per level the event sets; size 0 deletes the level (deltas only)."""
    return [("bid", p, s) for p, s in e.bids] + [("ask", p, s) for p, s in e.asks]


def _top(which: str, i: int) -> Callable[[Any], Any]:
    return lambda e: (getattr(e, which) or (None, None))[i]


BOOK = (ev.BookSnapshotReceived, ev.BookDeltaReceived)
INTENTS: tuple[type[ev.Event], ...] = (*ev.IntentEvent.__args__,  # type: ignore[attr-defined]
                                      ev.SubmitAlgo, ev.CancelAlgo)
ALGO_REPORTS = (ev.AlgoProgressed, ev.AlgoCompleted)
ORDER_EVENTS: tuple[type[ev.Event], ...] = ev.ExecutionEvent.__args__  # type: ignore[attr-defined]
CONTROL_EVENTS: tuple[type[ev.Event], ...] = ev.ControlEvent.__args__  # type: ignore[attr-defined]
MARKET_POSITION = ("symbol", "ts_event", "ts_ingest", "venue", "category")
_book_common = {c.name: c for c in event_columns(BOOK, (*MARKET_POSITION, "depth", "update_id", "id"), tagged=False)}

TABLE_DEFS: tuple[TableDef, ...] = (
    TableDef("trades", MD_TRADES, (ev.TradeReceived,), tuple(event_columns(
        (ev.TradeReceived,), (*MARKET_POSITION, "trade_id", "side", "price", "qty", "id"), tagged=False)),
        "(symbol, ts_event)", "001_market.sql"),
    TableDef("book_top", MD_BOOK, BOOK, (
        *(_book_common[n] for n in (*MARKET_POSITION, "depth", "update_id")),
        Column("kind", "Enum8('snapshot' = 1, 'delta' = 2)",
               lambda e: "snapshot" if isinstance(e, ev.BookSnapshotReceived) else "delta"),
        Column("bid_price", f"Nullable({MONEY}) CODEC(ZSTD(1))", _top("best_bid", 0)),
        Column("bid_size", f"Nullable({MONEY}) CODEC(ZSTD(1))", _top("best_bid", 1)),
        Column("ask_price", f"Nullable({MONEY}) CODEC(ZSTD(1))", _top("best_ask", 0)),
        Column("ask_size", f"Nullable({MONEY}) CODEC(ZSTD(1))", _top("best_ask", 1)),
        _book_common["id"]), "(symbol, ts_event)", "001_market.sql"),
    TableDef("book_levels", MD_BOOK, BOOK, (
        *(Column(c.name, c.ch_type, lambda pair, g=c.get: g(pair[0]))
          for c in (_book_common[n] for n in (*MARKET_POSITION, "depth", "update_id"))),
        Column("is_snapshot", "Bool", lambda pair: isinstance(pair[0], ev.BookSnapshotReceived)),
        Column("side", "Enum8('bid' = 1, 'ask' = 2)", lambda pair: pair[1][0]),
        Column("price", f"{MONEY} CODEC(ZSTD(1))", lambda pair: pair[1][1]),
        Column("size", f"{MONEY} CODEC(ZSTD(1))", lambda pair: pair[1][2]),
        Column("id", "String CODEC(ZSTD(1))", lambda pair: pair[0].id)),
        "(symbol, ts_event, update_id)", "001_market.sql",
        explode=lambda e: [(e, level) for level in book_levels(e)],
        comment="every level a snapshot or delta sets, one row each (size 0: the level is deleted)"),
    TableDef("tickers", MD_TICKERS, (ev.TickerUpdated,), tuple(event_columns((ev.TickerUpdated,), (
        *MARKET_POSITION, "last_price", "mark_price", "index_price", "bid1_price", "bid1_size", "ask1_price",
        "ask1_size", "volume_24h", "turnover_24h", "funding_rate", "open_interest", "id"), tagged=False)),
        "(symbol, ts_event)", "001_market.sql"),
    TableDef("intents", ORDERS_INTENTS, INTENTS, tuple(event_columns(INTENTS)), "(symbol, ts_event)",
             "002_orders.sql", one_per_id=True),
    TableDef("decisions", ORDERS_DECISIONS, (ev.IntentApproved, ev.IntentRejected),
             tuple(event_columns((ev.IntentApproved, ev.IntentRejected))), "(intent_symbol, ts_event)",
             "002_orders.sql", one_per_id=True),
    TableDef("order_events", ORDERS_EVENTS, ORDER_EVENTS, tuple(event_columns(ORDER_EVENTS)), "(symbol, ts_event)",
             "002_orders.sql", one_per_id=True),
    TableDef("positions", ACCOUNTING_POSITIONS, (ev.PositionUpdated, ev.AccountUpdated),
             tuple(event_columns((ev.PositionUpdated, ev.AccountUpdated))), "(account, ts_event)",
             "003_accounts.sql", one_per_id=True),
    TableDef("control", CONTROL, CONTROL_EVENTS, tuple(event_columns(CONTROL_EVENTS)), "(account, ts_event)",
             "003_accounts.sql", one_per_id=True),
    TableDef("dead_letters", DLQ, (ev.DeadLettered,), tuple(event_columns((ev.DeadLettered,), tagged=False)),
             "(source_topic, ts_event)", "003_accounts.sql", one_per_id=True,
             comment="payload is the dead record's bytes as lowercase hex: unhex(payload) gives them back"),
    TableDef("algo_reports", ALGOS_REPORTS, ALGO_REPORTS, tuple(event_columns(ALGO_REPORTS)), "(symbol, ts_event)",
             "004_algos.sql", one_per_id=True,
             comment="one row per report of a parent order; the last per parent_id is its state"),
    TableDef("bars", MD_BARS, (ev.BarClosed,), tuple(event_columns((ev.BarClosed,), tagged=False)),
             "(symbol, interval_s, ts_event)", "001_market.sql",
             comment="every BarClosed record (ts_event: the bar's start); a late trade republishes its bar with the "
                     "same id, so a bar is the row with the highest _offset per (symbol, interval_s, ts_event)"),
    TableDef("instruments", REF_INSTRUMENTS, (ev.InstrumentDefined,),
             tuple(event_columns((ev.InstrumentDefined,), tagged=False)), "(symbol, venue, ts_event)",
             "005_reference.sql",
             comment="every version of an instrument's rules as published, none collapsed (the table keeps what "
                     "compaction drops from ref.instruments): the rules at T are the last row at or before T"),
)

HEADER = """-- GENERATED by `python -m services.recorder.tables` from schemas/events.py; do not edit by hand.
-- The same DDL for chDB (local) and a ClickHouse server (compose); {db} is the database name.
-- Ordered by (key, time) and partitioned by day. DoubleDelta suits monotonic timestamps, Delta
-- the offsets and update ids, LowCardinality names and tags, ZSTD the rest. _topic/_partition/
-- _offset hold each row's Kafka position: the recorder resumes from max(_offset), so a replay adds
-- no rows.
"""


def render(table: TableDef) -> str:
    """One CREATE TABLE statement, columns aligned."""
    columns = [(c.name, c.ch_type) for c in table.columns] + list(POSITION_COLUMNS)
    width = max(len(n) for n, _ in columns) + 1
    body = ",\n".join(f"    {n.ljust(width)}{t}" for n, t in columns)
    comment = f"-- {table.name}: {table.comment}\n" if table.comment else ""
    return (f"{comment}CREATE TABLE IF NOT EXISTS {{db}}.{table.name}\n(\n{body}\n)\nENGINE = MergeTree\n"
            f"PARTITION BY toDate(ts_event)\nORDER BY {table.order_by};\n")


def generated_files() -> dict[str, str]:
    """file name → the text the table definitions generate for it."""
    files: dict[str, list[str]] = {}
    for table in TABLE_DEFS:
        files.setdefault(table.file, []).append(render(table))
    return {name: HEADER + "\n" + "\n".join(statements) for name, statements in files.items()}


def write(directory: Path) -> list[Path]:
    """Write the generated .sql files; `make schemas` runs this after schemas/events.py changes."""
    written = []
    for name, text in generated_files().items():
        (directory / name).write_text(text)
        written.append(directory / name)
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "schemas" / "clickhouse"
    for path in write(target):
        print(path)
