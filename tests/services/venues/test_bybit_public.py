"""The Bybit public-feed parser on the reference's Bybit fixtures, byte for byte, and on synthetic chains."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from schemas.events import BookDeltaReceived, BookSnapshotReceived, TickerUpdated, TradeReceived
from schemas.topics import MD_BOOK, MD_TICKERS, MD_TRADES
from services.venues.bybit.public import BybitNormalizer
from services.venues.frames import MalformedFrame

DATA = Path(__file__).resolve().parents[2] / "data" / "bybit"
RECV = 1_700_000_000_000_000_000


def fixture(name: str) -> bytes:
    return (DATA / f"{name}.json").read_bytes()


def test_orderbook_snapshot_fixture() -> None:
    result = BybitNormalizer().on_frame(fixture("orderbook_snapshot"), RECV)
    [(topic, key, event)] = result.events
    assert (topic, key) == (MD_BOOK, "BTCUSDT")
    assert isinstance(event, BookSnapshotReceived)
    assert event.update_id == 18521288 and event.seq == 7961638724 and event.depth == 50
    assert event.bids == [(Decimal("16493.50"), Decimal("0.006")), (Decimal("16493.00"), Decimal("0.100"))]
    assert event.asks[0] == (Decimal("16611.00"), Decimal("0.029"))
    assert event.ts_event == 1672304484976 * 1_000_000  # cts, the matching engine's time
    assert event.ts_ingest == event.origin_ts == RECV


def test_orderbook_delta_fixture_after_a_chained_snapshot() -> None:
    """The docs' delta (u=177400507) follows a snapshot at u-1 built from the snapshot fixture."""
    normalizer = BybitNormalizer()
    snap = orjson.loads(fixture("orderbook_snapshot"))
    snap["data"]["u"] = 177400506
    snap["data"]["b"] = [["30247.20", "1"], ["30240.00", "2"]]
    snap["data"]["a"] = [["30248.70", "1"], ["30249.60", "1"], ["30260.00", "1"]]
    normalizer.on_frame(orjson.dumps(snap), RECV)
    result = normalizer.on_frame(fixture("orderbook_delta"), RECV + 1)
    [(_, _, event)] = result.events
    assert isinstance(event, BookDeltaReceived)
    assert event.update_id == 177400507
    assert (Decimal("30240.00"), Decimal("0")) in event.bids
    assert event.best_bid == (Decimal("30247.20"), Decimal("30.028"))
    assert event.best_ask == (Decimal("30249.30"), Decimal("0.892"))
    book = normalizer.books["orderbook.50.BTCUSDT"]
    assert book.best_bid() == ("30247.20", "30.028")
    assert book.best_ask() == ("30249.30", "0.892")


def test_delta_without_snapshot_or_with_gap_resubscribes() -> None:
    normalizer = BybitNormalizer()
    result = normalizer.on_frame(fixture("orderbook_delta"), RECV)
    assert result.events == [] and result.resync == ["orderbook.50.BTCUSDT"]
    normalizer.on_frame(fixture("orderbook_snapshot"), RECV)
    delta = orjson.loads(fixture("orderbook_delta"))
    delta["data"]["u"] = 18521288 + 2  # skips one
    result = normalizer.on_frame(orjson.dumps(delta), RECV)
    assert result.events == [] and result.gaps == 1 and result.resync == ["orderbook.50.BTCUSDT"]


def test_u_equal_one_is_a_snapshot() -> None:
    normalizer = BybitNormalizer()
    normalizer.on_frame(fixture("orderbook_snapshot"), RECV)
    restart = orjson.loads(fixture("orderbook_delta"))
    restart["data"]["u"] = 1
    restart["data"]["b"] = [["100", "1"]]
    restart["data"]["a"] = [["101", "1"]]
    [(_, _, event)] = normalizer.on_frame(orjson.dumps(restart), RECV).events
    assert isinstance(event, BookSnapshotReceived) and event.update_id == 1
    assert normalizer.books["orderbook.50.BTCUSDT"].levels() == ([("100", "1")], [("101", "1")])


def test_crossed_book_is_never_published() -> None:
    normalizer = BybitNormalizer()
    normalizer.on_frame(fixture("orderbook_snapshot"), RECV)
    cross = {"topic": "orderbook.50.BTCUSDT", "type": "delta", "ts": 1, "cts": 1,
             "data": {"s": "BTCUSDT", "b": [["17000.00", "1"]], "a": [], "u": 18521289, "seq": 1}}
    result = normalizer.on_frame(orjson.dumps(cross), RECV)
    assert result.events == [] and result.resync == ["orderbook.50.BTCUSDT"]


def test_public_trade_fixture() -> None:
    [(topic, key, event)] = BybitNormalizer().on_frame(fixture("public_trade"), RECV).events
    assert (topic, key) == (MD_TRADES, "BTCUSDT")
    assert isinstance(event, TradeReceived)
    assert event.trade_id == "20f43950-d8dd-5b31-9112-a178eb6023af"
    assert event.side == "Buy" and event.price == Decimal("16578.50") and event.qty == Decimal("0.001")
    assert event.ts_event == 1672304486865 * 1_000_000


def test_ticker_snapshot_then_delta_merges() -> None:
    normalizer = BybitNormalizer()
    [(topic, _, snap)] = normalizer.on_frame(fixture("ticker_linear_snapshot"), RECV).events
    assert topic == MD_TICKERS and isinstance(snap, TickerUpdated)
    assert snap.mark_price == Decimal("66666.60") and snap.funding_rate == Decimal("-0.005")
    delta = orjson.loads(fixture("ticker_linear_delta"))
    delta["topic"], delta["data"]["symbol"] = "tickers.BTCUSDT", "BTCUSDT"
    [(_, _, merged)] = normalizer.on_frame(orjson.dumps(delta), RECV).events
    assert merged.bid1_price == Decimal("112.89")
    assert merged.mark_price == Decimal("66666.60")  # absent from the delta: unchanged


def test_ticker_delta_fixture_and_spot_snapshot_fixture() -> None:
    [(_, _, delta)] = BybitNormalizer().on_frame(fixture("ticker_linear_delta"), RECV).events
    assert delta.symbol == "AAVEUSDT" and delta.ask1_size == Decimal("5.02") and delta.mark_price is None
    [(_, _, spot)] = BybitNormalizer("spot").on_frame(fixture("ticker_spot_snapshot"), RECV).events
    assert spot.category == "spot" and spot.last_price == Decimal("21109.77")


def test_control_replies_are_returned_not_published() -> None:
    for name in ("subscribe_ack_linear", "pong_linear"):
        result = BybitNormalizer().on_frame(fixture(name), RECV)
        assert result.events == [] and result.control is not None and result.control["success"] is True


@pytest.mark.parametrize("frame", [
    b"", b"{not json", b"[1,2]", b'{"foo": 1}', b'{"topic": 5}', b'{"topic": "kline.1.BTCUSDT", "data": []}',
    b'{"topic": "orderbook.50.BTCUSDT", "type": "delta"}',
    b'{"topic": "publicTrade.BTCUSDT", "data": [{"s": "BTCUSDT", "S": "Up", "p": "1", "v": "1", "i": "x", "T": 1}]}',
    b'{"topic": "publicTrade.BTCUSDT", "data": [{"s": "BTCUSDT", "S": "Buy", "p": "abc", "v": "1", "i": "x", "T": 1}]}',
])
def test_malformed_frames_are_typed_errors(frame: bytes) -> None:
    with pytest.raises(MalformedFrame):
        BybitNormalizer().on_frame(frame, RECV)


def test_ids_are_deterministic_across_runs() -> None:
    a = BybitNormalizer().on_frame(fixture("public_trade"), RECV).events[0][2]
    b = BybitNormalizer().on_frame(fixture("public_trade"), RECV + 99).events[0][2]
    assert a.id == b.id
