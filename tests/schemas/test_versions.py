"""Schema 1.1 is additive: events written before it decode, and 1.0 readers read 1.1 events."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from schemas import events as ev
from services.runtime.codec import decode, encode
from tests.samples import SAMPLES

GAINED_VENUE = (ev.SubmitOrder, ev.CancelOrder, ev.AmendOrder, ev.CancelAllOrders, ev.OrderAcknowledged,
                ev.OrderRejected, ev.OrderPartiallyFilled, ev.OrderFilled, ev.OrderCancelled, ev.OrderAmended,
                ev.OrderAmendRejected, ev.PositionUpdated)


@pytest.mark.parametrize("event_type", GAINED_VENUE, ids=lambda t: t.__name__)
def test_an_event_written_before_the_venue_field_decodes_with_bybit(event_type: type[ev.Event]) -> None:
    written = msgspec.to_builtins(SAMPLES[event_type])
    del written["venue"]  # exactly what a 1.0 writer put on the wire
    event = decode(msgspec.msgpack.encode(written))
    assert type(event) is event_type and event.venue == "bybit"  # type: ignore[attr-defined]
    assert msgspec.structs.replace(event, venue="bybit") == SAMPLES[event_type]


def test_a_decision_written_before_it_decodes_with_the_intents_venue() -> None:
    written = msgspec.to_builtins(ev.IntentApproved(id="d", ts_event=1, ts_ingest=1, intent=SAMPLES[ev.SubmitOrder]))
    del written["intent"]["venue"]
    assert decode(msgspec.msgpack.encode(written)).intent.venue == "bybit"  # type: ignore[attr-defined]


class SubmitOrder10(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag="order.submit"):
    """SubmitOrder as schema 1.0 defined it (no venue): a reader that has not been upgraded."""

    id: str
    version: int
    ts_event: int
    ts_ingest: int
    origin_ts: int = 0
    account: str
    strategy: str
    symbol: str
    side: str
    order_type: str
    qty: Decimal
    price: Decimal | None = None


def test_a_reader_of_schema_1_0_reads_a_1_1_event() -> None:
    event = msgspec.structs.replace(SAMPLES[ev.SubmitOrder], venue="binance")
    old = msgspec.msgpack.decode(encode(event), type=SubmitOrder10)
    assert (old.id, old.symbol, old.qty, old.version) == (event.id, event.symbol, event.qty, ev.SCHEMA_MAJOR)
