"""GET /fapi/... of the simulator's Binance dialect: market data in Binance's rows and errors.

Served from what the dialect's market printed, so the figures agree with its streams:

    /fapi/v1/ping · /fapi/v1/time · /fapi/v1/exchangeInfo
    /fapi/v1/depth?symbol&limit=5|10|20|50|100|500|1000        the book now, {lastUpdateId, E, T, bids, asks}
    /fapi/v1/aggTrades?symbol[&fromId][&startTime][&endTime][&limit=1..1000]   the aggTrade stream's rows
    /fapi/v1/trades?symbol[&limit=1..1000]                     the newest trades inside those aggregates
    /fapi/v1/klines?symbol&interval[&startTime][&endTime][&limit=1..1500]   candles of the aggregates
    /fapi/v1/continuousKlines?pair&contractType&interval[...]  the same (PERPETUAL; no other contract is listed)
    /fapi/v1/ticker/24hr[?symbol]                              rolling 24 h by minute, as Binance's futures
    /fapi/v1/ticker/price, /fapi/v2/ticker/price[?symbol]      the last aggregate trade's price
    /fapi/v1/ticker/bookTicker[?symbol]                        the last bookTicker event sent
    /fapi/v1/premiumIndex[?symbol]                             mark = index = the mid, the funding schedule
    /fapi/v1/fundingRate[?symbol][&startTime][&endTime][&limit=1..1000]   the settlements, oldest first

Without a symbol the tickers and premiumIndex answer every symbol as a list. Errors as Binance
sends them, HTTP 400 {"code", "msg"}: -1102 a mandatory parameter missing, -1121 an unknown symbol,
-1100 a number with other characters, -1120 an unknown interval, -1130 a limit out of range, -1023
startTime after endTime, -1127 an aggTrades window over an hour. A period without a trade has no
candle (Binance prints one at the last price): the simulator's market trades every step or so.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from services.exchange_sim.klines import DAY_MS, MINUTE_MS, Candle
from services.exchange_sim.market import Instrument, SymbolMarket
from services.exchange_sim.rest import RestResult

if TYPE_CHECKING:
    from services.exchange_sim.binance import AggTrade, BinanceVenue

DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)
HOUR_MS = 3_600_000
PERPETUAL_DELIVERY_MS = 4_133_404_800_000  # what Binance gives a perpetual as its delivery date (2100-12-25)
CONTRACT_TYPES = ("PERPETUAL", "CURRENT_MONTH", "NEXT_MONTH", "CURRENT_QUARTER", "NEXT_QUARTER")
INTEREST_RATE = "0.00010000"  # Binance's fixed interest component of funding


class Refused(Exception):
    """A request Binance refuses: its code, message and HTTP status."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.result = RestResult(status, {"code": code, "msg": msg})


def answer(venue: BinanceVenue, path: str, query: dict[str, str]) -> RestResult:
    """Dispatch one GET; unknown paths 404 with -5000 as fapi does."""
    route = ROUTES.get(path)
    if route is None:
        return RestResult(404, {"code": -5000, "msg": f"Path {path}, Method GET is invalid"})
    try:
        return RestResult(200, route(venue, query))
    except Refused as refused:
        return refused.result


# ---------------------------------------------------------------- parameters

def _symbol(venue: BinanceVenue, query: dict[str, str], name: str = "symbol") -> str:
    symbol = query.get(name, "")
    if not symbol:
        raise Refused(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
    if symbol not in venue.markets:
        raise Refused(-1121, "Invalid symbol.")
    return symbol


def _symbols(venue: BinanceVenue, query: dict[str, str]) -> list[str] | None:
    """The one symbol asked for, or None when the parameter is absent (then every symbol, as a list)."""
    return [_symbol(venue, query)] if "symbol" in query else None


def _number(query: dict[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19 or int(raw) >= 2**63:  # Binance's are int64
        raise Refused(-1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.")
    return int(raw)


def _limit(query: dict[str, str], default: int, high: int) -> int:
    limit = _number(query, "limit")
    if limit is None:
        return default
    if not 1 <= limit <= high:
        raise Refused(-1130, "Data sent for parameter 'limit' is not valid.")
    return limit


def _window(query: dict[str, str]) -> tuple[int | None, int | None]:
    start, end = _number(query, "startTime"), _number(query, "endTime")
    if start is not None and end is not None and start > end:
        raise Refused(-1023, "Start time is greater than end time.")
    return start, end


def _pick(rows: list[Any], start: int | None, limit: int) -> list[Any]:
    """Binance's paging of a time-ordered list already cut to [start, end]: from startTime the
    first `limit`, otherwise the last `limit`."""
    return rows[:limit] if start is not None else rows[-limit:]


# ---------------------------------------------------------------- number text

def _fixed(value: Decimal, places: int) -> str:
    return f"{value:.{places}f}"


def _money(inst: Instrument, ticks_steps: int) -> str:
    """A price x quantity in ticks x lots, at the scale of the product."""
    return _fixed(inst.tick_size * inst.qty_step * ticks_steps, inst.price_scale + inst.qty_scale)


def mark_price(market: SymbolMarket) -> str:
    """The dialect's mark price, the mid, at 8 decimals as premiumIndex prints it; the last price
    while an order has just eaten one side whole (as the engine's mark_ticks), never an error."""
    inst = market.instrument
    if not (market.bids and market.asks):
        return _fixed(inst.tick_size * market.last_price, 8)
    return _fixed(inst.tick_size * (market.best_bid() + market.best_ask()) / 2, 8)


# ---------------------------------------------------------------- trades

def agg_row(row: AggTrade) -> dict[str, Any]:
    """An aggregate trade as Binance's REST row (the stream's payload adds e, E and s)."""
    a, price, qty, first, last, ts, maker_buyer = row
    return {"a": a, "p": price, "q": qty, "f": first, "l": last, "T": ts, "m": maker_buyer}


def _within(row: AggTrade, start: int | None, end: int | None) -> bool:
    return (start is None or row[5] >= start) and (end is None or row[5] <= end)


def _agg_trades(venue: BinanceVenue, query: dict[str, str]) -> list[dict[str, Any]]:
    """fromId and times together are accepted (Binance warns they may time out): the id bounds the
    start, the times filter. Without either, the newest (up to endTime if given)."""
    symbol = _symbol(venue, query)
    from_id = _number(query, "fromId")
    start, end = _number(query, "startTime"), _number(query, "endTime")
    limit = _limit(query, 500, 1000)
    if start is not None and end is not None and (end < start or end - start >= HOUR_MS):
        raise Refused(-1127, "More than 1 hours between startTime and endTime.")
    rows = venue.agg_trades[symbol]
    picked: list[AggTrade]
    if from_id is not None:
        skip = min(max(0, from_id - rows[0][0]), len(rows)) if rows else 0
        picked = [r for r in itertools.islice(rows, skip, None) if _within(r, start, end)][:limit]
    elif start is not None:
        picked = [r for r in rows if _within(r, start, end)][:limit]
    else:
        picked = [r for r in rows if _within(r, None, end)][-limit:]
    venue.stats["agg_trade_reads"] += 1
    return [agg_row(r) for r in picked]


def split_trades(inst: Instrument, row: AggTrade) -> list[dict[str, Any]]:
    """The trades f..l of one aggregate as /fapi/v1/trades rows: its lots shared out in order, the
    first ones one lot larger (the <symbol>@trade stream sends the same trades)."""
    _, price, qty, first, last, ts, maker_buyer = row
    count, lots = last - first + 1, int(Decimal(qty) / inst.qty_step)
    size, larger = divmod(lots, count)
    ticks = int(Decimal(price) / inst.tick_size)
    trades = []
    for n in range(count):
        steps = size + (1 if n < larger else 0)
        trades.append({"id": first + n, "price": price, "qty": inst.qty_text(steps),
                       "quoteQty": _money(inst, ticks * steps), "time": ts, "isBuyerMaker": maker_buyer})
    return trades


def _trades(venue: BinanceVenue, query: dict[str, str]) -> list[dict[str, Any]]:
    symbol = _symbol(venue, query)
    limit = _limit(query, 500, 1000)
    newest: list[dict[str, Any]] = []
    for row in reversed(venue.agg_trades[symbol]):
        newest[:0] = split_trades(venue.markets[symbol].instrument, row)
        if len(newest) >= limit:
            break
    return newest[-limit:]


# ---------------------------------------------------------------- klines

def _kline_row(inst: Instrument, c: Candle) -> list[Any]:
    return [c.start, inst.price_text(c.open), inst.price_text(c.high), inst.price_text(c.low),
            inst.price_text(c.close), inst.qty_text(c.volume), c.end, _money(inst, c.turnover), c.trades,
            inst.qty_text(c.buy_volume), _money(inst, c.buy_turnover), "0"]


def kline_event(inst: Instrument, interval: str, c: Candle, closed: bool, ts_ms: int) -> dict[str, Any]:
    """The <symbol>@kline_<interval> payload: the candle's figures as klines rows give them."""
    return {"e": "kline", "E": ts_ms, "s": inst.symbol, "k": {
        "t": c.start, "T": c.end, "s": inst.symbol, "i": interval, "f": c.first_id, "L": c.last_id,
        "o": inst.price_text(c.open), "c": inst.price_text(c.close), "h": inst.price_text(c.high),
        "l": inst.price_text(c.low), "v": inst.qty_text(c.volume), "n": c.trades, "x": closed,
        "q": _money(inst, c.turnover), "V": inst.qty_text(c.buy_volume), "Q": _money(inst, c.buy_turnover),
        "B": "0"}}


def _candles(venue: BinanceVenue, symbol: str, query: dict[str, str]) -> list[list[Any]]:
    interval = query.get("interval", "")
    if not interval:
        raise Refused(-1102, "Mandatory parameter 'interval' was not sent, was empty/null, or malformed.")
    if interval not in venue.candles[symbol].spans:
        raise Refused(-1120, "Invalid interval.")
    start, end = _window(query)
    limit = _limit(query, 500, 1500)
    inst = venue.markets[symbol].instrument
    return [_kline_row(inst, c) for c in _pick(venue.candles[symbol].select(interval, start, end), start, limit)]


def _klines(venue: BinanceVenue, query: dict[str, str]) -> list[list[Any]]:
    return _candles(venue, _symbol(venue, query), query)


def _continuous_klines(venue: BinanceVenue, query: dict[str, str]) -> list[list[Any]]:
    """A pair's perpetual is the symbol itself; the dialect lists no delivery contracts (empty)."""
    pair = _symbol(venue, query, "pair")
    contract = query.get("contractType", "")
    if not contract:
        raise Refused(-1102, "Mandatory parameter 'contractType' was not sent, was empty/null, or malformed.")
    if contract not in CONTRACT_TYPES:
        raise Refused(-1130, "Data sent for parameter 'contractType' is not valid.")
    rows = _candles(venue, pair, query)
    return rows if contract == "PERPETUAL" else []


# ---------------------------------------------------------------- tickers

def _each(venue: BinanceVenue, query: dict[str, str],
          row: Callable[[BinanceVenue, str], dict[str, Any]]) -> dict[str, Any] | list[dict[str, Any]]:
    symbols = _symbols(venue, query)
    if symbols is None:
        return [row(venue, s) for s in venue.markets]
    return row(venue, symbols[0])


def _last(venue: BinanceVenue, symbol: str) -> tuple[str, int]:
    """The last aggregate trade's price and time; before any, the market's price and the clock."""
    rows = venue.agg_trades[symbol]
    if rows:
        return rows[-1][1], rows[-1][5]
    market = venue.markets[symbol]
    return market.instrument.price_text(market.last_price), venue.sim.venue_ms()


def _day(venue: BinanceVenue, symbol: str) -> dict[str, Any]:
    """The 24 h rolling window from the minute of now - 24 h, as Binance's futures compute it."""
    market = venue.markets[symbol]
    inst = market.instrument
    now = venue.sim.venue_ms()
    opened = (now - DAY_MS) - (now - DAY_MS) % MINUTE_MS
    minutes = venue.candles[symbol].select("1m", opened, None)
    last_price, last_ms = _last(venue, symbol)
    if not minutes:
        zero = inst.price_text(0)
        return {"symbol": symbol, "priceChange": zero, "priceChangePercent": "0.000", "weightedAvgPrice": zero,
                "lastPrice": last_price, "lastQty": inst.qty_text(0), "openPrice": last_price,
                "highPrice": last_price, "lowPrice": last_price, "volume": inst.qty_text(0),
                "quoteVolume": _money(inst, 0), "openTime": opened, "closeTime": now, "firstId": -1,
                "lastId": -1, "count": 0}
    volume, turnover = sum(c.volume for c in minutes), sum(c.turnover for c in minutes)
    open_ticks, close_ticks = minutes[0].open, minutes[-1].close
    change = inst.tick_size * (close_ticks - open_ticks)
    last_trade = split_trades(inst, venue.agg_trades[symbol][-1])[-1]
    return {"symbol": symbol, "priceChange": _fixed(change, inst.price_scale),
            "priceChangePercent": _fixed(100 * change / (inst.tick_size * open_ticks), 3),
            "weightedAvgPrice": _fixed(inst.tick_size * turnover / volume, inst.price_scale),
            "lastPrice": last_price, "lastQty": last_trade["qty"], "openPrice": inst.price_text(open_ticks),
            "highPrice": inst.price_text(max(c.high for c in minutes)),
            "lowPrice": inst.price_text(min(c.low for c in minutes)), "volume": inst.qty_text(volume),
            "quoteVolume": _money(inst, turnover), "openTime": opened, "closeTime": last_ms,
            "firstId": minutes[0].first_id, "lastId": minutes[-1].last_id, "count": sum(c.trades for c in minutes)}


def _price(venue: BinanceVenue, symbol: str) -> dict[str, Any]:
    price, at = _last(venue, symbol)
    return {"symbol": symbol, "price": price, "time": at}


def _book_ticker(venue: BinanceVenue, symbol: str) -> dict[str, Any]:
    event = venue.book_tickers.get(symbol) or venue.book_ticker(symbol, venue.sim.venue_ms())
    return {"symbol": symbol, "bidPrice": event["b"], "bidQty": event["B"], "askPrice": event["a"],
            "askQty": event["A"], "time": event["E"], "lastUpdateId": event["u"]}


def _premium(venue: BinanceVenue, symbol: str) -> dict[str, Any]:
    sim = venue.sim
    mark = mark_price(venue.markets[symbol])
    return {"symbol": symbol, "markPrice": mark, "indexPrice": mark, "estimatedSettlePrice": mark,
            "lastFundingRate": _fixed(sim.config.funding_rate, 8), "interestRate": INTEREST_RATE,
            "nextFundingTime": sim.next_funding_ms if sim.next_funding_ms < 2**62 else 0, "time": sim.venue_ms()}


def _funding_rates(venue: BinanceVenue, query: dict[str, str]) -> list[dict[str, Any]]:
    """The settlements of one symbol or all, oldest first; default the newest 100, at most 1000."""
    symbols = _symbols(venue, query) or list(venue.markets)
    start, end = _window(query)
    limit = _limit(query, 100, 1000)
    rows = sorted(((at, symbol, rate, mark) for symbol in symbols for at, rate, mark in venue.funding[symbol]
                   if (start is None or at >= start) and (end is None or at <= end)))
    return [{"symbol": symbol, "fundingRate": rate, "fundingTime": at, "markPrice": mark}
            for at, symbol, rate, mark in _pick(rows, start, limit)]


# ---------------------------------------------------------------- book and rules

def _depth(venue: BinanceVenue, query: dict[str, str]) -> dict[str, Any]:
    symbol = _symbol(venue, query)
    raw = query.get("limit", "500")
    if not raw.isascii() or not raw.isdigit() or len(raw) > 4 or int(raw) not in DEPTH_LIMITS:
        raise Refused(-1130, f"Data sent for parameter 'limit' is not valid; valid limits are {list(DEPTH_LIMITS)}.")
    venue.stats["depth_snapshots"] += 1
    market, limit = venue.markets[symbol], int(raw)
    inst = market.instrument
    now = venue.sim.venue_ms()
    return {"lastUpdateId": venue.update_ids[symbol], "E": now, "T": now - 1,
            "bids": [[inst.price_text(p), inst.qty_text(market.bids[p])]
                     for p in sorted(market.bids, reverse=True)[:limit]],
            "asks": [[inst.price_text(p), inst.qty_text(market.asks[p])] for p in sorted(market.asks)[:limit]]}


def exchange_info(markets: dict[str, SymbolMarket], now_ms: int) -> dict[str, Any]:
    """GET /fapi/v1/exchangeInfo: the venue's limits and each symbol's rules in Binance's shape.

    The rules are the simulator's own instruments (the same as its Bybit dialect's
    instruments-info): one venue's rules, two dialects, so a client of either reads the same."""
    symbols = []
    for name, market in markets.items():
        inst = market.instrument
        tick, step = str(inst.tick_size), str(inst.qty_step)
        symbols.append({
            "symbol": name, "pair": name, "contractType": "PERPETUAL", "deliveryDate": PERPETUAL_DELIVERY_MS,
            "onboardDate": 1_569_398_400_000, "status": "TRADING", "maintMarginPercent": "2.5000",
            "requiredMarginPercent": "5.0000", "baseAsset": inst.base_coin, "quoteAsset": inst.quote_coin,
            "marginAsset": inst.quote_coin, "pricePrecision": inst.price_scale,
            "quantityPrecision": inst.qty_scale, "baseAssetPrecision": 8, "quotePrecision": 8,
            "underlyingType": "COIN", "underlyingSubType": [], "settlePlan": 0, "triggerProtect": "0.0500",
            "liquidationFee": "0.012500", "marketTakeBound": "0.05", "maxMoveOrderLimit": 10000,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "1999999.80", "tickSize": tick},
                {"filterType": "LOT_SIZE", "minQty": str(inst.min_qty), "maxQty": str(inst.max_qty),
                 "stepSize": step},
                {"filterType": "MARKET_LOT_SIZE", "minQty": str(inst.min_qty), "maxQty": str(inst.max_qty),
                 "stepSize": step},
                {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
                {"filterType": "MIN_NOTIONAL", "notional": str(inst.min_notional)},
                {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500",
                 "multiplierDecimal": "4"}],
            "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET",
                           "TRAILING_STOP_MARKET"],
            "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"]})
    return {
        "timezone": "UTC", "serverTime": now_ms, "futuresType": "U_MARGINED",
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
            {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300}],
        "exchangeFilters": [],
        "assets": sorted(({"asset": a, "marginAvailable": True, "autoAssetExchange": "-10000"}
                          for a in {m.instrument.quote_coin for m in markets.values()}), key=lambda x: x["asset"]),
        "symbols": symbols}


Route = Callable[["BinanceVenue", dict[str, str]], Any]
ROUTES: dict[str, Route] = {
    "/fapi/v1/ping": lambda venue, query: {},
    "/fapi/v1/time": lambda venue, query: {"serverTime": venue.sim.venue_ms()},
    "/fapi/v1/exchangeInfo": lambda venue, query: exchange_info(venue.markets, venue.sim.venue_ms()),
    "/fapi/v1/depth": _depth,
    "/fapi/v1/aggTrades": _agg_trades,
    "/fapi/v1/trades": _trades,
    "/fapi/v1/klines": _klines,
    "/fapi/v1/continuousKlines": _continuous_klines,
    "/fapi/v1/ticker/24hr": lambda venue, query: _each(venue, query, _day),
    "/fapi/v1/ticker/price": lambda venue, query: _each(venue, query, _price),
    "/fapi/v2/ticker/price": lambda venue, query: _each(venue, query, _price),
    "/fapi/v1/ticker/bookTicker": lambda venue, query: _each(venue, query, _book_ticker),
    "/fapi/v1/premiumIndex": lambda venue, query: _each(venue, query, _premium),
    "/fapi/v1/fundingRate": _funding_rates,
}
