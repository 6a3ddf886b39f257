"""The simulator's Binance USDⓈ-M futures dialect: public market data only, on its own market.

Binance and Bybit are different venues with different books, so this dialect runs its own seeded
market (the simulator's seed + 1) over the same symbols, stepped by the same tick loop. A client
sees what it sees on fstream.binance.com / fapi.binance.com:

    ws://HOST:PORT/market/stream?streams=btcusdt@aggTrade/ethusdt@aggTrade
        combined streams, each message {"stream": name, "data": payload}
    ws://HOST:PORT/public/ws/btcusdt@depth@100ms    one raw stream (payload alone); /ws alone, then SUBSCRIBE
    ws://HOST:PORT/public/... and /market/...   Binance's routed endpoints (the same /ws and /stream
        under each): /public carries depth, bookTicker and trade, /market aggTrade and klines; a stream
        subscribed on the other route is acknowledged and never sent, as Binance does. The
        unrouted paths carry the public ones only, as Binance's legacy endpoints do since
        2026-04-23: an aggTrade or kline subscribed there is acknowledged and never sent
    btcusdt@trade: the trades inside each aggregate trade (the ones /fapi/v1/trades lists)
    btcusdt@kline_1m (1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w 1M): the open candle every 250 ms
        if it traded, and once closed with x true (the candles /fapi/v1/klines answers)
    {"method": "SUBSCRIBE" | "UNSUBSCRIBE" | "LIST_SUBSCRIPTIONS", "params": [...], "id": n}
        answered {"result": null | [...], "id": n}; a bad request {"code": 2, "msg": ..., "id": n}
    GET /fapi/...                             market data REST (binance_rest.py) from what it printed:
        the aggregate trades (the last AGG_TRADE_MEMORY per symbol), the candles of all of them,
        the last bookTicker event, the book now, the funding settlements

An aggregate trade is one price level a taker took, from one to three resting orders (trade ids
f..l, each at least one lot): /fapi/v1/trades splits it into those trades.

Depth: the venue's update id grows by the number of levels each market step changed; a diff stream
publishes every 100/250/500 ms (of market steps at the simulator's rate) every level updated since
its last event with its quantity now — also a level that changed and changed back, as Binance does:
a client that applies the event to a snapshot taken inside the window must overwrite what that
snapshot saw — chained by pu = its previous u. A REST snapshot is the book *now*, so when it is taken
between two events its lastUpdateId falls inside the next event's U..u — the case Binance's sync
rules are written for. Fault `gap` drops one depth event per stream (its next event's pu no longer
matches), the case a client must resync from.
"""

from __future__ import annotations

import logging
from collections import defaultdict, deque
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import orjson
from websockets.asyncio.server import ServerConnection, broadcast
from websockets.exceptions import ConnectionClosed

from services.exchange_sim import binance_rest
from services.exchange_sim.klines import BINANCE_SPANS, CandleFeed, Candles
from services.exchange_sim.market import Fill, Market, SymbolMarket
from services.exchange_sim.rest import RestResult
from services.venues.binance.streams import stream_route

if TYPE_CHECKING:
    from services.exchange_sim.server import Simulator

log = logging.getLogger(__name__)
SPEEDS_MS = {"@depth@100ms": 100, "@depth": 250, "@depth@500ms": 500}
MAX_STREAMS = 200  # Binance's limit per connection
AGG_TRADE_MEMORY = 50_000  # aggregate trades kept per symbol for /fapi/v1/aggTrades (tuples: ~10 MB a symbol)
FUNDING_MEMORY = 1000  # funding settlements kept per symbol for /fapi/v1/fundingRate
AggTrade = tuple[int, str, str, int, int, int, bool]  # a, p, q, f, l, T, m
ROUTES = ("public", "market")
ROUTE_OF: dict[str, str] = {}  # stream name → the route that carries it (memo of stream_route)


class _DepthFeed:
    """One diff-depth stream of one symbol at one speed: the levels updated since its last event, and its u."""

    def __init__(self, update_id: int, every_steps: int) -> None:
        self.bids: set[int] = set()
        self.asks: set[int] = set()
        self.update_id = update_id
        self.every_steps = every_steps
        self.steps = 0
        self.drop_next = False


class BinanceVenue:
    """Market, streams and depth REST of the Binance dialect."""

    def __init__(self, sim: Simulator, symbols: tuple[str, ...], seed: int, levels: int, rate: float) -> None:
        self.sim = sim
        market = Market(seed=seed, levels=levels)
        self.markets: dict[str, SymbolMarket] = {s: market.symbols[s] for s in symbols}
        self.update_ids = dict.fromkeys(symbols, 1_000)
        self.views = {s: self._view(s) for s in symbols}
        every = {name: max(1, round(ms * rate / 1000)) for name, ms in SPEEDS_MS.items()}
        self.depth = {(s, name): _DepthFeed(self.update_ids[s], every[name])
                      for s in symbols for name in SPEEDS_MS}
        self.tops: dict[str, tuple[int, int, int, int]] = {}
        self.book_tickers: dict[str, dict[str, Any]] = {}  # the last bookTicker event per symbol
        self.agg_id = dict.fromkeys(symbols, 0)
        # What the aggTrade stream printed, per symbol: (a, p, q, f, l, T, m), ids counting up by one.
        self.agg_trades: dict[str, deque[AggTrade]] = {s: deque(maxlen=AGG_TRADE_MEMORY) for s in symbols}
        self.trade_id = dict.fromkeys(symbols, 0)
        self.candles = {s: Candles(BINANCE_SPANS) for s in symbols}  # every aggregate trade, for klines, 24hr
        self.kline_feeds = {s: {f"{s.lower()}@kline_{i}": CandleFeed(i) for i in BINANCE_SPANS} for s in symbols}
        self.kline_every = max(1, round(0.25 * rate))  # steps between pushes of an open candle (250 ms)
        self.steps = dict.fromkeys(symbols, 0)
        # Funding settlements (fundingTime, rate, mark price), the venue's own schedule (server.py).
        self.funding: dict[str, deque[tuple[int, str, str]]] = {s: deque(maxlen=FUNDING_MEMORY) for s in symbols}
        self.subscribers: dict[str, set[ServerConnection]] = defaultdict(set)
        self.combined: dict[ServerConnection, bool] = {}  # combined streams wrap each payload
        self.routes: dict[ServerConnection, str | None] = {}  # "public", "market" or None (legacy)
        self.stats: dict[str, int] = defaultdict(int)

    # ------------------------------------------------------------------ market

    def _view(self, symbol: str) -> tuple[dict[int, int], dict[int, int]]:
        market = self.markets[symbol]
        return dict(market.bids), dict(market.asks)

    def tick(self, symbol: str, ts_ms: int) -> None:
        """One market step: trades, the venue's update id, and whatever streams are due."""
        market = self.markets[symbol]
        fills = market.step()
        before, now = self.views[symbol], self._view(symbol)
        changed_bids, changed_asks = _changed_prices(before[0], now[0]), _changed_prices(before[1], now[1])
        self.views[symbol] = now
        self.update_ids[symbol] += len(changed_bids) + len(changed_asks)
        lower = symbol.lower()
        if fills:
            name, trade_stream = f"{lower}@aggTrade", f"{lower}@trade"
            for payload in self._agg_trades(symbol, fills, ts_ms):
                self._send(name, payload)
                if self.subscribers.get(trade_stream):
                    row = tuple(payload[k] for k in ("a", "p", "q", "f", "l", "T", "m"))
                    for trade in binance_rest.split_trades(market.instrument, row):  # type: ignore[arg-type]
                        self._send(trade_stream, {"e": "trade", "E": ts_ms, "T": trade["time"], "s": symbol,
                                                  "t": trade["id"], "p": trade["price"], "q": trade["qty"],
                                                  "X": "MARKET", "m": trade["isBuyerMaker"]})
        for suffix in SPEEDS_MS:
            feed = self.depth[(symbol, suffix)]
            feed.bids |= changed_bids
            feed.asks |= changed_asks
            feed.steps += 1
            if feed.steps >= feed.every_steps:
                feed.steps = 0
                self._publish_depth(symbol, suffix, feed, now, ts_ms)
        top = (market.best_bid(), market.bids[market.best_bid()], market.best_ask(), market.asks[market.best_ask()])
        if self.tops.get(symbol) != top:
            self.tops[symbol] = top
            self.book_tickers[symbol] = self.book_ticker(symbol, ts_ms)
            self._send(f"{lower}@bookTicker", self.book_tickers[symbol])
        self.steps[symbol] += 1
        open_due = self.steps[symbol] % self.kline_every == 0
        for name, feed in self.kline_feeds[symbol].items():
            if self.subscribers.get(name):
                for candle, closed in feed.due(self.candles[symbol], ts_ms, open_due):
                    self._send(name, binance_rest.kline_event(market.instrument, feed.interval, candle, closed,
                                                              ts_ms))

    def book_ticker(self, symbol: str, ts_ms: int) -> dict[str, Any]:
        """The bookTicker event of the book now (/fapi/v1/ticker/bookTicker answers the last one sent)."""
        market = self.markets[symbol]
        inst, bid, ask = market.instrument, market.best_bid(), market.best_ask()
        return {"e": "bookTicker", "u": self.update_ids[symbol], "E": ts_ms, "T": ts_ms - 1, "s": symbol,
                "b": inst.price_text(bid), "B": inst.qty_text(market.bids[bid]), "a": inst.price_text(ask),
                "A": inst.qty_text(market.asks[ask])}

    def settle_funding(self, rate: Decimal, now_ms: int) -> None:
        """Record a funding settlement of every symbol at the mark (the mid) now: Binance settles on
        the same 8-hour schedule as Bybit, and the simulator runs one schedule for both dialects."""
        for symbol, market in self.markets.items():
            mark = binance_rest.mark_price(market)
            self.funding[symbol].append((now_ms, f"{rate:.8f}", mark))

    def _agg_trades(self, symbol: str, fills: list[Fill], ts_ms: int) -> list[dict[str, Any]]:
        """One aggregate trade per price level a taker took (Binance aggregates by price and taker)."""
        inst = self.markets[symbol].instrument
        out = []
        for fill in fills:
            self.agg_id[symbol] += 1
            first = self.trade_id[symbol] + 1
            # A level taken from one to three resting orders, each at least one lot.
            self.trade_id[symbol] += min(1 + fill.qty % 3, fill.qty)
            row = (self.agg_id[symbol], inst.price_text(fill.price), inst.qty_text(fill.qty), first,
                   self.trade_id[symbol], ts_ms - 1, fill.side == "Sell")
            self.agg_trades[symbol].append(row)
            self.candles[symbol].add(ts_ms - 1, fill.price, fill.qty, fill.side == "Buy", first, row[4])
            out.append({"e": "aggTrade", "E": ts_ms, "s": symbol, **binance_rest.agg_row(row)})
        return out

    def _publish_depth(self, symbol: str, suffix: str, feed: _DepthFeed,
                       now: tuple[dict[int, int], dict[int, int]], ts_ms: int) -> None:
        inst = self.markets[symbol].instrument
        final = self.update_ids[symbol]
        if final == feed.update_id:
            return  # nothing changed since the last event
        bids = [[inst.price_text(p), inst.qty_text(now[0].get(p, 0))] for p in sorted(feed.bids, reverse=True)]
        asks = [[inst.price_text(p), inst.qty_text(now[1].get(p, 0))] for p in sorted(feed.asks)]
        payload = {"e": "depthUpdate", "E": ts_ms, "T": ts_ms - 1, "s": symbol, "U": feed.update_id + 1,
                   "u": final, "pu": feed.update_id, "b": bids, "a": asks}
        feed.bids, feed.asks = set(), set()
        previous, feed.update_id = feed.update_id, final
        if feed.drop_next:  # fault: this event never reaches anyone, the next one's pu gives it away
            feed.drop_next = False
            self.stats["depth_dropped"] += 1
            log.info("binance depth event dropped (fault gap)", extra={"symbol": symbol, "pu": previous})
            return
        self._send(f"{symbol.lower()}{suffix}", payload)

    def flush(self, ts_ms: int) -> None:
        """Publish what changed but is not yet out (a venue pushes its diffs every interval whether
        or not the market moves; called while the market stands still)."""
        for (symbol, suffix), feed in self.depth.items():
            if feed.update_id != self.update_ids[symbol]:
                feed.steps = 0
                self._publish_depth(symbol, suffix, feed, self.views[symbol], ts_ms)

    def inject_gap(self, symbols: list[str]) -> None:
        for (symbol, _), feed in self.depth.items():
            if symbol in symbols:
                feed.drop_next = True

    # ------------------------------------------------------------------ REST

    def rest(self, path: str, query: dict[str, str]) -> RestResult:
        """GET /fapi/... (binance_rest.py): Binance's rows, or its error JSON and HTTP status."""
        return binance_rest.answer(self, path, query)

    # ------------------------------------------------------------------ WebSocket

    @staticmethod
    def _route(path: str) -> tuple[str | None, str]:
        """(route, the rest of the path): /public/... and /market/... are Binance's routed
        endpoints, anything else the legacy unrouted one (route None)."""
        for route in ROUTES:
            if path.startswith(f"/{route}/"):
                return route, path[len(route) + 1:]
        return None, path

    @classmethod
    def is_stream_path(cls, path: str) -> bool:
        rest = cls._route(path)[1]
        return rest in ("/stream", "/ws") or rest.startswith("/ws/")

    def valid_stream(self, name: str) -> bool:
        symbol, _, kind = name.partition("@")
        if symbol.upper() not in self.markets or symbol != symbol.lower():
            return False
        if kind.startswith("kline_"):
            return kind[len("kline_"):] in BINANCE_SPANS
        return kind in ("aggTrade", "trade", "bookTicker") or f"@{kind}" in SPEEDS_MS

    async def serve(self, connection: ServerConnection, path: str, query: str) -> None:
        route, rest = self._route(path)
        combined = rest == "/stream"
        names = parse_qs(query).get("streams", [""])[-1].split("/") if combined else [rest[len("/ws/"):]]
        # A raw path's last segment without "@" is no stream: ccxt appends a connection number
        # (/market/ws/0), which Binance takes; a stream-shaped bad name is refused.
        names = [n for n in names if n and (combined or "@" in n)]
        mine: set[str] = set()
        self.routes[connection] = route
        if any(not self.valid_stream(n) for n in names) or len(names) > MAX_STREAMS:
            await connection.close(1008, "Invalid stream name")  # Binance refuses the handshake's streams
            return
        self._subscribe(connection, names, mine, combined)
        self.stats["connections"] += 1
        try:
            async for raw in connection:
                await connection.send(self._on_message(connection, raw, mine, combined))
        except ConnectionClosed:
            pass
        finally:
            for name in mine:
                self.subscribers[name].discard(connection)
            self.combined.pop(connection, None)
            self.routes.pop(connection, None)

    def _subscribe(self, connection: ServerConnection, names: list[str], mine: set[str], combined: bool) -> None:
        for name in names:
            feed = self.kline_feeds.get(name.partition("@")[0].upper(), {}).get(name)
            if feed is not None and not self.subscribers[name]:  # nobody listened: forget what it pushed
                feed.open_start = None
            self.subscribers[name].add(connection)
            mine.add(name)
        self.combined[connection] = combined

    def _on_message(self, connection: ServerConnection, raw: str | bytes, mine: set[str], combined: bool) -> str:
        try:
            request = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return orjson.dumps({"code": 3, "msg": "Invalid JSON: expected value at line 1 column 1"}).decode()
        if not isinstance(request, dict):
            return orjson.dumps({"code": 2, "msg": "Invalid request: request must be an object"}).decode()
        request_id = request.get("id")
        if request_id is not None and (isinstance(request_id, bool) or not isinstance(request_id, int | str)):
            return orjson.dumps({"code": 1, "msg": "Invalid value type: expected u64 or string", "id": None}).decode()
        method, params = request.get("method"), request.get("params", [])
        if method == "LIST_SUBSCRIPTIONS":
            return orjson.dumps({"result": sorted(mine), "id": request_id}).decode()
        if method not in ("SUBSCRIBE", "UNSUBSCRIBE"):
            return orjson.dumps({"code": 2, "msg": f"Invalid request: unknown method {method!r}",
                                 "id": request_id}).decode()
        if not isinstance(params, list) or not params or not all(isinstance(p, str) for p in params):
            return orjson.dumps({"code": 2, "msg": "Invalid request: params must be a list of stream names",
                                 "id": request_id}).decode()
        invalid = [p for p in params if not self.valid_stream(p)]
        if invalid:
            return orjson.dumps({"code": 2, "msg": f"Invalid request: invalid stream names {invalid}",
                                 "id": request_id}).decode()
        if method == "SUBSCRIBE":
            if len(mine | set(params)) > MAX_STREAMS:
                return orjson.dumps({"code": 2, "msg": f"Invalid request: more than {MAX_STREAMS} streams",
                                     "id": request_id}).decode()
            self._subscribe(connection, params, mine, combined)
        else:
            for name in params:
                mine.discard(name)
                self.subscribers[name].discard(connection)
        return orjson.dumps({"result": None, "id": request_id}).decode()

    def _send(self, name: str, payload: dict[str, Any]) -> None:
        targets = self.subscribers.get(name)
        if not targets:
            return
        carried = ROUTE_OF.get(name) or ROUTE_OF.setdefault(name, stream_route(name))
        routes = self.routes
        # A stream subscribed on the other route, or a market stream on the unrouted endpoint (which
        # Binance keeps for the public ones only), is acknowledged and never sent.
        if any((routes.get(c) or "public") != carried for c in targets):
            targets = {c for c in targets if (routes.get(c) or "public") == carried}
        raw = [c for c in targets if not self.combined.get(c, True)]
        wrapped = [c for c in targets if self.combined.get(c, True)]
        if wrapped:
            broadcast(wrapped, orjson.dumps({"stream": name, "data": payload}).decode())
        if raw:
            broadcast(raw, orjson.dumps(payload).decode())
        self.stats["frames_sent"] += len(targets)


def _changed_prices(before: dict[int, int], after: dict[int, int]) -> set[int]:
    return {p for p, q in after.items() if before.get(p) != q} | (before.keys() - after.keys())
