"""Columnar batches: exact Arrow columns for every table, and the order rules over row indexes."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pyarrow as pa

from schemas.events import TradeReceived
from services.recorder.columns import DAY_NS, TableBuffer, arrow_table, arrow_type, select_expression
from services.recorder.core import BY_TABLE, TABLES, TOPIC_ACCEPTS
from tests.samples import SAMPLES


def test_every_table_of_every_sample_becomes_one_typed_arrow_table() -> None:
    for spec in TABLES:
        events = [e for t, e in SAMPLES.items() if isinstance(e, TOPIC_ACCEPTS[spec.topic])]
        buffer = TableBuffer(spec)
        rows = buffer.add(events, list(range(len(events))), spec.topic, 2)
        table = arrow_table(spec, buffer.columns)
        assert table.num_rows == rows == len(buffer) and table.column_names == spec.column_names
        for name, ch_type in spec.columns:
            assert table.schema.field(name).type == arrow_type(ch_type), (spec.name, name)


def test_decimals_travel_exactly_and_fall_back_to_strings_beyond_the_scale() -> None:
    spec = BY_TABLE["trades"]
    trade = SAMPLES[TradeReceived]
    buffer = TableBuffer(spec)
    buffer.add([trade], [7], "md.trades", 0)
    table = arrow_table(spec, buffer.columns)
    assert table.column("price").to_pylist() == [Decimal("16578.50")]
    buffer.columns["price"][0] = Decimal("1." + "1" * 25)  # more digits than Decimal(38, 18) keeps
    table = arrow_table(spec, buffer.columns)
    assert table.column("price").type == pa.string()
    assert select_expression("price", "Decimal(38, 18)", pa.string()) == "CAST(price AS Decimal(38, 18))"


def test_one_day_is_one_insert_as_buffered_and_two_days_split_in_partition_order() -> None:
    spec = BY_TABLE["trades"]
    trade = SAMPLES[TradeReceived]
    buffer = TableBuffer(spec)
    buffer.add([trade, trade], [1, 2], "md.trades", 0)
    buffer.add([trade], [5], "md.trades", 1)
    [only] = buffer.inserts(max_rows=10)
    assert only["_offset"] == [1, 2, 5]
    later = msgspec.structs.replace(trade, ts_event=trade.ts_event + DAY_NS)
    buffer.add([later], [3], "md.trades", 0)
    assert [c["_offset"] for c in buffer.inserts(max_rows=10)] == [[1, 2, 5], [3]]
    assert [c["_offset"] for c in buffer.inserts(max_rows=10, partitions={1})] == [[5]]
    buffer.drop({1})
    assert buffer.columns["_offset"] == [1, 2, 3] and buffer.columns["_partition"] == [0, 0, 0]
