"""Public Bybit V5 REST of the simulator, with the venue's envelope and error codes.

Transport-free: the server passes path and query and gets a status and a JSON body back, so the
same handlers can sit behind any HTTP front (the private, signed endpoints of issue 4 need POST).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from services.exchange_sim.server import Simulator

PARAM_ERROR = 10001
ROUTE_NOT_FOUND = 10017


@dataclass(frozen=True, slots=True)
class RestResult:
    status: int
    body: dict[str, Any]


def envelope(
    result: dict[str, Any], ret_code: int = 0, ret_msg: str = "OK", now_ms: int | None = None
) -> dict[str, Any]:
    """{"retCode", "retMsg", "result", "retExtInfo", "time"} as every V5 response (bybit-v5.md §3.4)."""
    return {"retCode": ret_code, "retMsg": ret_msg, "result": result, "retExtInfo": {},
            "time": now_ms if now_ms is not None else int(time.time() * 1000)}


def error(ret_code: int, ret_msg: str, status: int = 200) -> RestResult:
    return RestResult(status, envelope({}, ret_code, ret_msg))


def public_rest(sim: Simulator, path: str, query: dict[str, str]) -> RestResult:
    """Dispatch GET /v5/market/*; unknown paths get 404 with retCode 10017."""
    if path == "/v5/market/time":
        now_ns = int(sim.clock() * 1e9)
        return RestResult(200, envelope({"timeSecond": str(now_ns // 10**9), "timeNano": str(now_ns)},
                                        now_ms=now_ns // 10**6))
    if path == "/v5/market/instruments-info":
        return _instruments(sim, query)
    if path == "/v5/market/orderbook":
        return _orderbook(sim, query)
    return error(ROUTE_NOT_FOUND, "Route not found.", status=404)


def _category(query: dict[str, str]) -> str | None:
    category = query.get("category")
    return category if category in ("linear", "spot") else None


def _instruments(sim: Simulator, query: dict[str, str]) -> RestResult:
    category = _category(query)
    if category is None:
        return error(PARAM_ERROR, "params error: category must be linear or spot")
    symbol = query.get("symbol")
    if symbol is not None and symbol not in sim.symbols:
        return RestResult(200, envelope({"category": category, "list": [], "nextPageCursor": ""}))
    items = []
    for name, market in sim.symbols.items():
        if symbol and name != symbol:
            continue
        inst = market.instrument
        item: dict[str, Any] = {"symbol": name, "status": "Trading", "baseCoin": inst.base_coin,
                                "quoteCoin": inst.quote_coin, "priceFilter": {"tickSize": str(inst.tick_size)}}
        if category == "linear":
            item.update({"contractType": "LinearPerpetual", "priceScale": str(inst.price_scale),
                         "settleCoin": inst.quote_coin})
            item["priceFilter"].update({"minPrice": str(inst.tick_size), "maxPrice": "1999999.80"})
            item["lotSizeFilter"] = {"maxOrderQty": str(inst.max_qty), "minOrderQty": str(inst.min_qty),
                                     "qtyStep": str(inst.qty_step), "minNotionalValue": str(inst.min_notional)}
        else:
            item["lotSizeFilter"] = {"basePrecision": str(inst.qty_step), "minOrderQty": str(inst.min_qty),
                                     "maxOrderQty": str(inst.max_qty), "minOrderAmt": str(inst.min_notional)}
        items.append(item)
    result: dict[str, Any] = {"category": category, "list": items}
    if category == "linear":
        result["nextPageCursor"] = ""
    return RestResult(200, envelope(result))


def _orderbook(sim: Simulator, query: dict[str, str]) -> RestResult:
    category = _category(query)
    symbol = query.get("symbol", "")
    if category is None or symbol not in sim.symbols:
        return error(PARAM_ERROR, "params error: category (linear|spot) and a listed symbol are required")
    try:
        limit = int(query.get("limit", "25" if category == "linear" else "1"))
    except ValueError:
        return error(PARAM_ERROR, "params error: limit must be an integer")
    if not 1 <= limit <= 200:
        return error(PARAM_ERROR, "params error: limit must be within [1, 200]")
    # The deepest WS stream's published view and u, so a REST book chains onto its deltas. With no
    # subscriber that stream is not advanced (server.tick), so it catches up first.
    stream = sim.books[(category, symbol, 200)]
    if not sim.subscribers.get((category, stream.topic)):
        stream.refresh()
    inst = stream.market.instrument
    bids = [[inst.price_text(p), inst.qty_text(stream.bids[p])] for p in sorted(stream.bids, reverse=True)[:limit]]
    asks = [[inst.price_text(p), inst.qty_text(stream.asks[p])] for p in sorted(stream.asks)[:limit]]
    now = int(sim.clock() * 1000)
    return RestResult(200, envelope({"s": symbol, "a": asks, "b": bids, "ts": now, "u": stream.update_id,
                                     "seq": sim.seq[symbol], "cts": now - 2}))
