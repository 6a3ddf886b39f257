"""Binance's local-book rules, case by case (pure: services/venues/binance/depth.py, streams.py)."""

from __future__ import annotations

import orjson
import pytest

from schemas.events import BookDeltaReceived, BookSnapshotReceived, TradeReceived
from services.venues.binance.depth import DepthSync, DepthUpdate, Snapshot
from services.venues.binance.streams import BinanceNormalizer, routed_stream_urls, stream_names
from services.venues.frames import MalformedFrame


def update(first: int, final: int, prev: int, bids: list[list[str]] | None = None,
           asks: list[list[str]] | None = None) -> DepthUpdate:
    return DepthUpdate("BTCUSDT", first, final, prev, 1, 1, bids or [], asks or [])


SNAPSHOT = Snapshot(100, 1, [["10.0", "1"], ["9.0", "2"]], [["11.0", "1"], ["12.0", "3"]])


def test_buffered_updates_older_than_the_snapshot_are_dropped_and_the_straddling_one_applies() -> None:
    sync = DepthSync("BTCUSDT", 1000)
    assert sync.on_update(update(90, 95, 89)).need_snapshot
    assert not sync.on_update(update(96, 104, 95, bids=[["10.0", "0"]])).need_snapshot, "asked once"
    sync.on_update(update(105, 110, 104, asks=[["11.0", "5"]]))
    step = sync.on_snapshot(SNAPSHOT)
    assert step.snapshot is SNAPSHOT and [u.final_id for u in step.applied] == [104, 110]
    assert sync.book.best_bid() == ("9.0", "2") and sync.book.best_ask() == ("11.0", "5")
    assert sync.on_update(update(111, 112, 110)).applied, "chained by pu from here on"


def test_a_pu_that_does_not_chain_is_a_gap_and_the_next_snapshot_heals_it() -> None:
    sync = DepthSync("BTCUSDT", 1000)
    sync.on_update(update(95, 101, 94))
    sync.on_snapshot(SNAPSHOT)
    step = sync.on_update(update(110, 120, 109))  # 102..109 never arrived
    assert step.gap and step.need_snapshot and not step.applied and "pu 109" in step.reason
    assert sync.book.stale and not sync.synced
    assert not sync.on_update(update(121, 125, 120)).applied, "nothing is applied to a stale book"
    healed = sync.on_snapshot(Snapshot(122, 2, [["10.0", "1"]], [["11.0", "1"]]))
    assert healed.snapshot is not None and [u.final_id for u in healed.applied] == [125]


def test_after_a_snapshot_with_nothing_buffered_the_first_update_must_straddle_it() -> None:
    sync = DepthSync("BTCUSDT", 1000)
    sync.on_update(update(90, 95, 89))
    assert sync.on_snapshot(SNAPSHOT).applied == []
    assert sync.on_update(update(96, 99, 95)).applied == [], "older than the snapshot: dropped"
    assert sync.on_update(update(98, 103, 97)).applied, "U <= L <= u"
    other = DepthSync("BTCUSDT", 1000)
    other.on_update(update(90, 95, 89))
    other.on_snapshot(SNAPSHOT)
    lost = other.on_update(update(105, 107, 104))
    assert lost.gap and "does not straddle" in lost.reason


def test_a_snapshot_older_than_the_buffer_asks_for_a_newer_one() -> None:
    sync = DepthSync("BTCUSDT", 1000)
    sync.on_update(update(150, 160, 149))
    step = sync.on_snapshot(SNAPSHOT)  # L=100 < U=150 and pu != 100
    assert step.snapshot is None and step.need_snapshot and not sync.synced


def test_an_update_that_crosses_the_book_is_not_published_and_forces_a_resync() -> None:
    sync = DepthSync("BTCUSDT", 1000)
    sync.on_update(update(95, 100, 94))
    sync.on_snapshot(SNAPSHOT)
    step = sync.on_update(update(101, 102, 100, bids=[["11.5", "1"]]))
    assert step.gap and step.need_snapshot and not step.applied and step.reason == "crossed"


def test_normalizer_builds_venue_tagged_events_and_names_what_is_malformed() -> None:
    normalizer = BinanceNormalizer(("BTCUSDT",), 1000)
    trade = {"stream": "btcusdt@aggTrade", "data": {"e": "aggTrade", "E": 5, "s": "BTCUSDT", "a": 7, "p": "10.5",
                                                      "q": "0.2", "f": 1, "l": 2, "T": 4, "m": True}}
    [(_, key, event)] = normalizer.on_frame(orjson.dumps(trade), 9).events
    assert isinstance(event, TradeReceived) and event.venue == "binance" and event.side == "Sell" and key == "BTCUSDT"
    depth = {"e": "depthUpdate", "E": 5, "T": 4, "s": "BTCUSDT", "U": 95, "u": 101, "pu": 94, "b": [], "a": []}
    assert normalizer.on_frame(orjson.dumps(depth), 9).resync == ["BTCUSDT"]
    out = normalizer.on_snapshot("BTCUSDT", {"lastUpdateId": 100, "T": 3, "bids": [["10.0", "1"]],
                                             "asks": [["11.0", "1"]]}, 9)
    kinds = [type(e).__name__ for _, _, e in out.events]
    assert kinds == ["BookSnapshotReceived", "BookDeltaReceived"]
    assert isinstance(out.events[0][2], BookSnapshotReceived) and isinstance(out.events[1][2], BookDeltaReceived)
    assert normalizer.on_frame(b'{"result": null, "id": 1}', 9).control == {"result": None, "id": 1}
    for bad, words in [(b"nope", "not JSON"), (b"[]", "JSON object"), (b'{"x": 1}', "no event type"),
                       (b'{"e": "kline"}', "unsupported"),
                       (orjson.dumps({**trade["data"], "p": "-1"}), "positive"),
                       (orjson.dumps({**depth, "b": [["NaN", "1"]]}), "bad level"),
                       (orjson.dumps({**depth, "s": "DOGEUSDT"}), "not a subscribed symbol")]:
        with pytest.raises(MalformedFrame, match=words):
            normalizer.on_frame(bad, 9)
    with pytest.raises(MalformedFrame, match="depth snapshot"):
        normalizer.on_snapshot("BTCUSDT", {"lastUpdateId": "x"}, 9)


def test_stream_names_follow_binance() -> None:
    assert stream_names(("BTCUSDT",), "100ms") == ["btcusdt@depth@100ms", "btcusdt@aggTrade", "btcusdt@bookTicker"]
    assert stream_names(("BTCUSDT",), "250ms", trades=False, tickers=False) == ["btcusdt@depth"]
    with pytest.raises(ValueError, match="depth speed"):
        stream_names(("BTCUSDT",), "1s")


def test_each_stream_is_read_on_the_endpoint_that_routes_it() -> None:
    """Binance's /public carries the books, /market the aggregate trades (its unrouted /stream
    acknowledges aggTrade and never sends it); INGEST_URL may be the host or the old …/stream."""
    names = stream_names(("BTCUSDT", "ETHUSDT"), "100ms")
    routed = ["wss://fstream.binance.com/public/stream?streams=btcusdt@depth@100ms/ethusdt@depth@100ms/"
              "btcusdt@bookTicker/ethusdt@bookTicker",
              "wss://fstream.binance.com/market/stream?streams=btcusdt@aggTrade/ethusdt@aggTrade"]
    assert routed_stream_urls("wss://fstream.binance.com", names) == routed
    assert routed_stream_urls("wss://fstream.binance.com/stream/", names) == routed
    assert routed_stream_urls("ws://127.0.0.1:8801", stream_names(("BTCUSDT",), "250ms", trades=False)) == \
        ["ws://127.0.0.1:8801/public/stream?streams=btcusdt@depth/btcusdt@bookTicker"]
