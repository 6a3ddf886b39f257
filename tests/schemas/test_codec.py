"""The msgpack codec: round trips, forward compatibility, and typed errors on bad bytes."""

from __future__ import annotations

from decimal import Decimal

import msgpack
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.events import EVENT_TYPES, SCHEMA_MAJOR, SubmitOrder, TradeReceived, derive_id, event_tag
from services.runtime.codec import decode, decode_as, encode
from services.runtime.errors import DecodeError, NotAccepted, UnsupportedVersion
from tests.samples import SAMPLES


def test_every_event_type_has_a_sample() -> None:
    assert set(SAMPLES) == set(EVENT_TYPES)


@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=lambda t: event_tag(t))
def test_round_trip_every_event_type(event_type: type) -> None:
    event = SAMPLES[event_type]
    decoded = decode(encode(event))
    assert decoded == event
    assert type(decoded) is event_type


def test_money_survives_exactly() -> None:
    """Decimal travels as its exact string: no float rounding, trailing zeros kept."""
    raw = msgpack.unpackb(encode(SAMPLES[TradeReceived]))
    assert raw["price"] == "16578.50"
    assert decode(encode(SAMPLES[TradeReceived])).price == Decimal("16578.50")


money = st.decimals(allow_nan=False, allow_infinity=False, places=8, min_value=Decimal("-1e12"),
                    max_value=Decimal("1e12"))
text = st.text(min_size=1, max_size=40)
ns = st.integers(min_value=0, max_value=2**63 - 1)


@given(id_=text, symbol=text, trade_id=text, side=st.sampled_from(["Buy", "Sell"]), price=money, qty=money,
       ts=ns, ts2=ns, origin=ns)
def test_trade_round_trip_property(id_: str, symbol: str, trade_id: str, side: str, price: Decimal,
                                   qty: Decimal, ts: int, ts2: int, origin: int) -> None:
    trade = TradeReceived(id=id_, ts_event=ts, ts_ingest=ts2, origin_ts=origin, symbol=symbol,
                          trade_id=trade_id, side=side, price=price, qty=qty)  # type: ignore[arg-type]
    assert decode(encode(trade)) == trade


@given(qty=money, price=st.none() | money, tif=st.sampled_from(["GTC", "IOC", "FOK", "PostOnly"]),
       reduce_only=st.booleans(), ts=ns)
def test_submit_order_round_trip_property(qty: Decimal, price: Decimal | None, tif: str, reduce_only: bool,
                                          ts: int) -> None:
    order = SubmitOrder(id=derive_id("i", ts), ts_event=ts, ts_ingest=ts, account="a", strategy="s",
                        symbol="ETHUSDT", side="Sell", order_type="Limit", qty=qty, price=price,
                        time_in_force=tif, reduce_only=reduce_only)  # type: ignore[arg-type]
    assert decode_as(encode(order), SubmitOrder) == order


def test_unknown_fields_are_ignored() -> None:
    """A newer producer's extra fields do not break an older reader."""
    raw = msgpack.unpackb(encode(SAMPLES[TradeReceived]))
    raw["new_field"] = {"nested": [1, 2, 3]}
    raw["another"] = "x"
    assert decode(msgpack.packb(raw)) == SAMPLES[TradeReceived]


def test_unknown_major_version_is_a_typed_error() -> None:
    raw = msgpack.unpackb(encode(SAMPLES[TradeReceived]))
    raw["version"] = SCHEMA_MAJOR + 1
    with pytest.raises(UnsupportedVersion) as info:
        decode(msgpack.packb(raw))
    assert info.value.reason == "unsupported_version"
    assert "md.trade" in str(info.value)


@pytest.mark.parametrize("data", [b"", b"\xc1", b"garbage bytes \x00\xff", b"\x92\x01", b"\xa5hello"])
def test_garbage_is_a_typed_error(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode(data)


@pytest.mark.parametrize("event_type", EVENT_TYPES, ids=lambda t: event_tag(t))
def test_every_truncation_is_a_typed_error(event_type: type) -> None:
    data = encode(SAMPLES[event_type])
    for cut in range(len(data)):
        with pytest.raises(DecodeError):
            decode(data[:cut])


def test_unknown_type_and_wrong_field_type_are_invalid() -> None:
    raw = msgpack.unpackb(encode(SAMPLES[TradeReceived]))
    with pytest.raises(DecodeError) as info:
        decode(msgpack.packb({**raw, "type": "md.nope"}))
    assert info.value.reason == "invalid"
    with pytest.raises(DecodeError) as info:
        decode(msgpack.packb({**raw, "price": [1, 2]}))
    assert info.value.reason == "invalid"
    assert "price" in str(info.value)
    with pytest.raises(DecodeError):
        decode(msgpack.packb({**raw, "qty": "1.2.3"}))
    with pytest.raises(DecodeError):
        decode(msgpack.packb({k: v for k, v in raw.items() if k != "symbol"}))


def test_a_foreign_float_becomes_its_shortest_decimal() -> None:
    """HEAN writes money as strings; a foreign producer's float is read through its shortest repr
    (0.1 → Decimal("0.1")), never through its binary expansion."""
    raw = msgpack.unpackb(encode(SAMPLES[TradeReceived]))
    assert decode(msgpack.packb({**raw, "price": 0.1})).price == Decimal("0.1")


def test_decode_as_tells_another_valid_type_from_a_broken_event() -> None:
    """A shared topic carries several types; a reader skips the ones it does not take (NotAccepted)
    and dead-letters only what is broken (invalid)."""
    with pytest.raises(NotAccepted) as info:
        decode_as(encode(SAMPLES[SubmitOrder]), TradeReceived)
    assert info.value.event_type == event_tag(SubmitOrder)
    raw = msgpack.unpackb(encode(SAMPLES[SubmitOrder]))
    with pytest.raises(DecodeError) as broken:
        decode_as(msgpack.packb({**raw, "qty": [1]}), TradeReceived)
    assert not isinstance(broken.value, NotAccepted) and broken.value.reason == "invalid"
    with pytest.raises(UnsupportedVersion):
        decode_as(msgpack.packb({**raw, "version": SCHEMA_MAJOR + 1}), TradeReceived)


def test_derive_id_is_deterministic_and_distinct() -> None:
    assert derive_id("a", 1) == derive_id("a", 1)
    assert derive_id("a", 1) != derive_id("a", 2)
    assert derive_id("a1", "") != derive_id("a", "1")
    assert len(derive_id("x")) == 32


def test_events_are_frozen() -> None:
    with pytest.raises(AttributeError):
        SAMPLES[TradeReceived].price = Decimal(1)  # type: ignore[misc]
    assert msgspec.structs.fields(TradeReceived)[0].name == "id"


@pytest.mark.parametrize("kind", ["OrderFilled", "OrderPartiallyFilled"])
@pytest.mark.parametrize("field,value", [("fill_qty", "0"), ("fill_qty", "-0.5"), ("fill_price", "0"),
                                         ("fill_qty", "NaN"), ("fill_price", "Infinity")])
def test_a_fill_that_cannot_move_a_position_is_invalid_at_decoding(kind: str, field: str, value: str) -> None:
    """Refused where it enters (a dead letter), so accounting never meets it: folding it would be
    an InvariantViolation, and a poison record would stop accounting at every restart."""
    sample = next(s for t, s in SAMPLES.items() if t.__name__ == kind)
    raw = msgspec.msgpack.encode({**msgspec.to_builtins(sample), field: value})
    with pytest.raises(DecodeError) as info:
        decode(raw)
    assert info.value.reason == "invalid" and "positive fill_qty and fill_price" in str(info.value)
