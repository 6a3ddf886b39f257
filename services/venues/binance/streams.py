"""Binance USDⓈ-M futures public streams → HEAN market events. Pure: no I/O.

Frames come from a combined stream (`/stream?streams=a/b`: {"stream": name, "data": payload}) or a
raw one (`/ws/name`: the payload alone), on the routed endpoint that carries it (`stream_route`:
/public the book, /market the trades). Three payloads are used (Binance's field names):
    aggTrade     {"e": "aggTrade", "E": ms, "s": "BTCUSDT", "a": agg id, "p": price, "q": qty,
                  "f": first trade id, "l": last trade id, "T": ms, "m": buyer is maker}
    depthUpdate  {"e": "depthUpdate", "E": ms, "T": ms, "s": ..., "U": first id, "u": final id,
                  "pu": previous final id, "b": [[price, qty], ...], "a": [...]}
    bookTicker   {"e": "bookTicker", "u": id, "E": ms, "T": ms, "s": ..., "b": bid, "B": bid qty,
                  "a": ask, "A": ask qty}
Replies to SUBSCRIBE ({"result": null, "id": n}) and errors ({"error": {...}, "id": n} or
{"code": n, "msg": ...}) come back as control messages.

Books follow depth.py's sync rules; events carry venue "binance" and go to the same md.* topics
as Bybit's, so every consumer reads both venues the same way. `m` true means the buyer was the
maker, so the taker (HEAN's trade side, as Bybit reports it) sold.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from schemas.events import BookDeltaReceived, BookSnapshotReceived, TickerUpdated, TradeReceived
from schemas.topics import MD_BOOK, MD_TICKERS, MD_TRADES
from services.domain.ids import market_book_id, market_ticker_id, market_trade_id
from services.venues.binance.depth import DepthSync, DepthUpdate, Snapshot, Step
from services.venues.frames import FeedResult, MalformedFrame, json_object

__all__ = ["DEPTH_PATH", "VENUE", "BinanceNormalizer", "depth_params", "routed_stream_urls", "stream_names",
           "stream_root", "stream_route", "stream_url"]

VENUE = "binance"
CATEGORY = "linear"
MS = 1_000_000
DEPTH_SPEEDS = ("100ms", "250ms", "500ms")
DEPTH_PATH = "/fapi/v1/depth"  # the REST depth snapshot every book starts from


def stream_names(symbols: tuple[str, ...], speed: str = "100ms", trades: bool = True,
                 tickers: bool = True) -> list[str]:
    """The stream names for `symbols` (lower case, as Binance names them)."""
    if speed not in DEPTH_SPEEDS:
        raise ValueError(f"depth speed must be one of {DEPTH_SPEEDS}, was {speed!r}")
    suffix = "" if speed == "250ms" else f"@{speed}"
    names = [f"{s.lower()}@depth{suffix}" for s in symbols]
    if trades:
        names += [f"{s.lower()}@aggTrade" for s in symbols]
    if tickers:
        names += [f"{s.lower()}@bookTicker" for s in symbols]
    return names


def stream_url(base: str, names: list[str]) -> str:
    """The combined-stream URL (`…/stream?streams=a/b`) of `names` at `base` (…/stream)."""
    return f"{base.rstrip('/')}?streams={'/'.join(names)}"


def stream_route(name: str) -> str:
    """Which of Binance's routed endpoints carries a stream: /public the book (depth, bookTicker)
    and single trades, /market the rest (aggTrade, kline, markPrice). Binance routes USDⓈ-M
    streams so since 2026-04-23; its unrouted /stream and /ws acknowledge a market stream and
    never send it."""
    kind = name.partition("@")[2]
    return "public" if kind.startswith("depth") or kind in ("bookTicker", "trade") else "market"


def stream_root(url: str) -> str:
    """The stream host's root (wss://fstream.binance.com) of INGEST_URL, which may also be spelled
    as the unrouted combined-stream URL (…/stream) it was before Binance routed its streams."""
    root = url.rstrip("/")
    return root[:-len("/stream")] if root.endswith("/stream") else root


def routed_stream_urls(url: str, names: list[str]) -> list[str]:
    """One combined-stream URL per routed endpoint that carries any of `names` (public first: the
    books), e.g. …/public/stream?streams=btcusdt@depth@100ms/btcusdt@bookTicker and
    …/market/stream?streams=btcusdt@aggTrade."""
    root = stream_root(url)
    routes = {"public": [n for n in names if stream_route(n) == "public"],
              "market": [n for n in names if stream_route(n) == "market"]}
    return [stream_url(f"{root}/{route}/stream", routed) for route, routed in routes.items() if routed]


def depth_params(symbol: str, limit: int) -> dict[str, str | int]:
    """The query of a `GET /fapi/v1/depth` snapshot (`limit` is INGEST_DEPTH)."""
    return {"symbol": symbol, "limit": limit}


class BinanceNormalizer:
    """Frames and snapshots of one connection into events; one DepthSync per symbol: the public-feed
    part of the venue port (services/venues/port.py SnapshotFeed). A book that lost sync is named in
    `FeedResult.resync` by its symbol; the shell fetches a REST depth snapshot for it (`book_sync`)
    and passes it to `on_snapshot`."""

    venue = VENUE
    category = CATEGORY
    book_sync = "rest_snapshot"

    def __init__(self, symbols: tuple[str, ...], depth: int) -> None:
        self.depth = depth
        self.books = {s: DepthSync(s, depth) for s in symbols}

    def on_frame(self, raw: bytes | str, recv_ns: int) -> FeedResult:
        message = json_object(raw)
        if "stream" in message and "data" in message:
            message = message["data"]
            if not isinstance(message, dict):
                raise MalformedFrame("data of a combined stream must be an object")
        kind = message.get("e")
        if kind is None:
            if "id" in message or "code" in message or "error" in message:
                return FeedResult(control=message)
            raise MalformedFrame("no event type (e) and not a reply")
        try:
            if kind == "depthUpdate":
                return self._depth(message, recv_ns)
            if kind == "aggTrade":
                return self._trade(message, recv_ns)
            if kind == "bookTicker":
                return self._ticker(message, recv_ns)
        except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
            raise MalformedFrame(f"{kind}: {type(exc).__name__}: {exc}") from None
        raise MalformedFrame(f"unsupported event type {kind!r}")

    def on_snapshot(self, symbol: str, payload: Any, recv_ns: int) -> FeedResult:
        """A `GET /fapi/v1/depth` answer for `symbol` (raises MalformedFrame if it is not one)."""
        try:
            if not isinstance(payload, dict):
                raise TypeError(f"expected an object, got {type(payload).__name__}")
            snapshot = Snapshot(int(payload["lastUpdateId"]), int(payload.get("T") or payload.get("E") or 0),
                                _checked_levels(payload["bids"]), _checked_levels(payload["asks"]))
        except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
            raise MalformedFrame(f"depth snapshot of {symbol}: {type(exc).__name__}: {exc}") from None
        return self._publish(symbol, self.books[symbol].on_snapshot(snapshot), recv_ns)

    def snapshot_failed(self, symbol: str) -> None:
        self.books[symbol].failed_snapshot()

    # ------------------------------------------------------------------ payloads

    def _depth(self, m: dict[str, Any], recv_ns: int) -> FeedResult:
        symbol = m["s"]
        sync = self.books.get(symbol)
        if sync is None:
            raise ValueError(f"depthUpdate for {symbol!r}, not a subscribed symbol")
        update = DepthUpdate(symbol, int(m["U"]), int(m["u"]), int(m["pu"]), int(m["E"]), int(m.get("T", m["E"])),
                             _checked_levels(m["b"]), _checked_levels(m["a"]))
        return self._publish(symbol, sync.on_update(update), recv_ns)

    def _publish(self, symbol: str, step: Step, recv_ns: int) -> FeedResult:
        result = FeedResult(resync=[symbol] if step.need_snapshot else [], gaps=1 if step.gap else 0,
                            reasons=[f"{symbol}: {step.reason}"] if step.reason else [])
        book = self.books[symbol].book
        topic = f"depth.{symbol}"
        if step.snapshot is not None:
            snap = step.snapshot
            result.events.append((MD_BOOK, symbol, BookSnapshotReceived(
                id=market_book_id(VENUE, CATEGORY, topic, snap.last_update_id, True),
                ts_event=snap.transaction_ms * MS, ts_ingest=recv_ns, origin_ts=recv_ns, venue=VENUE,
                category=CATEGORY, symbol=symbol, depth=self.depth, update_id=snap.last_update_id,
                seq=snap.last_update_id, bids=_sorted(snap.bids, True), asks=_sorted(snap.asks, False),
                best_bid=_best(snap.bids, True), best_ask=_best(snap.asks, False))))
        last = len(step.applied) - 1
        for i, update in enumerate(step.applied):
            # The top after this update: exact for the last applied one (the book now); for the
            # earlier ones of a batch (buffered behind a snapshot) it is left out rather than wrong.
            top_bid = book.best_bid() if i == last else None
            top_ask = book.best_ask() if i == last else None
            result.events.append((MD_BOOK, symbol, BookDeltaReceived(
                id=market_book_id(VENUE, CATEGORY, topic, update.final_id, False),
                ts_event=update.transaction_ms * MS, ts_ingest=recv_ns, origin_ts=recv_ns, venue=VENUE,
                category=CATEGORY, symbol=symbol, depth=self.depth, update_id=update.final_id, seq=update.final_id,
                bids=_levels(update.bids), asks=_levels(update.asks),
                best_bid=(Decimal(top_bid[0]), Decimal(top_bid[1])) if top_bid else None,
                best_ask=(Decimal(top_ask[0]), Decimal(top_ask[1])) if top_ask else None)))
        return result

    def _trade(self, m: dict[str, Any], recv_ns: int) -> FeedResult:
        symbol, agg_id = m["s"], str(int(m["a"]))
        maker_buyer = m["m"]
        if not isinstance(maker_buyer, bool):
            raise TypeError(f"m must be true or false, got {maker_buyer!r}")
        price, qty = Decimal(m["p"]), Decimal(m["q"])
        if not (price.is_finite() and qty.is_finite() and price > 0 and qty > 0):
            raise ValueError(f"price and quantity must be positive, got {m['p']!r} x {m['q']!r}")
        return FeedResult(events=[(MD_TRADES, symbol, TradeReceived(
            id=market_trade_id(VENUE, CATEGORY, symbol, agg_id), ts_event=int(m["T"]) * MS, ts_ingest=recv_ns,
            origin_ts=recv_ns, venue=VENUE, category=CATEGORY, symbol=symbol, trade_id=agg_id,
            side="Sell" if maker_buyer else "Buy", price=price, qty=qty))])

    def _ticker(self, m: dict[str, Any], recv_ns: int) -> FeedResult:
        symbol, update_id, ts = m["s"], int(m["u"]), int(m.get("T") or m["E"])
        return FeedResult(events=[(MD_TICKERS, symbol, TickerUpdated(
            id=market_ticker_id(VENUE, CATEGORY, f"bookTicker.{symbol}", update_id, ts), ts_event=ts * MS,
            ts_ingest=recv_ns, origin_ts=recv_ns, venue=VENUE, category=CATEGORY, symbol=symbol,
            bid1_price=Decimal(m["b"]), bid1_size=Decimal(m["B"]), ask1_price=Decimal(m["a"]),
            ask1_size=Decimal(m["A"])))])


def _checked_levels(levels: Any) -> list[tuple[str, str]]:
    """[[price, qty], ...] as strings, each a finite non-negative decimal (a typo'd venue value
    must fail here, not inside the book)."""
    if not isinstance(levels, list):
        raise TypeError(f"levels must be a list, got {type(levels).__name__}")
    out = []
    for level in levels:
        if not isinstance(level, list) or len(level) < 2 or not all(isinstance(x, str) for x in level[:2]):
            raise TypeError(f"a level must be [price, qty] strings, got {level!r}")
        price, qty = Decimal(level[0]), Decimal(level[1])
        if not (price.is_finite() and qty.is_finite()) or price <= 0 or qty < 0:
            raise ValueError(f"bad level {level!r}")
        out.append((level[0], level[1]))
    return out


def _levels(levels: Any) -> list[tuple[Decimal, Decimal]]:
    return [(Decimal(p), Decimal(q)) for p, q in levels]


def _sorted(levels: Any, bids: bool) -> list[tuple[Decimal, Decimal]]:
    live = [(Decimal(p), Decimal(q)) for p, q in levels if Decimal(q) != 0]
    return sorted(live, key=lambda level: level[0], reverse=bids)


def _best(levels: Any, bids: bool) -> tuple[Decimal, Decimal] | None:
    ordered = _sorted(levels, bids)
    return ordered[0] if ordered else None
