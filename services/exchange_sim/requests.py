"""Request shapes of every simulator endpoint (REST bodies and queries, WebSocket op messages).

One schema machinery, msgspec, declares what Bybit accepts, so a bad input is refused with the
retCode 10001 Bybit gives and a message naming the field, instead of reaching a handler that
raises. Numbers Bybit wants as strings are strings here, and those strings must be plain decimals
(`DecimalText`): "Infinity", "NaN", "1E+400" or a JSON number where a string goes are refused
before anything parses them as Decimal, so every Decimal a handler builds is finite. Unknown
fields are ignored, as Bybit ignores them. Query strings arrive as text and are converted
non-strictly ("20" is a valid int limit, "x" is not).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import parse_qsl

import msgspec
from msgspec import Meta

PARAMS_ERROR = 10001

Category = Literal["linear", "spot", "inverse", "option"]
# A plain non-negative decimal ("0.010", "65000"), at most 20 digits either side of the point.
DecimalText = Annotated[str, Meta(pattern=r"^[0-9]{1,20}(\.[0-9]{1,20})?$")]
OptionalDecimalText = Annotated[str, Meta(pattern=r"^([0-9]{1,20}(\.[0-9]{1,20})?)?$")]  # "" = not given
Text = Annotated[str, Meta(max_length=64)]
Limit50 = Annotated[int, Meta(ge=1, le=50)]
Limit100 = Annotated[int, Meta(ge=1, le=100)]
Limit200 = Annotated[int, Meta(ge=1, le=200)]
Limit1000 = Annotated[int, Meta(ge=1, le=1000)]
Millis = Annotated[int, Meta(ge=0, le=10**14)]

T = TypeVar("T")


class ParamsError(ValueError):
    """A request Bybit would refuse with retCode 10001; the message names the field."""

    ret_code = PARAMS_ERROR


class _Shape(msgspec.Struct, kw_only=True, frozen=True):
    pass


# ---------------------------------------------------------------- private REST bodies (POST)

class OrderFields(_Shape, kw_only=True):
    """One order of /v5/order/create and of a create-batch `request` item (bybit-v5.md §3.5)."""

    symbol: Text
    side: Literal["Buy", "Sell"]
    orderType: Literal["Market", "Limit"]
    qty: DecimalText
    price: OptionalDecimalText | None = None
    timeInForce: Literal["GTC", "IOC", "FOK", "PostOnly", "RPI"] | None = None
    orderLinkId: Text | None = None
    reduceOnly: bool | None = None
    closeOnTrigger: bool | None = None
    positionIdx: Literal[0, 1, 2] | None = None
    isLeverage: Literal[0, 1] | None = None
    orderFilter: Text | None = None
    marketUnit: Literal["baseCoin", "quoteCoin"] | None = None
    triggerPrice: OptionalDecimalText | None = None
    triggerDirection: Literal[1, 2] | None = None
    triggerBy: Text | None = None
    takeProfit: OptionalDecimalText | None = None
    stopLoss: OptionalDecimalText | None = None
    tpslMode: Literal["Full", "Partial"] | None = None
    tpLimitPrice: OptionalDecimalText | None = None
    slLimitPrice: OptionalDecimalText | None = None
    tpOrderType: Literal["Market", "Limit"] | None = None
    slOrderType: Literal["Market", "Limit"] | None = None
    tpTriggerBy: Text | None = None
    slTriggerBy: Text | None = None
    smpType: Text | None = None
    mmp: bool | None = None


class CreateOrder(OrderFields, kw_only=True):
    category: Category


class BatchItem(OrderFields, kw_only=True):
    category: Category | None = None


class CreateBatch(_Shape, kw_only=True):
    category: Category
    request: Annotated[list[BatchItem], Meta(min_length=1)]


class CancelOrder(_Shape, kw_only=True):
    category: Category
    symbol: Text
    orderId: Text | None = None
    orderLinkId: Text | None = None
    orderFilter: Text | None = None


class AmendFields(_Shape, kw_only=True):
    """One amend of /v5/order/amend and of an amend-batch `request` item (docs/v5/order/amend-order):
    the order by orderId or orderLinkId, and the new total qty and/or price ("" or absent: unchanged)."""

    symbol: Text
    orderId: Text | None = None
    orderLinkId: Text | None = None
    qty: OptionalDecimalText | None = None
    price: OptionalDecimalText | None = None
    orderIv: OptionalDecimalText | None = None
    triggerPrice: OptionalDecimalText | None = None
    triggerBy: Text | None = None
    tpslMode: Literal["Full", "Partial"] | None = None
    takeProfit: OptionalDecimalText | None = None
    stopLoss: OptionalDecimalText | None = None
    tpTriggerBy: Text | None = None
    slTriggerBy: Text | None = None
    tpLimitPrice: OptionalDecimalText | None = None
    slLimitPrice: OptionalDecimalText | None = None


class AmendOrder(AmendFields, kw_only=True):
    category: Category


class AmendItem(AmendFields, kw_only=True):
    category: Category | None = None


class AmendBatch(_Shape, kw_only=True):
    category: Category
    request: Annotated[list[AmendItem], Meta(min_length=1)]


class CancelItem(_Shape, kw_only=True):
    """One item of /v5/order/cancel-batch (docs/v5/order/batch-cancel)."""

    symbol: Text
    orderId: Text | None = None
    orderLinkId: Text | None = None
    category: Category | None = None


class CancelBatch(_Shape, kw_only=True):
    category: Category
    request: Annotated[list[CancelItem], Meta(min_length=1)]


class CancelAll(_Shape, kw_only=True):
    """/v5/order/cancel-all: by symbol, else baseCoin, else settleCoin (linear needs one of them)."""

    category: Category
    symbol: Text | None = None
    baseCoin: Text | None = None
    settleCoin: Text | None = None
    orderFilter: Text | None = None
    stopOrderType: Text | None = None


class SetLeverage(_Shape, kw_only=True):
    category: Literal["linear", "inverse"]
    symbol: Text
    buyLeverage: DecimalText
    sellLeverage: DecimalText


# ---------------------------------------------------------------- private REST queries (GET)

class OrdersQuery(_Shape, kw_only=True):
    """/v5/order/realtime and /v5/order/history."""

    category: Category
    symbol: Text | None = None
    baseCoin: Text | None = None
    settleCoin: Text | None = None
    orderId: Text | None = None
    orderLinkId: Text | None = None
    openOnly: Literal[0, 1, 2] = 0
    orderFilter: Text | None = None
    orderStatus: Text | None = None
    startTime: Millis | None = None
    endTime: Millis | None = None
    limit: Limit50 = 20
    cursor: Text | None = None


class PositionsQuery(_Shape, kw_only=True):
    category: Literal["linear", "inverse", "option"]
    symbol: Text | None = None
    baseCoin: Text | None = None
    settleCoin: Text | None = None
    limit: Limit200 = 20
    cursor: Text | None = None


class ExecutionsQuery(_Shape, kw_only=True):
    category: Category
    symbol: Text | None = None
    orderId: Text | None = None
    orderLinkId: Text | None = None
    baseCoin: Text | None = None
    startTime: Millis | None = None
    endTime: Millis | None = None
    execType: Text | None = None
    limit: Limit100 = 50
    cursor: Annotated[str, Meta(pattern=r"^[0-9]{0,9}$")] | None = None


class WalletQuery(_Shape, kw_only=True):
    accountType: Literal["UNIFIED", "CONTRACT", "SPOT", "FUND"]
    coin: Annotated[str, Meta(max_length=200)] | None = None


class FeeRateQuery(_Shape, kw_only=True):
    category: Category = "linear"
    symbol: Text | None = None
    baseCoin: Text | None = None


class CoinQuery(_Shape, kw_only=True):
    coin: Text | None = None


class EmptyQuery(_Shape, kw_only=True):
    """Endpoints without parameters (/v5/account/info, /v5/user/query-api)."""


# ---------------------------------------------------------------- public REST queries (GET)

class InstrumentsQuery(_Shape, kw_only=True):
    category: Category
    symbol: Text | None = None
    status: Text | None = None
    baseCoin: Text | None = None
    limit: Limit1000 = 500
    cursor: Text | None = None


class OrderbookQuery(_Shape, kw_only=True):
    category: Category
    symbol: Text
    limit: Annotated[int, Meta(ge=1)] | None = None  # per-category range checked by the handler


class TickersQuery(_Shape, kw_only=True):
    category: Category
    symbol: Text | None = None
    baseCoin: Text | None = None
    expDate: Text | None = None


class RecentTradeQuery(_Shape, kw_only=True):
    category: Category
    symbol: Text | None = None
    baseCoin: Text | None = None
    optionType: Literal["Call", "Put"] | None = None
    limit: Annotated[int, Meta(ge=1)] | None = None  # spot [1, 60], others [1, 1000]


class KlineQuery(_Shape, kw_only=True):
    category: Literal["spot", "linear", "inverse"] = "linear"
    symbol: Text
    interval: Literal["1", "3", "5", "15", "30", "60", "120", "240", "360", "720", "D", "W", "M"]
    start: Millis | None = None
    end: Millis | None = None
    limit: Limit1000 = 200


# ---------------------------------------------------------------- WebSocket op messages

class WsOp(_Shape, kw_only=True):
    """{"op", "args", "req_id"} on the public and private sockets (bybit-v5.md §1.2, §2.1)."""

    op: Text
    req_id: Text | int | None = None
    args: Annotated[list[str | int], Meta(max_length=1000)] | None = None


# ---------------------------------------------------------------- parsing

def parse_body(kind: type[T], body: bytes) -> T:
    """A JSON body as `kind`; ParamsError naming the field otherwise."""
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise ParamsError(f"params error: {exc}") from None
    except msgspec.DecodeError as exc:
        raise ParamsError(f"params error: the body is not valid JSON ({exc})") from None


def parse_query(kind: type[T], query: str | dict[str, str]) -> T:
    """A query string (or its already split pairs) as `kind`. Empty values count as not given,
    as pybit leaves out None; a repeated key keeps its last value."""
    pairs = dict(parse_qsl(query, keep_blank_values=True)) if isinstance(query, str) else query
    try:
        return msgspec.convert({k: v for k, v in pairs.items() if v != ""}, kind, strict=False)
    except msgspec.ValidationError as exc:
        raise ParamsError(f"params error: {exc}") from None


def as_dict(shape: msgspec.Struct) -> dict[str, Any]:
    """The fields that were given (None left out), for the matching engine's dict interface."""
    return {k: v for k, v in msgspec.structs.asdict(shape).items() if v is not None}


def decimal(text: str) -> Decimal:
    """A DecimalText as Decimal: finite by construction (the pattern admits digits only)."""
    return Decimal(text)
