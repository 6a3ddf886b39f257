"""Public Bybit V5 REST of the simulator (/v5/market/*), with the venue's envelope and error codes.

Transport-free: a front passes path and query and gets a status and a JSON body back, so both the
REST port (private.py on http.py) and the WebSocket port's HTTP hook serve the same handlers.
Queries are validated by their shapes in requests.py (10001 naming the field). Every category
Bybit has is answered: the simulator lists its symbols as linear perpetuals and spot pairs, and
has no inverse or option instruments, so those get Bybit's empty list rather than an error.
Tickers and recent trades come from the simulated market and the trades it printed since start
(`Simulator.trades`, the last TRADE_MEMORY per symbol); klines from the candles of every trade it
printed (`Simulator.candles`, klines.py), the ones the kline streams push.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from services.exchange_sim import requests
from services.exchange_sim.klines import bybit_fields
from services.exchange_sim.requests import ParamsError, parse_query
from services.exchange_sim.views import text

if TYPE_CHECKING:
    from services.exchange_sim.server import Simulator

PARAM_ERROR = 10001
ROUTE_NOT_FOUND = 10017
LISTED = ("linear", "spot")  # categories the simulator lists its symbols in
BOOK_LIMITS = {"spot": (1, 1000, 1), "linear": (1, 1000, 25), "inverse": (1, 1000, 25), "option": (1, 25, 1)}


@dataclass(frozen=True, slots=True)
class RestResult:
    status: int
    body: dict[str, Any] | list[Any]  # a list: Binance answers some reads (aggTrades) with a bare array


def envelope(
    result: dict[str, Any], ret_code: int = 0, ret_msg: str = "OK", now_ms: int | None = None
) -> dict[str, Any]:
    """{"retCode", "retMsg", "result", "retExtInfo", "time"} as every V5 response (bybit-v5.md §3.4)."""
    return {"retCode": ret_code, "retMsg": ret_msg, "result": result, "retExtInfo": {},
            "time": now_ms if now_ms is not None else int(time.time() * 1000)}


def error(ret_code: int, ret_msg: str, status: int = 200) -> RestResult:
    return RestResult(status, envelope({}, ret_code, ret_msg))


def public_rest(sim: Simulator, path: str, query: str | dict[str, str]) -> RestResult:
    """Dispatch GET /v5/market/*; unknown paths get 404 with retCode 10017."""
    if path == "/v5/market/time":
        now_ns = int(sim.clock() * 1e9)
        return RestResult(200, envelope({"timeSecond": str(now_ns // 10**9), "timeNano": str(now_ns)},
                                        now_ms=now_ns // 10**6))
    route = ROUTES.get(path)
    if route is None:
        return error(ROUTE_NOT_FOUND, "Route not found.", status=404)
    shape, handler = route
    try:
        return handler(sim, parse_query(shape, query))
    except ParamsError as exc:
        return error(exc.ret_code, str(exc))


def _symbols(sim: Simulator, category: str, symbol: str | None) -> list[str]:
    """The symbols a query selects: none outside the listed categories or for an unknown name."""
    if category not in LISTED:
        return []
    return [s for s in sim.symbols if symbol in (None, s)]


def _instruments(sim: Simulator, query: requests.InstrumentsQuery) -> RestResult:
    items = []
    for name in _symbols(sim, query.category, query.symbol):
        inst = sim.symbols[name].instrument
        if query.status not in (None, "Trading") or query.baseCoin not in (None, inst.base_coin):
            continue
        item: dict[str, Any] = {"symbol": name, "status": "Trading", "baseCoin": inst.base_coin,
                                "quoteCoin": inst.quote_coin, "priceFilter": {"tickSize": str(inst.tick_size)}}
        if query.category == "linear":
            item.update({"contractType": "LinearPerpetual", "launchTime": "1585526400000", "deliveryTime": "0",
                         "deliveryFeeRate": "", "priceScale": str(inst.price_scale),
                         "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
                         "unifiedMarginTrade": True, "fundingInterval": 480, "settleCoin": inst.quote_coin,
                         "copyTrading": "both", "upperFundingRate": "0.00375", "lowerFundingRate": "-0.00375",
                         "isPreListing": False, "preListingInfo": None, "symbolType": ""})
            item["priceFilter"].update({"minPrice": str(inst.tick_size), "maxPrice": "1999999.80"})
            item["lotSizeFilter"] = {"maxOrderQty": str(inst.max_qty), "minOrderQty": str(inst.min_qty),
                                     "qtyStep": str(inst.qty_step), "minNotionalValue": str(inst.min_notional)}
        else:
            item.update({"innovation": "0", "marginTrading": "utaOnly", "stTag": "0", "symbolType": ""})
            item["lotSizeFilter"] = {"basePrecision": str(inst.qty_step), "minOrderQty": str(inst.min_qty),
                                     "maxOrderQty": str(inst.max_qty), "minOrderAmt": str(inst.min_notional)}
        items.append(item)
    result: dict[str, Any] = {"category": query.category, "list": items[:query.limit]}
    if query.category != "spot":
        result["nextPageCursor"] = ""
    return RestResult(200, envelope(result))


def _orderbook(sim: Simulator, query: requests.OrderbookQuery) -> RestResult:
    low, high, default = BOOK_LIMITS[query.category]
    limit = query.limit if query.limit is not None else default
    if not low <= limit <= high:
        return error(PARAM_ERROR, f"params error: limit must be within [{low}, {high}] for {query.category}")
    if query.symbol not in _symbols(sim, query.category, query.symbol):
        return error(PARAM_ERROR, f"params error: symbol {query.symbol} is not listed in {query.category}")
    # The deepest WS stream's published view and u, so a REST book chains onto its deltas. With no
    # subscriber that stream is not advanced (server.tick), so it catches up first. It holds 200
    # levels a side, so a deeper limit gets those.
    stream = sim.books[(query.category, query.symbol, 200)]
    if not sim.subscribers.get((query.category, stream.topic)):
        stream.refresh()
    inst = stream.market.instrument
    bids = [[inst.price_text(p), inst.qty_text(stream.bids[p])] for p in sorted(stream.bids, reverse=True)[:limit]]
    asks = [[inst.price_text(p), inst.qty_text(stream.asks[p])] for p in sorted(stream.asks)[:limit]]
    now = int(sim.clock() * 1000)
    return RestResult(200, envelope({"s": query.symbol, "a": asks, "b": bids, "ts": now, "u": stream.update_id,
                                     "seq": sim.seq[query.symbol], "cts": now - 2}))


def _tickers(sim: Simulator, query: requests.TickersQuery) -> RestResult:
    rows = []
    for name in _symbols(sim, query.category, query.symbol):
        market, inst = sim.symbols[name], sim.symbols[name].instrument
        prices = [Decimal(t["price"]) for t in sim.trades[name]] or [inst.tick_size * market.last_price]
        last, start = inst.tick_size * market.last_price, inst.start_price
        bid, ask = market.best_bid(), market.best_ask()
        row = {"symbol": name, "lastPrice": inst.price_text(market.last_price),
               "bid1Price": inst.price_text(bid), "bid1Size": inst.qty_text(market.bids[bid]),
               "ask1Price": inst.price_text(ask), "ask1Size": inst.qty_text(market.asks[ask]),
               "prevPrice24h": str(start), "price24hPcnt": f"{(last - start) / start:.6f}",
               "highPrice24h": str(max(prices)), "lowPrice24h": str(min(prices)),
               "turnover24h": text(inst.tick_size * inst.qty_step * market.turnover_ticks),
               "volume24h": inst.qty_text(market.volume)}
        if query.category == "linear":
            mark = inst.price_text((bid + ask) // 2)
            row.update({"indexPrice": mark, "markPrice": mark, "prevPrice1h": str(start), "openInterest": "0",
                        "openInterestValue": "0", "fundingRate": str(sim.config.funding_rate),
                        "nextFundingTime": str(sim.next_funding_ms if sim.next_funding_ms < 2**62 else 0),
                        "predictedDeliveryPrice": "", "basisRate": "", "deliveryFeeRate": "", "deliveryTime": "0",
                        "basis": "", "preOpenPrice": "", "preQty": "", "curPreListingPhase": "",
                        "fundingIntervalHour": str(max(1, round(sim.config.funding_interval_s / 3600))),
                        "basisRateYear": "", "fundingCap": "0.005"})
        else:
            row["usdIndexPrice"] = inst.price_text((bid + ask) // 2)
        rows.append(row)
    return RestResult(200, envelope({"category": query.category, "list": rows}))


def _recent_trades(sim: Simulator, query: requests.RecentTradeQuery) -> RestResult:
    high = 60 if query.category == "spot" else 1000
    limit = query.limit if query.limit is not None else (1 if query.category == "spot" else 500)
    if not 1 <= limit <= high:
        return error(PARAM_ERROR, f"params error: limit must be within [1, {high}] for {query.category}")
    if query.category in ("linear", "inverse", "spot") and query.symbol is None:
        return error(PARAM_ERROR, "params error: symbol is required for spot, linear and inverse")
    names = _symbols(sim, query.category, query.symbol)
    if query.symbol is not None and not names:  # as Bybit answers an unlisted symbol
        return RestResult(200, envelope({"category": "", "list": []}, PARAM_ERROR, "params error: symbol invalid"))
    rows = [t for name in names for t in reversed(sim.trades[name])]
    return RestResult(200, envelope({"category": query.category, "list": rows[:limit]}))


def _kline(sim: Simulator, query: requests.KlineQuery) -> RestResult:
    """Candles of the trades printed since start whose start is within [start, end], newest first:
    [start, open, high, low, close, volume, turnover] strings, as docs/v5/market/kline gives them.
    The same candles the kline streams push (klines.py)."""
    if query.symbol not in _symbols(sim, query.category, query.symbol):
        return error(PARAM_ERROR, f"params error: symbol {query.symbol} is not listed in {query.category}")
    inst = sim.symbols[query.symbol].instrument
    candles = sim.candles[query.symbol].select(query.interval, query.start, query.end)
    rows = [[str(c.start), *bybit_fields(c, inst)] for c in reversed(candles[-query.limit:])]
    return RestResult(200, envelope({"symbol": query.symbol, "category": query.category, "list": rows}))


ROUTES: dict[str, tuple[type, Any]] = {
    "/v5/market/instruments-info": (requests.InstrumentsQuery, _instruments),
    "/v5/market/orderbook": (requests.OrderbookQuery, _orderbook),
    "/v5/market/tickers": (requests.TickersQuery, _tickers),
    "/v5/market/recent-trade": (requests.RecentTradeQuery, _recent_trades),
    "/v5/market/kline": (requests.KlineQuery, _kline),
}
