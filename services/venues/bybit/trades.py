"""Bybit V5 recent public trades (GET /v5/market/recent-trade) → TradeReceived, for ingest's gap fill.

The stream has no replay: a trade printed while ingest was down or reconnecting never comes on
publicTrade again. The venue's REST keeps the newest ones (up to 1000 per symbol for linear and
inverse, 60 for spot), so ingest asks for them on every (re)connect (services/ingest/trades.py).

An annotated linear answer (fields HEAN does not use left out), newest first:

    {"retCode": 0, "result": {"category": "linear", "list": [
        {"execId": "a9b7…",       the stream's `i`: the same trade has the same id both ways
         "symbol": "BTCUSDT",
         "price": "16618.49", "size": "0.00012",
         "side": "Buy",           the taker side, as the stream's `S`
         "time": "1672052955758", ms, the stream's `T`
         "isBlockTrade": false}]}}

The event built here equals the one the stream's parser builds for the same trade (same id recipe,
same fields), so a trade seen both ways is recognised by its id.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx
import orjson

from schemas.events import TradeReceived
from services.domain.ids import market_trade_id

__all__ = ["MAX_LIMIT", "BybitRecentTrades", "RecentTradesRefused", "parse_recent_trades"]

PATH = "/v5/market/recent-trade"
MS = 1_000_000
MAX_LIMIT = {"linear": 1000, "inverse": 1000, "spot": 60, "option": 100}  # rows the venue returns at most


class RecentTradesRefused(ValueError):
    """A recent-trade answer HEAN cannot read: says which row and field, and what was found."""


def parse_recent_trades(answer: Mapping[str, Any], category: str, recv_ns: int,
                        venue: str = "bybit") -> list[TradeReceived]:
    """Every trade of one answer (the whole V5 envelope), oldest first (the venue sends newest first).

    A retCode other than 0 or a malformed row refuses the whole answer: a fill with a hole in its
    middle would be worse than the gap it reports."""
    if answer.get("retCode") != 0:
        raise RecentTradesRefused(f"recent-trade answered retCode {answer.get('retCode')!r}: "
                                  f"{answer.get('retMsg')!r}")
    rows = (answer.get("result") or {}).get("list")
    if not isinstance(rows, list):
        raise RecentTradesRefused(f"Expected result.list in recent-trade, found {type(rows).__name__}")
    trades = []
    for row in reversed(rows):
        try:
            side, symbol, trade_id = row["side"], str(row["symbol"]), str(row["execId"])
            if side not in ("Buy", "Sell"):
                raise ValueError(f"side must be Buy or Sell, got {side!r}")
            trades.append(TradeReceived(
                id=market_trade_id(venue, category, symbol, trade_id), ts_event=int(row["time"]) * MS,
                ts_ingest=recv_ns, origin_ts=recv_ns, venue=venue, category=category, symbol=symbol,
                trade_id=trade_id, side=side, price=Decimal(row["price"]), qty=Decimal(row["size"])))
        except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
            raise RecentTradesRefused(f"recent-trade row {row!r:.200}: {type(exc).__name__}: {exc}") from None
    return trades


class BybitRecentTrades:
    """GET /v5/market/recent-trade of one category at `rest_url` (the simulator serves it too)."""

    venue = "bybit"

    def __init__(self, rest_url: str, category: str) -> None:
        self.rest_url, self.category = rest_url.rstrip("/"), category
        self.limit = MAX_LIMIT.get(category, 60)

    async def read(self, client: httpx.AsyncClient, symbol: str, recv_ns: int) -> list[TradeReceived]:
        """The newest `limit` trades of `symbol`, oldest first. Raises RecentTradesRefused for an
        answer it cannot read and httpx.HTTPError when the venue cannot be reached."""
        response = await client.get(self.rest_url + PATH,
                                    params={"category": self.category, "symbol": symbol, "limit": str(self.limit)})
        try:
            answer = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise RecentTradesRefused(f"recent-trade answered HTTP {response.status_code} with a body that is "
                                      f"not JSON: {response.content[:80]!r}") from None
        return parse_recent_trades(answer, self.category, recv_ns, self.venue)

    async def since(self, client: httpx.AsyncClient, symbol: str, last_trade_id: str,
                    recv_ns: int) -> tuple[list[TradeReceived], bool]:
        """The gap-fill page (services/ingest/resume.py): the newest `limit` trades, and whether
        older ones may exist beyond them (a full page). Bybit answers by recency only, so
        `last_trade_id` cannot narrow the read: older trades may be missing only when the page is
        full and does not hold it (the page is the newest run, so holding it reaches back)."""
        page = await self.read(client, symbol, recv_ns)
        return page, len(page) >= self.limit and all(t.trade_id != last_trade_id for t in page)
