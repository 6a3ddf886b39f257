"""Bybit V5 public frames → HEAN market events; books and tickers maintained in between.

The public market-data part of the Bybit adapter (services/venues/port.py), used by ingest's shell.
No I/O: the shell passes each raw frame with its local receive time and publishes what comes back.
The state here (books, tickers) comes from the venue, not from the log: a restart rebuilds it
from the snapshots the venue sends on subscribe, so it is kept mutable for speed.

An orderbook frame, annotated (bybit-v5.md §1.5):
    {"topic": "orderbook.50.BTCUSDT",   depth 50, symbol BTCUSDT
     "type": "delta",                   "snapshot" replaces the book; data.u == 1 does too
     "ts": 1687940967466,               ms, when the venue produced it → ts_event
     "data": {"s": "BTCUSDT",
              "b": [["30247.20", "30.028"], ["30240.00", "0"]],   size "0" deletes the level
              "a": [["30248.70", "0"]],
              "u": 177400507,           must be the last u + 1, else the book is stale
              "seq": 66544703342},      cross sequence, monotonic but gapped: not checked
     "cts": 1687940967464}
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from schemas.events import (
    BookDeltaReceived,
    BookSnapshotReceived,
    Event,
    TickerUpdated,
    TradeReceived,
)
from schemas.topics import MD_BOOK, MD_TICKERS, MD_TRADES
from services.domain.ids import market_book_id, market_ticker_id, market_trade_id
from services.venues.bybit.book import BookGap, BybitBook
from services.venues.frames import FeedResult, MalformedFrame, json_object

__all__ = ["VENUE", "BybitNormalizer", "ping_message", "public_topics", "resubscribe_messages", "subscribe_message"]

VENUE = "bybit"
MS = 1_000_000

TICKER_FIELDS = {
    "lastPrice": "last_price", "markPrice": "mark_price", "indexPrice": "index_price",
    "bid1Price": "bid1_price", "bid1Size": "bid1_size", "ask1Price": "ask1_price", "ask1Size": "ask1_size",
    "volume24h": "volume_24h", "turnover24h": "turnover_24h", "fundingRate": "funding_rate",
    "openInterest": "open_interest",
}


def public_topics(symbols: tuple[str, ...], depth: int, trades: bool = True, tickers: bool = True) -> list[str]:
    """The V5 public topics for `symbols` (bybit-v5.md §1.4): the book at `depth`, trades, tickers."""
    topics = [f"orderbook.{depth}.{s}" for s in symbols]
    if trades:
        topics += [f"publicTrade.{s}" for s in symbols]
    if tickers:
        topics += [f"tickers.{s}" for s in symbols]
    return topics


def subscribe_message(topics: list[str], req_id: str = "hean-sub") -> str:
    return orjson.dumps({"op": "subscribe", "req_id": req_id, "args": topics}).decode()


def resubscribe_messages(topic: str) -> list[str]:
    """Bybit's book resync: unsubscribe and subscribe again; the venue answers with a snapshot."""
    return [orjson.dumps({"op": "unsubscribe", "args": [topic]}).decode(),
            subscribe_message([topic], "hean-resub")]


def ping_message(n: int) -> str:
    """The application-level ping (bybit-v5.md §1.3); linear answers op "ping", spot op "pong"."""
    return orjson.dumps({"op": "ping", "req_id": f"hean-ping-{n}"}).decode()


class BybitNormalizer:
    """Turns frames of one connection (one category) into events: the public-feed part of the
    venue port (services/venues/port.py PublicFeed). A book that lost sync is named in
    `FeedResult.resync` by its topic, to be resubscribed (`book_sync`)."""

    book_sync = "resubscribe"

    def __init__(self, category: str = "linear", venue: str = VENUE) -> None:
        self.category = category
        self.venue = venue
        self.books: dict[str, BybitBook] = {}
        self.tickers: dict[str, dict[str, str]] = {}

    def on_frame(self, raw: bytes | str, recv_ns: int) -> FeedResult:
        """Parse one frame. Raises MalformedFrame for anything that is not a valid V5 message."""
        message = json_object(raw)
        topic = message.get("topic")
        if topic is None:
            if "op" in message or "success" in message:
                return FeedResult(control=message)
            raise MalformedFrame("no topic and no op: neither data nor a control reply")
        if not isinstance(topic, str):
            raise MalformedFrame(f"topic must be a string, got {topic!r}")
        try:
            if topic.startswith("orderbook."):
                return self._book(topic, message, recv_ns)
            if topic.startswith("publicTrade."):
                return self._trades(message, recv_ns)
            if topic.startswith("tickers."):
                return self._ticker(topic, message, recv_ns)
        except (KeyError, TypeError, ValueError, IndexError, InvalidOperation) as exc:
            raise MalformedFrame(f"{topic}: {type(exc).__name__}: {exc}") from None
        raise MalformedFrame(f"unsupported topic {topic!r}")

    # ------------------------------------------------------------------ orderbook

    def _book(self, topic: str, message: dict[str, Any], recv_ns: int) -> FeedResult:
        _, depth_text, symbol = topic.split(".", 2)
        depth = int(depth_text)
        data = message["data"]
        if data["s"] != symbol:
            raise ValueError(f"data.s {data['s']!r} does not match the topic's symbol")
        update_id, seq = int(data["u"]), int(data.get("seq", 0))
        kind = message["type"]
        book = self.books.get(topic)
        if book is None:
            book = self.books[topic] = BybitBook(symbol, depth)
        result = FeedResult()
        is_snapshot = kind == "snapshot" or update_id == 1
        if is_snapshot:
            if depth == 1 and not book.stale and update_id == book.update_id:
                return result  # level 1 repeats its snapshot with the same u when idle
            book.apply_snapshot(data["b"], data["a"], update_id, seq)
        elif kind == "delta":
            try:
                if book.apply_delta(data["b"], data["a"], update_id, seq) == 0 and update_id <= book.update_id:
                    return result  # an old message: already applied
            except BookGap as gap:
                result.resync.append(topic)
                result.gaps = 1
                result.reasons.append(str(gap))
                return result
        else:
            raise ValueError(f"type must be snapshot or delta, got {kind!r}")
        if book.crossed():
            book.mark_stale()
            result.resync.append(topic)
            result.gaps = 1
            result.reasons.append(f"{symbol}: crossed")
            return result
        best_bid, best_ask = book.best_bid(), book.best_ask()
        common = dict(
            id=market_book_id(self.venue, self.category, topic, update_id, is_snapshot),
            ts_event=int(message.get("cts") or message["ts"]) * MS, ts_ingest=recv_ns, origin_ts=recv_ns,
            venue=self.venue, category=self.category, symbol=symbol, depth=depth, update_id=update_id, seq=seq,
            best_bid=(Decimal(best_bid[0]), Decimal(best_bid[1])) if best_bid else None,
            best_ask=(Decimal(best_ask[0]), Decimal(best_ask[1])) if best_ask else None,
        )
        if is_snapshot:
            bids, asks = book.levels()
            event: Event = BookSnapshotReceived(**common, bids=_levels(bids), asks=_levels(asks))
        else:
            event = BookDeltaReceived(**common, bids=_levels(data["b"]), asks=_levels(data["a"]))
        result.events.append((MD_BOOK, symbol, event))
        return result

    # ------------------------------------------------------------------ trades

    def _trades(self, message: dict[str, Any], recv_ns: int) -> FeedResult:
        result = FeedResult()
        for trade in message["data"]:
            side = trade["S"]
            if side not in ("Buy", "Sell"):
                raise ValueError(f"S must be Buy or Sell, got {side!r}")
            symbol = trade["s"]
            result.events.append((MD_TRADES, symbol, TradeReceived(
                id=market_trade_id(self.venue, self.category, symbol, trade["i"]),
                ts_event=int(trade["T"]) * MS, ts_ingest=recv_ns, origin_ts=recv_ns,
                venue=self.venue, category=self.category, symbol=symbol, trade_id=str(trade["i"]),
                side=side, price=Decimal(trade["p"]), qty=Decimal(trade["v"]),
            )))
        return result

    # ------------------------------------------------------------------ tickers

    def _ticker(self, topic: str, message: dict[str, Any], recv_ns: int) -> FeedResult:
        data = message["data"]
        symbol = data["symbol"]
        if message.get("type", "snapshot") == "snapshot" or symbol not in self.tickers:
            merged = self.tickers[symbol] = dict(data)
        else:
            merged = self.tickers[symbol]
            merged.update(data)
        fields = {ours: Decimal(merged[theirs]) for theirs, ours in TICKER_FIELDS.items() if merged.get(theirs)}
        ts = int(message["ts"])
        event = TickerUpdated(
            id=market_ticker_id(self.venue, self.category, topic, message.get("cs", 0), ts),
            ts_event=ts * MS, ts_ingest=recv_ns, origin_ts=recv_ns,
            venue=self.venue, category=self.category, symbol=symbol, **fields,
        )
        return FeedResult(events=[(MD_TICKERS, symbol, event)])


def _levels(levels: list[Any]) -> list[tuple[Decimal, Decimal]]:
    return [(Decimal(p), Decimal(s)) for p, s in levels]
