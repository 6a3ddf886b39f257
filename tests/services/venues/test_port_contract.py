"""The venue port's contract (services/venues/port.py), one suite run against every adapter.

Public feed (bybit, binance): the venue's recorded frames (tests/data/<venue>/) become the same md.*
events tagged with the adapter's venue; a malformed frame raises MalformedFrame naming the problem;
a gap or a crossing update publishes nothing and names the book to resync, which the venue's own
book-sync rule (`book_sync`) then heals; and a long seeded run of updates, gaps and crossings never
gives a consumer folding md.book a crossed book. Order requests, REST gateway and private stream:
bybit (the only venue HEAN trades on). Pure: no sockets.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest

from schemas.events import (
    AmendOrder,
    BookDeltaReceived,
    BookSnapshotReceived,
    Event,
    OrderFilled,
    SubmitOrder,
    TickerUpdated,
    TradeReceived,
)
from schemas.topics import MD_BOOK, MD_TICKERS, MD_TRADES
from services.domain.ids import link_id_for
from services.domain.instrument import InstrumentId
from services.runtime.settings import Secret
from services.venues import port
from services.venues.binance.streams import BinanceNormalizer
from services.venues.book import L2Book
from services.venues.bybit import private as bybit_private
from services.venues.bybit.public import BybitNormalizer
from services.venues.bybit.rest import BybitRest
from services.venues.frames import FeedResult, MalformedFrame

DATA = Path(__file__).resolve().parents[2] / "data"
RECV = 1_700_000_000_000_000_000
SYMBOL = "BTCUSDT"
Levels = list[list[str]]


def recorded(name: str) -> bytes:
    return (DATA / name).read_bytes()


def template(name: str) -> dict[str, Any]:
    return orjson.loads(recorded(name))


class Bybit:
    """Bybit V5's frames (bybit-v5.md §1.5-1.7 fixtures); books resync by resubscribing, and the
    venue answers a subscribe with a snapshot frame."""

    venue = "bybit"
    trade, ticker = "bybit/public_trade.json", "bybit/ticker_linear_snapshot.json"
    controls = ("bybit/subscribe_ack_linear.json", "bybit/pong_linear.json")
    bad_fields = [({"topic": "publicTrade.BTCUSDT", "data": [{"S": "Up"}]}, "S must be Buy or Sell"),
                  ({"topic": "orderbook.50.BTCUSDT", "type": "delta", "ts": 1, "data": {"s": "ETHUSDT", "u": 2}},
                   "does not match the topic's symbol"),
                  ({"topic": "kline.1.BTCUSDT", "data": []}, "unsupported topic"),
                  ({"success": None, "x": 1, "topic": 7}, "topic must be a string")]

    def feed(self) -> BybitNormalizer:
        return BybitNormalizer()

    def book(self, feed: Any) -> L2Book:
        return feed.books[f"orderbook.50.{SYMBOL}"]

    def start(self, feed: Any, update_id: int, bids: Levels, asks: Levels) -> list[FeedResult]:
        """A book from nothing: the snapshot Bybit sends on subscribe."""
        frame = template("bybit/orderbook_snapshot.json")
        frame["data"].update(u=update_id, b=bids, a=asks)
        return [feed.on_frame(orjson.dumps(frame), RECV)]

    def update(self, feed: Any, update_id: int, bids: Levels, asks: Levels) -> FeedResult:
        """The update the venue numbers `update_id` (Bybit: u, each one the last + 1)."""
        frame = template("bybit/orderbook_delta.json")
        frame["data"].update(s=SYMBOL, u=update_id, b=bids, a=asks)
        frame["topic"] = f"orderbook.50.{SYMBOL}"
        return feed.on_frame(orjson.dumps(frame), RECV)

    def heal(self, feed: Any, resync: str, update_id: int, bids: Levels, asks: Levels) -> list[FeedResult]:
        """The shell resubscribed `resync` (a topic); the venue's answer is a snapshot frame."""
        assert resync == f"orderbook.50.{SYMBOL}"
        return self.start(feed, update_id, bids, asks)


class Binance:
    """Binance USDⓈ-M futures' frames (developers.binance.com response examples); books start
    from a REST depth snapshot, fetched for every symbol the feed names in `resync`."""

    venue = "binance"
    trade, ticker = "binance/combined_agg_trade.json", "binance/book_ticker.json"
    controls = ("binance/subscribe_reply.json",)
    bad_fields = [({**template("binance/agg_trade.json"), "p": "-1"}, "positive"),
                  ({**template("binance/depth_update.json"), "b": [["NaN", "1"]]}, "bad level"),
                  ({**template("binance/depth_update.json"), "s": "DOGEUSDT"}, "not a subscribed symbol"),
                  ({"e": "kline"}, "unsupported event type"),
                  ({"stream": "x", "data": [1]}, "data of a combined stream must be an object")]

    def feed(self) -> BinanceNormalizer:
        return BinanceNormalizer((SYMBOL,), 1000)

    def book(self, feed: Any) -> L2Book:
        return feed.books[SYMBOL].book

    def start(self, feed: Any, update_id: int, bids: Levels, asks: Levels) -> list[FeedResult]:
        """A book from nothing: the first update asks for a snapshot, which is then applied (the
        update, older than the snapshot, is dropped)."""
        first = self.update(feed, update_id - 1, [], [])
        assert first.resync == [SYMBOL] and not first.events, "no book is published before its snapshot"
        return [first, self._snapshot(feed, update_id, bids, asks)]

    def update(self, feed: Any, update_id: int, bids: Levels, asks: Levels) -> FeedResult:
        """The update the venue numbers `update_id` (Binance: U..u, chained by pu to the last u)."""
        frame = template("binance/depth_update.json")
        frame.update(s=SYMBOL, U=update_id, u=update_id, pu=update_id - 1, b=bids, a=asks)
        return feed.on_frame(orjson.dumps(frame), RECV)

    def heal(self, feed: Any, resync: str, update_id: int, bids: Levels, asks: Levels) -> list[FeedResult]:
        """The shell fetched GET /fapi/v1/depth for `resync` (a symbol) and hands the answer over."""
        assert resync == SYMBOL
        return [self._snapshot(feed, update_id, bids, asks)]

    def _snapshot(self, feed: Any, update_id: int, bids: Levels, asks: Levels) -> FeedResult:
        payload = {**template("binance/depth_snapshot.json"), "lastUpdateId": update_id, "bids": bids, "asks": asks}
        return feed.on_snapshot(SYMBOL, payload, RECV)


ADAPTERS = [Bybit(), Binance()]
BOOK_BIDS, BOOK_ASKS = [["100.0", "1"], ["99.5", "2"]], [["100.5", "1"], ["101.0", "3"]]


@pytest.fixture(params=ADAPTERS, ids=lambda adapter: adapter.venue)
def adapter(request: pytest.FixtureRequest) -> Any:
    return request.param


def events(results: list[FeedResult]) -> list[tuple[str, str, Event]]:
    return [triple for result in results for triple in result.events]


def assert_tagged(adapter: Any, triples: list[tuple[str, str, Event]]) -> None:
    """Every event names the adapter's venue, so InstrumentId(venue, symbol) tells venues apart."""
    assert triples
    for _topic, key, event in triples:
        assert event.venue == adapter.venue and key == event.symbol
        assert InstrumentId(event.venue, event.symbol) == InstrumentId(adapter.venue, key)


def test_the_adapter_implements_the_public_feed_part(adapter: Any) -> None:
    feed = adapter.feed()
    assert isinstance(feed, port.PublicFeed) and feed.venue == adapter.venue
    assert feed.book_sync in ("resubscribe", "rest_snapshot")
    assert isinstance(feed, port.SnapshotFeed) == (feed.book_sync == "rest_snapshot")


def test_recorded_trades_and_tickers_become_the_same_md_events(adapter: Any) -> None:
    feed = adapter.feed()
    trades = feed.on_frame(recorded(adapter.trade), RECV).events
    assert [(topic, type(event)) for topic, _, event in trades] == [(MD_TRADES, TradeReceived)]
    [(_, _, trade)] = trades
    assert trade.side in ("Buy", "Sell") and trade.price > 0 and trade.qty > 0 and trade.trade_id
    assert trade.ts_event > 0 and trade.ts_ingest == RECV
    again = adapter.feed().on_frame(recorded(adapter.trade), RECV + 5).events
    assert again[0][2].id == trade.id, "the same frame gives the same event id (a redelivery is a duplicate)"
    tickers = feed.on_frame(recorded(adapter.ticker), RECV).events
    assert [(topic, type(event)) for topic, _, event in tickers] == [(MD_TICKERS, TickerUpdated)]
    [(_, _, ticker)] = tickers
    assert ticker.bid1_price is not None and ticker.ask1_price is not None and ticker.bid1_price < ticker.ask1_price
    assert_tagged(adapter, trades + tickers)
    for control in adapter.controls:
        reply = feed.on_frame(recorded(control), RECV)
        assert reply.control is not None and not reply.events and not reply.resync


def test_the_two_venues_trade_ids_never_collide() -> None:
    """Events of both venues share md.trades: the same venue trade id must not give the same id."""
    bybit, binance = (adapter.feed().on_frame(recorded(adapter.trade), RECV).events[0][2] for adapter in ADAPTERS)
    assert bybit.venue != binance.venue and bybit.id != binance.id


def test_a_book_starts_from_a_snapshot_and_follows_its_updates(adapter: Any) -> None:
    feed = adapter.feed()
    [(topic, _, snapshot)] = events(adapter.start(feed, 500, BOOK_BIDS, BOOK_ASKS))
    assert topic == MD_BOOK and isinstance(snapshot, BookSnapshotReceived) and snapshot.update_id == 500
    assert snapshot.bids == [(Decimal("100.0"), Decimal("1")), (Decimal("99.5"), Decimal("2"))]
    assert snapshot.best_bid == (Decimal("100.0"), Decimal("1"))
    assert snapshot.best_ask == (Decimal("100.5"), Decimal("1"))
    [(_, _, delta)] = adapter.update(feed, 501, [["100.0", "0"], ["100.2", "4"]], []).events
    assert isinstance(delta, BookDeltaReceived) and delta.update_id == 501
    assert delta.best_bid == (Decimal("100.2"), Decimal("4")) and delta.best_ask == (Decimal("100.5"), Decimal("1"))
    assert_tagged(adapter, [("", snapshot.symbol, snapshot), ("", delta.symbol, delta)])


def test_a_gap_publishes_nothing_until_the_book_is_resynced(adapter: Any) -> None:
    feed = adapter.feed()
    adapter.start(feed, 500, BOOK_BIDS, BOOK_ASKS)
    gap = adapter.update(feed, 503, [["100.1", "1"]], [])  # 501 and 502 never arrived
    assert gap.events == [] and gap.gaps == 1 and len(gap.resync) == 1 and gap.reasons
    assert adapter.book(feed).stale
    assert adapter.update(feed, 504, [["100.1", "2"]], []).events == [], "nothing from a stale book"
    healed = events(adapter.heal(feed, gap.resync[0], 510, [["100.0", "5"]], [["100.4", "1"]]))
    assert [type(event) for _, _, event in healed] == [BookSnapshotReceived]
    assert healed[0][2].update_id == 510 and not adapter.book(feed).stale
    [(_, _, after)] = adapter.update(feed, 511, [], [["100.4", "0"]]).events
    assert after.update_id == 511 and after.best_ask is None and after.best_bid == (Decimal("100.0"), Decimal("5"))


def test_an_update_that_crosses_the_book_is_not_published_and_resyncs(adapter: Any) -> None:
    feed = adapter.feed()
    adapter.start(feed, 500, BOOK_BIDS, BOOK_ASKS)
    crossed = adapter.update(feed, 501, [["100.7", "1"]], [])  # a bid above the best ask
    assert crossed.events == [] and crossed.gaps == 1 and len(crossed.resync) == 1
    assert any("crossed" in reason for reason in crossed.reasons)
    assert adapter.book(feed).stale


@pytest.mark.parametrize("raw, words", [(b"nope", "not JSON"), (b"[1, 2]", "expected a JSON object, got list"),
                                        (b"7", "expected a JSON object, got int")])
def test_frames_that_are_not_a_json_object_are_refused_alike(adapter: Any, raw: bytes, words: str) -> None:
    with pytest.raises(MalformedFrame, match=words) as refused:
        adapter.feed().on_frame(raw, RECV)
    assert refused.value.reason == "malformed_frame"


def test_malformed_frames_name_the_problem(adapter: Any) -> None:
    feed = adapter.feed()
    for frame, words in adapter.bad_fields:
        with pytest.raises(MalformedFrame, match=words) as refused:
            feed.on_frame(orjson.dumps(frame), RECV)
        assert refused.value.reason == "malformed_frame"
    assert feed.on_frame(recorded(adapter.trade), RECV).events, "a malformed frame leaves the feed usable"


class ConsumerBook:
    """What any md.book consumer does: a snapshot replaces the book, a delta applies its levels."""

    def __init__(self) -> None:
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}

    def apply(self, event: Event) -> None:
        if isinstance(event, BookSnapshotReceived):
            self.bids, self.asks = dict(event.bids), dict(event.asks)
        elif isinstance(event, BookDeltaReceived):
            for side, levels in ((self.bids, event.bids), (self.asks, event.asks)):
                for price, size in levels:
                    if size == 0:
                        side.pop(price, None)
                    else:
                        side[price] = size

    def top(self) -> tuple[Decimal | None, Decimal | None]:
        return max(self.bids, default=None), min(self.asks, default=None)


def market(seed: int, steps: int) -> Iterator[tuple[str, Levels, Levels]]:
    """A seeded stream of book changes: mostly updates near the top, some lost updates (gaps)
    and some that would cross the book (a venue glitch, or a local book gone wrong)."""
    rng = random.Random(seed)
    for _ in range(steps):
        roll = rng.random()
        kind = "gap" if roll < 0.06 else "cross" if roll < 0.1 else "update"
        sizes = ["0", "1", "2.5"]
        bids = [[f"{rng.randint(950, 1004) / 10:.1f}", rng.choice(sizes)] for _ in range(rng.randint(0, 3))]
        asks = [[f"{rng.randint(1006, 1060) / 10:.1f}", rng.choice(sizes)] for _ in range(rng.randint(0, 3))]
        if kind == "cross":
            bids = [["101.5", "1"]]
        yield kind, bids, asks


def test_a_consumer_folding_md_book_never_sees_a_crossed_book(adapter: Any) -> None:
    feed = adapter.feed()
    consumer = ConsumerBook()
    update_id = 1000
    published = resynced = 0
    for result in adapter.start(feed, update_id, BOOK_BIDS, BOOK_ASKS):
        for _, _, event in result.events:
            consumer.apply(event)
    for kind, bids, asks in market(seed=14, steps=400):
        update_id += 3 if kind == "gap" else 1
        results = [adapter.update(feed, update_id, bids, asks)]
        if results[0].resync:  # the shell's part: ask for a snapshot, which comes back a little later
            update_id += 2
            resynced += 1
            results += adapter.heal(feed, results[0].resync[0], update_id, BOOK_BIDS, BOOK_ASKS)
        for result in results:
            for _, _, event in result.events:
                consumer.apply(event)
                published += 1
                bid, ask = consumer.top()
                assert bid is None or ask is None or bid < ask, f"crossed after {event.update_id}: {bid} >= {ask}"
                if isinstance(event, BookDeltaReceived) and event.best_bid is not None:
                    assert event.best_bid[0] == bid, "the event's top is the top a consumer folds"
        book = adapter.book(feed)
        if not book.stale:
            bids_now, asks_now = book.levels()
            assert consumer.bids == {Decimal(p): Decimal(s) for p, s in bids_now}
            assert consumer.asks == {Decimal(p): Decimal(s) for p, s in asks_now}
    assert published > 300 and resynced > 20, "the run met both gaps and crossings"


# ---------------------------------------------------------------- order requests, REST, private stream (bybit)

INTENT = SubmitOrder(id="0f" * 16, ts_event=1, ts_ingest=1, account="acc", strategy="s", symbol=SYMBOL, side="Buy",
                     order_type="Limit", qty=Decimal("0.001"), price=Decimal("10000"))


def test_bybit_order_requests_have_the_documented_shape() -> None:
    """bybit-v5.md §3.5: numbers as strings, a market order is IOC and carries no price."""
    assert isinstance(bybit_private, port.OrderRequests)
    assert bybit_private.create_request(INTENT) == {
        "category": "linear", "symbol": SYMBOL, "side": "Buy", "orderType": "Limit", "qty": "0.001",
        "price": "10000", "timeInForce": "GTC", "orderLinkId": link_id_for(INTENT.id)}
    market_order = bybit_private.create_request(msgspec.structs.replace(INTENT, order_type="Market", reduce_only=True))
    assert market_order["timeInForce"] == "IOC" and "price" not in market_order and market_order["reduceOnly"] is True
    amend = AmendOrder(id="1", ts_event=1, ts_ingest=1, account="acc", strategy="s", symbol=SYMBOL,
                       intent_id=INTENT.id, price=Decimal("10001.5"))
    assert bybit_private.amend_request(amend) == {"category": "linear", "symbol": SYMBOL,
                                                  "orderLinkId": link_id_for(INTENT.id), "price": "10001.5"}


async def test_bybit_rest_is_the_order_gateway() -> None:
    rest = BybitRest("http://127.0.0.1:9", "key", Secret("secret"))  # no request is sent
    try:
        assert isinstance(rest, port.OrderGateway)
    finally:
        await rest.close()


def test_bybit_private_stream_turns_recorded_messages_into_order_events() -> None:
    assert isinstance(bybit_private, port.PrivateStream)
    message = bybit_private.parse_private(recorded("bybit/execution_linear.json"))
    assert bybit_private.events_from_private(message, "acc", RECV, {}) == [], "orderLinkId '': placed by hand"
    assert bybit_private.events_from_private(bybit_private.parse_private(recorded("bybit/order_option.json")),
                                             "acc", RECV, {}) == []
    link = link_id_for(INTENT.id)
    message["data"][0]["orderLinkId"] = link
    [fill] = bybit_private.events_from_private(message, "acc", RECV, {link: 42})
    assert isinstance(fill, OrderFilled) and fill.venue == "bybit" and fill.intent_id == INTENT.id
    assert (fill.side, fill.fill_qty, fill.fill_price, fill.fee) == ("Sell", Decimal("0.5"), Decimal("95900.1"),
                                                                      Decimal("26.3725275"))
    assert fill.exec_id == "0ab1bdf7-4219-438b-b30a-32ec863018f7" and fill.origin_ts == 42
    assert fill.ts_event == 1746270400353 * 1_000_000 and fill.cum_qty == Decimal("0.5")


@pytest.mark.parametrize("change, words", [({"execQty": "lots"}, "execQty"), ({"execPrice": "NaN"}, "execPrice"),
                                           ({"orderId": ""}, "orderId"), ({"symbol": 5}, "symbol")])
def test_bybit_private_messages_that_are_malformed_name_the_field(change: dict[str, Any], words: str) -> None:
    message = template("bybit/execution_linear.json")
    message["data"][0].update(orderLinkId=link_id_for(INTENT.id), **change)
    with pytest.raises(bybit_private.MalformedPrivateMessage, match=words) as refused:
        bybit_private.events_from_private(message, "acc", RECV, {})
    assert isinstance(refused.value, MalformedFrame) and refused.value.reason == "malformed"
    for raw, said in [(b"{", "not JSON"), (b"[]", "expected a JSON object")]:
        with pytest.raises(bybit_private.MalformedPrivateMessage, match=said):
            bybit_private.parse_private(raw)
