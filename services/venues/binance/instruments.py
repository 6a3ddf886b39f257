"""Binance USDⓈ-M futures exchangeInfo → domain Instruments (GET /fapi/v1/exchangeInfo).

The endpoint takes no parameters and lists every symbol. An annotated item (fields HEAN does not
use left out):

    {"symbol": "BTCUSDT", "contractType": "PERPETUAL", "status": "TRADING",
     "baseAsset": "BTC", "quoteAsset": "USDT", "marginAsset": "USDT",
     "filters": [{"filterType": "PRICE_FILTER", "minPrice": "261.10", "maxPrice": "809484", "tickSize": "0.10"},
                 {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "1000", "stepSize": "0.001"},
                 {"filterType": "MIN_NOTIONAL", "notional": "100"}, ...]}

Rules come from the filters by type, never by position. Quantities of USDⓈ-M contracts are in
the base asset (multiplier 1). The endpoint carries no fees (per account:
GET /fapi/v1/commissionRate), so the parser takes the rates to use and defaults to Binance's
published base tier. Only perpetuals are instruments here: a dated contract is refused by name.
`BinanceInstruments` is the reference-data part of the venue port (services/venues/port.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx
import orjson

from services.domain.instrument import Instrument, InstrumentId
from services.venues.port import InstrumentsRefused

__all__ = ["BinanceInstruments", "from_binance", "parse_exchange_info"]

VENUE = "binance"
PATH = "/fapi/v1/exchangeInfo"
BASE_TIER_FEES = (Decimal("0.0002"), Decimal("0.0005"))  # maker, taker: USDⓈ-M futures, regular user
STATUSES = {"TRADING": "Trading"}  # the domain keeps Bybit's words; other Binance states pass as they are


def _filter(item: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for entry in item.get("filters") or ():
        if isinstance(entry, Mapping) and entry.get("filterType") == kind:
            return entry
    raise InstrumentsRefused(f"Expected a {kind} filter for {item.get('symbol')!r} in exchangeInfo, found none")


def _decimal(item: Mapping[str, Any], kind: str, name: str) -> Decimal:
    raw = _filter(item, kind).get(name)
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise InstrumentsRefused(f"Expected a decimal string in {kind}.{name} of {item.get('symbol')!r}, "
                                 f"found {raw!r}; check the venue's exchangeInfo") from None
    if not value.is_finite():
        raise InstrumentsRefused(f"Expected a finite {kind}.{name} of {item.get('symbol')!r}, found {raw!r}")
    return value


def from_binance(item: Mapping[str, Any], fees: tuple[Decimal, Decimal] | None = None) -> Instrument:
    """One exchangeInfo symbol as an Instrument; `fees` are (maker, taker) rates."""
    symbol = item.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        raise InstrumentsRefused(f"Expected a symbol in every exchangeInfo item, found {symbol!r}")
    if item.get("contractType") != "PERPETUAL":
        raise InstrumentsRefused(f"Expected a PERPETUAL, found {item.get('contractType')!r} for {symbol!r}; "
                                 "dated futures are not supported")
    maker, taker = fees or BASE_TIER_FEES
    status = str(item.get("status", "TRADING"))
    try:
        return Instrument(
            id=InstrumentId(VENUE, symbol), kind="linear_perpetual", base_coin=str(item.get("baseAsset", "")),
            quote_coin=str(item.get("quoteAsset", "")),
            tick_size=_decimal(item, "PRICE_FILTER", "tickSize"),
            lot_step=_decimal(item, "LOT_SIZE", "stepSize"),
            min_qty=_decimal(item, "LOT_SIZE", "minQty"),
            max_qty=_decimal(item, "LOT_SIZE", "maxQty"),
            min_notional=_decimal(item, "MIN_NOTIONAL", "notional"),
            maker_fee=maker, taker_fee=taker, status=STATUSES.get(status, status))
    except ValueError as exc:
        if isinstance(exc, InstrumentsRefused):
            raise
        raise InstrumentsRefused(f"{symbol}: {exc}") from None


def parse_exchange_info(answer: Any, symbols: Sequence[str] | None = None) -> list[Instrument]:
    """The instruments of one exchangeInfo answer among `symbols` (all when None), in the venue's order.

    Binance's error body ({"code": -1003, "msg": …}) and a malformed wanted item are refused whole:
    a half-read table would let risk approve orders on rules that were never read. Items of
    symbols not asked for are not parsed, so a dated contract elsewhere in the list does not matter."""
    if not isinstance(answer, Mapping):
        raise InstrumentsRefused(f"Expected a JSON object from exchangeInfo, found {type(answer).__name__}")
    if "code" in answer and "symbols" not in answer:
        raise InstrumentsRefused(f"exchangeInfo answered code {answer.get('code')!r}: {answer.get('msg')!r}")
    items = answer.get("symbols")
    if not isinstance(items, list):
        raise InstrumentsRefused(f"Expected a symbols list in exchangeInfo, found {type(items).__name__}")
    wanted = None if symbols is None else set(symbols)
    return [from_binance(item) for item in items
            if isinstance(item, Mapping) and (wanted is None or item.get("symbol") in wanted)]


class BinanceInstruments:
    """The reference-data part of the venue port for Binance USDⓈ-M: GET /fapi/v1/exchangeInfo at
    `rest_url` (fapi.binance.com, or the simulator's Binance dialect)."""

    venue = VENUE

    def __init__(self, rest_url: str) -> None:
        self.rest_url = rest_url.rstrip("/")

    async def read(self, client: httpx.AsyncClient, symbols: Sequence[str]) -> list[Instrument]:
        response = await client.get(self.rest_url + PATH)
        try:
            answer = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise InstrumentsRefused(f"exchangeInfo answered HTTP {response.status_code} with a body that is "
                                     f"not JSON: {response.content[:80]!r}") from None
        return parse_exchange_info(answer, symbols)
