"""Recorder logic without I/O: rows match the DDL, inserts keep the per-partition prefix property."""

from __future__ import annotations

import msgspec

from schemas.events import BookSnapshotReceived, CancelOrder, DeadLettered, SubmitOrder
from schemas.topics import TOPICS
from services.recorder.columns import DAY_NS, insert_runs
from services.recorder.core import BY_TABLE, TABLES, TOPIC_TABLES, TableSpec, ddl, ddl_columns
from tests.samples import SAMPLES

POSITION = ("_topic", "_partition", "_offset")


def test_ddl_is_one_statement_per_table_and_every_table_is_mapped() -> None:
    tables = {p[0] for p in map(ddl_columns, ddl("x")) if p is not None}
    assert tables == {t.name for t in TABLES}
    assert all(s.startswith(("CREATE TABLE IF NOT EXISTS x.", "CREATE OR REPLACE VIEW x.")) for s in ddl("x"))


def _events(spec: TableSpec) -> tuple[type, ...]:
    return spec.accepts.__args__ if hasattr(spec.accepts, "__args__") else (spec.accepts,)


def _fields(events: tuple[type, ...]) -> set[str]:
    """Every field of `events`, a nested event's as `<field>_<its field>` and `<field>_type`."""
    names = set()
    for event in events:
        for f in msgspec.structs.fields(event):
            names.add(f.name)
            if f.name == "intent":
                names |= {f"intent_{n}" for n in _fields((SubmitOrder, CancelOrder))} | {"intent_type"}
    return names


def test_columns_mirror_event_fields() -> None:
    """A column is an event field (or a Kafka position, or a derived book field); drift fails here,
    and so does an event field the table forgets."""
    derived = {"book_top": {"kind", "bid_price", "bid_size", "ask_price", "ask_size"},
               "book_levels": {"is_snapshot", "side", "price", "size"}}
    left_out = {"version", "seq", "bids", "asks", "best_bid", "best_ask", "origin_ts", "intent", "intent_version"}
    for spec in TABLES:
        fields = _fields(_events(spec))
        tagged = {"type"} if "type" in spec.column_names else set()
        extra = set(spec.column_names) - fields - set(POSITION) - derived.get(spec.name, set()) - tagged
        assert not extra, f"{spec.name} has columns that are no event field: {extra}"
        if spec.name not in ("trades", "book_top", "book_levels", "tickers"):  # the market tables predate it
            missing = fields - set(spec.column_names) - left_out
            assert not missing, f"{spec.name} lacks columns for the event fields {missing}"


def test_rows_have_one_value_per_column() -> None:
    for spec in TABLES:
        for event_type in _events(spec):
            rows = spec.rows(SAMPLES[event_type])
            assert rows and all(len(r) + len(POSITION) == len(spec.columns) for r in rows), spec.name


def test_book_levels_row_per_level_and_topics_fill_their_tables() -> None:
    snapshot = SAMPLES[BookSnapshotReceived]
    assert [(r[-4], r[-3], r[-2]) for r in BY_TABLE["book_levels"].rows(snapshot)] == [
        ("bid", snapshot.bids[0][0], snapshot.bids[0][1]), ("ask", snapshot.asks[0][0], snapshot.asks[0][1])]
    assert [t.name for t in TOPIC_TABLES["md.book"]] == ["book_top", "book_levels"]
    # Every topic of the registry but the runtime demo's (issue 15: the recorder records every topic).
    assert set(TOPIC_TABLES) == {t.name for t in TOPICS if not t.name.startswith("demo.")}
    assert {"ref.instruments", "md.bars", "algos.reports"} <= set(TOPIC_TABLES)


def test_dead_letter_payload_is_hex_of_the_bytes() -> None:
    letter = SAMPLES[DeadLettered]
    [row] = BY_TABLE["dead_letters"].rows(letter)
    assert bytes.fromhex(row[BY_TABLE["dead_letters"].column_names.index("payload")]) == letter.payload


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


def test_insert_runs_cut_big_inserts_between_records_only() -> None:
    """Three level rows of offset 1 stay in one INSERT even past max_rows."""
    day = 20_000 * DAY_NS
    entries = [(0, 1, day, ("a",)), (0, 1, day, ("b",)), (0, 1, day, ("c",)), (0, 2, day, ("d",)),
               (1, 5, day, ("e",))]
    assert insert_runs(entries, max_rows=2) == [[("a",), ("b",), ("c",)], [("d",), ("e",)]]
