"""Recorder logic without I/O: rows match the DDL, inserts keep the per-partition prefix property."""

from __future__ import annotations

import msgspec

from schemas.events import BookDeltaReceived, TickerUpdated, TradeReceived
from services.recorder.core import TABLES, ddl, ddl_columns
from services.recorder.shell import DAY_NS, insert_runs
from tests.samples import SAMPLES

POSITION = ("_topic", "_partition", "_offset")


def test_ddl_is_one_statement_per_table_and_every_table_is_mapped() -> None:
    tables = {ddl_columns(s)[0] for s in ddl("x")}
    assert tables == {t.name for t in TABLES}
    assert all(s.startswith("CREATE TABLE IF NOT EXISTS x.") for s in ddl("x"))


def test_columns_mirror_event_fields() -> None:
    """A column is an event field (or a Kafka position, or a derived top-of-book field); drift fails here."""
    derived = {"book_top": {"kind", "bid_price", "bid_size", "ask_price", "ask_size"}}
    for spec in TABLES:
        events = spec.accepts.__args__ if hasattr(spec.accepts, "__args__") else (spec.accepts,)
        fields = set.intersection(*({f.name for f in msgspec.structs.fields(e)} for e in events))
        extra = set(spec.column_names) - fields - set(POSITION) - derived.get(spec.name, set())
        assert not extra, f"{spec.name} has columns that are no event field: {extra}"


def test_rows_have_one_value_per_column() -> None:
    for spec, event in ((TABLES[0], SAMPLES[TradeReceived]), (TABLES[1], SAMPLES[BookDeltaReceived]),
                        (TABLES[2], SAMPLES[TickerUpdated])):
        assert len(spec.row(event)) + len(POSITION) == len(spec.columns)


def test_insert_runs_group_by_day_and_keep_offset_order() -> None:
    day = 20_000 * DAY_NS
    entries = [(0, 3, day, ("p0", 3)), (0, 5, day + 1, ("p0", 5)), (1, 7, day + 2, ("p1", 7)),
               (0, 6, day + DAY_NS, ("p0", 6)), (1, 8, day + DAY_NS + 5, ("p1", 8))]
    assert insert_runs(entries) == [[("p0", 3), ("p0", 5), ("p1", 7)], [("p0", 6), ("p1", 8)]]


def test_insert_runs_when_a_partition_goes_back_a_day() -> None:
    """Two symbols of one partition straddle midnight out of order: still a prefix after each insert."""
    day = 20_000 * DAY_NS
    entries = [(0, 1, day + DAY_NS, ("a", 1)), (0, 2, day, ("b", 2)), (0, 3, day + DAY_NS, ("a", 3))]
    assert insert_runs(entries) == [[("a", 1)], [("b", 2)], [("a", 3)]]
