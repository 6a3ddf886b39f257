"""The batch decoder: the same events as decoding each record, and None (decode one by one) for
any batch holding a record that is not a whole valid event of the type."""

from __future__ import annotations

import msgspec

from schemas.events import TradeReceived
from services.runtime.codec import encode, typed_batch_decoder, typed_decoder
from services.tally.feed import synthetic_trades


def test_a_valid_batch_decodes_to_the_same_events_as_one_by_one() -> None:
    values = [encode(t) for t in synthetic_trades(50, seed=1)]
    one_by_one = [typed_decoder(TradeReceived)(v) for v in values]
    assert typed_batch_decoder(TradeReceived)(values) == one_by_one
    assert typed_batch_decoder(TradeReceived)([]) == []


def test_a_record_split_across_two_records_is_not_taken() -> None:
    """Half an event in one record and the rest in the next join into a valid array: refused."""
    a, b, c = (encode(t) for t in synthetic_trades(3, seed=2))
    assert typed_batch_decoder(TradeReceived)([a, b[:10], b[10:] + c]) is None


def test_garbage_a_null_value_another_type_or_version_make_the_batch_fall_back() -> None:
    good = encode(next(synthetic_trades(1, seed=3)))
    other = msgspec.msgpack.encode({"type": "md.ticker", "id": "x"})
    newer = msgspec.msgpack.encode({**msgspec.msgpack.decode(good), "version": 2})
    decode = typed_batch_decoder(TradeReceived)
    for bad in (b"\xc1", b"", None, other, newer, good[:-1]):
        assert decode([good, bad, good]) is None, bad  # type: ignore[list-item]
