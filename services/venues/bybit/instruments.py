"""Bybit V5 instruments-info → domain Instruments (GET /v5/market/instruments-info).

An annotated linear item (bybit-v5.md §3.5; fields HEAN does not use left out):

    {"symbol": "BTCUSDT", "contractType": "LinearPerpetual", "status": "Trading",
     "baseCoin": "BTC", "quoteCoin": "USDT", "settleCoin": "USDT",
     "priceFilter": {"minPrice": "0.10", "maxPrice": "1999999.80", "tickSize": "0.10"},
     "lotSizeFilter": {"maxOrderQty": "1190.000", "minOrderQty": "0.001", "qtyStep": "0.001",
                       "minNotionalValue": "5"}}

Spot items name the lot step `basePrecision` and the minimum notional `minOrderAmt`. The endpoint
carries no fees (they are per account: GET /v5/account/fee-rate), so the parser takes the rates
to use and defaults to Bybit's published base tier; quantities of linear contracts are in the
base coin, so the contract multiplier is 1. `BybitInstruments` is the reference-data part of the
venue port (services/venues/port.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx
import orjson

from services.domain.instrument import Instrument, InstrumentId, InstrumentKind
from services.venues.port import InstrumentsRefused

__all__ = ["BybitInstruments", "InstrumentsRefused", "from_bybit", "parse_instruments"]

VENUE = "bybit"
PATH = "/v5/market/instruments-info"
BASE_TIER_FEES: dict[str, tuple[Decimal, Decimal]] = {
    "linear": (Decimal("0.0002"), Decimal("0.00055")),  # maker, taker (Bybit's non-VIP derivatives rates)
    "spot": (Decimal("0.001"), Decimal("0.001")),
}
KINDS: dict[str, InstrumentKind] = {"linear": "linear_perpetual", "spot": "spot"}


def _decimal(item: Mapping[str, Any], group: str, name: str) -> Decimal:
    raw = (item.get(group) or {}).get(name)
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise InstrumentsRefused(f"Expected a decimal string in {group}.{name} of {item.get('symbol')!r}, "
                                 f"found {raw!r}; check the venue's instruments-info") from None
    if not value.is_finite():
        raise InstrumentsRefused(f"Expected a finite {group}.{name} of {item.get('symbol')!r}, found {raw!r}")
    return value


def from_bybit(category: str, item: Mapping[str, Any],
               fees: tuple[Decimal, Decimal] | None = None) -> Instrument:
    """One instruments-info item as an Instrument; `fees` are (maker, taker) rates."""
    if category not in KINDS:
        raise InstrumentsRefused(f"Expected category linear or spot, found {category!r}")
    if category == "linear" and item.get("contractType", "LinearPerpetual") != "LinearPerpetual":
        raise InstrumentsRefused(f"Expected a LinearPerpetual, found {item.get('contractType')!r} "
                                 f"for {item.get('symbol')!r}; dated futures are not supported")
    symbol = item.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        raise InstrumentsRefused(f"Expected a symbol in every instruments-info item, found {symbol!r}")
    maker, taker = fees or BASE_TIER_FEES[category]
    linear = category == "linear"
    try:
        return Instrument(
            id=InstrumentId(VENUE, symbol), kind=KINDS[category], base_coin=str(item.get("baseCoin", "")),
            quote_coin=str(item.get("quoteCoin", "")),
            tick_size=_decimal(item, "priceFilter", "tickSize"),
            lot_step=_decimal(item, "lotSizeFilter", "qtyStep" if linear else "basePrecision"),
            min_qty=_decimal(item, "lotSizeFilter", "minOrderQty"),
            max_qty=_decimal(item, "lotSizeFilter", "maxOrderQty"),
            min_notional=_decimal(item, "lotSizeFilter", "minNotionalValue" if linear else "minOrderAmt"),
            maker_fee=maker, taker_fee=taker, status=str(item.get("status", "Trading")))
    except ValueError as exc:
        if isinstance(exc, InstrumentsRefused):
            raise
        raise InstrumentsRefused(str(exc)) from None


def parse_instruments(answer: Mapping[str, Any], fees: Mapping[str, tuple[Decimal, Decimal]] | None = None,
                      ) -> list[Instrument]:
    """Every instrument of one instruments-info answer (the whole V5 envelope), in the venue's order.

    `fees` maps a symbol to its (maker, taker) rates where the account's differ from the base tier.
    A retCode other than 0 or a malformed item is refused whole: a half-read table would let risk
    approve orders on rules that were never read."""
    if answer.get("retCode") != 0:
        raise InstrumentsRefused(f"instruments-info answered retCode {answer.get('retCode')!r}: "
                                 f"{answer.get('retMsg')!r}")
    result = answer.get("result") or {}
    category = result.get("category")
    items = result.get("list")
    if not isinstance(items, list):
        raise InstrumentsRefused(f"Expected result.list in instruments-info, found {type(items).__name__}")
    fees = fees or {}
    return [from_bybit(str(category), item, fees.get(str(item.get("symbol")))) for item in items]


class BybitInstruments:
    """The reference-data part of the venue port for Bybit V5: GET /v5/market/instruments-info of
    one category at `rest_url` (the simulator serves it too), every page of the answer."""

    venue = VENUE

    def __init__(self, rest_url: str, category: str) -> None:
        self.rest_url, self.category = rest_url.rstrip("/"), category

    async def read(self, client: httpx.AsyncClient, symbols: Sequence[str]) -> list[Instrument]:
        found: list[Instrument] = []
        cursor = ""
        while True:
            params = {"category": self.category, "limit": "1000", **({"cursor": cursor} if cursor else {})}
            response = await client.get(self.rest_url + PATH, params=params)
            try:
                answer = orjson.loads(response.content)
            except orjson.JSONDecodeError:
                raise InstrumentsRefused(f"instruments-info answered HTTP {response.status_code} with a body "
                                         f"that is not JSON: {response.content[:80]!r}") from None
            found += [i for i in parse_instruments(answer) if i.symbol in symbols]
            cursor = str((answer.get("result") or {}).get("nextPageCursor") or "")
            if not cursor:
                return found
