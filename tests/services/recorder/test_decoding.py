"""The lean decode: Decimal fields as text where that stores the same rows, the event's decoder
for anything else."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from schemas.events import InstrumentDefined, TradeReceived
from services.recorder.columns import TableBuffer
from services.recorder.core import BY_TABLE, BY_TOPIC, TOPIC_ACCEPTS
from services.recorder.decoding import batch_decoder, lean_struct
from services.recorder.store import ChdbStore
from services.runtime.codec import encode, typed_batch_decoder
from tests.samples import SAMPLES

LEAN_TOPICS = ("md.trades", "md.tickers", "md.bars")


def _variants(event: Any) -> list[Any]:
    """The sample, and copies with other Decimal values in plain notation (str(Decimal) writes an
    exponent below 1E-6 and for zeros past six places: those batches take the event's decoder)."""
    out = [event]
    decimals = [f.name for f in msgspec.structs.fields(event) if isinstance(getattr(event, f.name), Decimal)]
    for value in (Decimal("-0.5"), Decimal("99999999999999999999.000000000000000001"), Decimal("0.000001"),
                  Decimal("7.100")):
        out.append(msgspec.structs.replace(event, **dict.fromkeys(decimals, value)))
    return out


def test_only_plain_single_event_tables_decode_lean() -> None:
    assert {t for t, spec in BY_TOPIC.items() if lean_struct(spec) is not None} == set(LEAN_TOPICS)
    assert hasattr(InstrumentDefined, "__post_init__"), "why instruments are not lean: it validates more"
    assert lean_struct(BY_TABLE["book_levels"]) is None and lean_struct(BY_TABLE["order_events"]) is None


@pytest.mark.parametrize("topic", LEAN_TOPICS)
def test_lean_rows_equal_the_events_rows(topic: str, tmp_path: Path) -> None:
    spec = BY_TOPIC[topic]
    events = _variants(SAMPLES[TOPIC_ACCEPTS[topic]])
    values = [encode(e) for e in events]
    lean = batch_decoder(topic)(values)
    assert lean is not None and type(lean[0]) is lean_struct(spec) is not None
    full = typed_batch_decoder(TOPIC_ACCEPTS[topic])(values)
    assert full == events
    store = ChdbStore(tmp_path / "chdb")
    try:
        tables = []
        for decoded in (lean, full):
            buffer = TableBuffer(spec)
            buffer.add(decoded, list(range(len(decoded))), topic, 0)
            store.insert_columns(spec, buffer.columns)
            tables.append(store.query(f"SELECT * FROM hean.{spec.name} ORDER BY _offset"))
            store.query(f"TRUNCATE TABLE hean.{spec.name}")
        assert tables[0] == tables[1] and len(tables[0]) == len(events)
    finally:
        store.close()


@pytest.mark.parametrize("price", ["1e5", "1E-7", "0E-8", " 1", "+1", "1_0", "1.", "1" * 21, "0." + "1" * 19, 5,
                                   1.5])
def test_what_the_text_check_refuses_goes_to_the_events_decoder(price: Any) -> None:
    trade = SAMPLES[TradeReceived]
    raw = msgspec.to_builtins(trade)
    odd = msgspec.msgpack.encode({**raw, "price": price})
    decoded = batch_decoder("md.trades")([encode(trade), odd])
    expected = typed_batch_decoder(TradeReceived)([encode(trade), odd])
    assert repr(decoded) == repr(expected)
    assert decoded is None or isinstance(decoded[1].price, Decimal)


@pytest.mark.parametrize("price", ["NaN", "nan", "-Infinity", "inf", "sNaN", float("nan"), float("inf")])
def test_a_batch_with_a_number_that_is_not_finite_is_decoded_one_by_one(price: Any) -> None:
    """The event's decoder takes it (a Decimal NaN), no table column does: the batch is refused,
    so the shell decodes record by record and dead-letters that one (test_non_finite)."""
    trade = SAMPLES[TradeReceived]
    odd = msgspec.msgpack.encode({**msgspec.to_builtins(trade), "price": price})
    assert typed_batch_decoder(TradeReceived)([encode(trade), odd]) is not None
    assert batch_decoder("md.trades")([encode(trade), odd]) is None
    assert batch_decoder("orders.events")([]) == []


def test_a_bad_record_still_fails_the_batch() -> None:
    trade = SAMPLES[TradeReceived]
    assert batch_decoder("md.trades")([encode(trade), b"\x93garbage"]) is None
    wrong_version = msgspec.msgpack.encode({**msgspec.to_builtins(trade), "version": 9})
    assert batch_decoder("md.trades")([wrong_version]) is None


def test_mixed_texts_and_decimals_in_one_column_store_exactly(tmp_path: Path) -> None:
    """A column filled by a lean batch and then by the event's decoder (a batch with a bad record)."""
    spec = BY_TABLE["trades"]
    trade = SAMPLES[TradeReceived]
    buffer = TableBuffer(spec)
    buffer.add(batch_decoder("md.trades")([encode(trade)]), [0], "md.trades", 0)
    buffer.add([msgspec.structs.replace(trade, price=Decimal("1E+5"))], [1], "md.trades", 0)
    store = ChdbStore(tmp_path / "chdb")
    try:
        store.insert_columns(spec, buffer.columns)
        assert store.query("SELECT price FROM hean.trades ORDER BY _offset") == [["16578.5"], ["100000"]]
    finally:
        store.close()
