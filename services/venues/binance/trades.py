"""Binance USDⓈ-M aggregate trades by id (GET /fapi/v1/aggTrades) → TradeReceived, for ingest's gap fill.

The aggTrade stream has no replay, but its ids do: each symbol's aggregate trade ids count up by
one, and the REST endpoint answers from any id (`fromId`, inclusive, up to `limit` ≤ 1000, oldest
first). So a reconnecting ingest asks from the last published id + 1 and gets exactly what it
missed, page after page, instead of Bybit's newest-1000 window.

An annotated answer (https://developers.binance.com/docs/derivatives/usds-margined-futures/
market-data/rest-api/Compressed-Aggregate-Trades-List), oldest first:

    [{"a": 26129,          aggregate trade id: the stream's `a`, HEAN's trade_id
      "p": "0.01633102",   price
      "q": "4.70443515",   quantity
      "f": 27781,          first trade id
      "l": 27781,          last trade id
      "T": 1498793709153,  trade time, ms: the stream's `T`
      "m": true}]          the buyer was the maker (the taker sold)
Errors come as HTTP 4xx with {"code": -1121, "msg": "Invalid symbol."} and the like.

Events built here equal the stream parser's for the same trade (services/venues/binance/streams.py:
same id recipe, fields and side), so a trade seen both ways is recognised by its id.
"""

from __future__ import annotations

import itertools
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx
import orjson

from schemas.events import TradeReceived
from services.domain.ids import market_trade_id

__all__ = ["AGG_TRADES_PATH", "MAX_LIMIT", "AggTradesRefused", "BinanceAggTrades", "parse_agg_trades"]

AGG_TRADES_PATH = "/fapi/v1/aggTrades"
MAX_LIMIT = 1000
VENUE, CATEGORY = "binance", "linear"
MS = 1_000_000


class AggTradesRefused(ValueError):
    """An aggTrades answer HEAN cannot read, or one the venue refused: says what was found."""


def parse_agg_trades(rows: Any, symbol: str, recv_ns: int) -> list[TradeReceived]:
    """Every row of one answer as TradeReceived, in the venue's order (ids ascending). A malformed
    row refuses the whole answer: a fill with a hole in its middle would be worse than the gap it reports."""
    if not isinstance(rows, list):
        raise AggTradesRefused(f"Expected a list of aggregate trades for {symbol}, found {type(rows).__name__}: "
                               f"{rows!r:.200}")
    trades = []
    for row in rows:
        try:
            agg_id, maker_buyer = str(int(row["a"])), row["m"]
            if not isinstance(maker_buyer, bool):
                raise TypeError(f"m must be true or false, got {maker_buyer!r}")
            price, qty = Decimal(row["p"]), Decimal(row["q"])
            if not (price.is_finite() and qty.is_finite() and price > 0 and qty > 0):
                raise ValueError(f"price and quantity must be positive, got {row['p']!r} x {row['q']!r}")
            trades.append(TradeReceived(
                id=market_trade_id(VENUE, CATEGORY, symbol, agg_id), ts_event=int(row["T"]) * MS, ts_ingest=recv_ns,
                origin_ts=recv_ns, venue=VENUE, category=CATEGORY, symbol=symbol, trade_id=agg_id,
                side="Sell" if maker_buyer else "Buy", price=price, qty=qty))
        except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
            raise AggTradesRefused(f"aggTrades row {row!r:.200}: {type(exc).__name__}: {exc}") from None
    for before, after in itertools.pairwise(trades):
        if int(after.trade_id) <= int(before.trade_id):
            raise AggTradesRefused(f"aggTrades of {symbol} not in ascending id order: {before.trade_id} then "
                                   f"{after.trade_id}")
    return trades


class BinanceAggTrades:
    """GET /fapi/v1/aggTrades at `rest_url` (fapi.binance.com or the simulator's Binance dialect).

    `since` reads what came after a published id: at most `max_pages` pages of `limit`. Beyond
    that it gives the newest page only and says the fill is not complete, so the shell reports a
    gap (fill_limit) rather than spend minutes catching up while live trades queue."""

    venue = VENUE
    category = CATEGORY

    def __init__(self, rest_url: str, max_pages: int = 20, limit: int = MAX_LIMIT) -> None:
        if not 1 <= limit <= MAX_LIMIT or max_pages < 1:
            raise ValueError(f"limit must be within [1, {MAX_LIMIT}] and max_pages positive, were {limit}, "
                             f"{max_pages}")
        self.rest_url, self.max_pages, self.limit = rest_url.rstrip("/"), max_pages, limit

    async def page(self, client: httpx.AsyncClient, symbol: str, recv_ns: int,
                   from_id: int | None = None) -> list[TradeReceived]:
        """One answer: from `from_id` (inclusive) on, or the newest `limit` without one. Raises
        AggTradesRefused for a refusal or an unreadable answer, httpx.HTTPError when unreachable."""
        params: dict[str, str] = {"symbol": symbol, "limit": str(self.limit)}
        if from_id is not None:
            params["fromId"] = str(from_id)
        response = await client.get(self.rest_url + AGG_TRADES_PATH, params=params)
        try:
            answer = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise AggTradesRefused(f"aggTrades answered HTTP {response.status_code} with a body that is not JSON: "
                                   f"{response.content[:80]!r}") from None
        if response.status_code != 200 or isinstance(answer, dict):
            raise AggTradesRefused(f"aggTrades of {symbol} answered HTTP {response.status_code}: {answer!r:.200}")
        return parse_agg_trades(answer, symbol, recv_ns)

    async def since(self, client: httpx.AsyncClient, symbol: str, last_trade_id: str,
                    recv_ns: int) -> tuple[list[TradeReceived], bool]:
        """The trades after `last_trade_id`, oldest first, and whether older ones newer than it may be
        missing from them (the gap-fill page contract: see services/ingest/resume.py).

        First the newest page: if it reaches back to the id after the last, that is all. Otherwise
        the ids in between are read forward from last + 1, if that takes at most `max_pages` pages;
        a venue that no longer has last + 1 (aged out) answers from a later id, which is a gap too."""
        after = int(last_trade_id)
        newest = await self.page(client, symbol, recv_ns)
        if not newest or int(newest[0].trade_id) <= after + 1:
            return [t for t in newest if int(t.trade_id) > after], False
        missing = int(newest[0].trade_id) - after - 1
        if -(-missing // self.limit) > self.max_pages:
            return newest, True
        trades: list[TradeReceived] = []
        next_id = after + 1
        while next_id < int(newest[0].trade_id):
            page = await self.page(client, symbol, recv_ns, next_id)
            if not page or int(page[0].trade_id) != next_id:
                return newest, True  # the venue does not have next_id (any more): a hole before newest
            trades += [t for t in page if int(t.trade_id) < int(newest[0].trade_id)]
            next_id = int(page[-1].trade_id) + 1
        return trades + newest, False
