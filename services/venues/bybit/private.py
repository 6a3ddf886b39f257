"""Bybit V5's private side, pure: intents → V5 request bodies, private WS messages → orders.events.

The private-stream and request-shape parts of the Bybit adapter (services/venues/port.py), used by
execution's shell (and its reconciliation, which feeds REST views through the same parser). No I/O.

The orderLinkId is derived from the intent id, so the same intent can never become two orders:
"h-" + the intent id when that fits Bybit's 36 characters of [A-Za-z0-9_-] (our ids are 32 hex
characters), else "h-" + a hash of it. Event ids derive from the venue's orderId / execId, so a
message delivered twice (or re-derived by reconciliation) is recognisably the same event.

An `execution` message item, annotated (bybit-v5.md §2.2):
    {"symbol": "BTCUSDT", "orderLinkId": "h-<intent id>", "orderId": "…", "execId": "…",
     "side": "Buy", "execQty": "0.010", "execPrice": "65000.10", "execFee": "0.3575",
     "isMaker": false, "leavesQty": "0.000" (0 → the order is filled), "orderQty": "0.010"}
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from schemas.events import (
    AmendOrder,
    Event,
    FundingSettled,
    OrderAcknowledged,
    OrderCancelled,
    OrderFilled,
    OrderPartiallyFilled,
    OrderRejected,
    SubmitOrder,
)
from services.domain.ids import (
    exec_ack_id,
    exec_cancel_id,
    exec_fill_id,
    exec_funding_id,
    exec_reject_id,
    intent_id_of,
    link_id_for,
)
from services.venues.bybit.signing import ws_auth_signature
from services.venues.frames import MalformedFrame, json_object

# Orders the venue cancels at placement, before they ever rest: Bybit reports them Cancelled with
# cancelType "UNKNOWN" and one of these rejectReasons (a PostOnly that would cross, a FOK that
# cannot fill whole). They get no ack; their cancel carries the reason.
NEVER_RESTED = ("EC_PostOnlyWillTakeLiquidity", "EC_CancelForNoFullFill")



def create_request(intent: SubmitOrder) -> dict[str, Any]:
    """The POST /v5/order/create body of an approved intent (numbers as strings, as Bybit wants)."""
    body: dict[str, Any] = {"category": "linear", "symbol": intent.symbol, "side": intent.side,
                            "orderType": intent.order_type, "qty": str(intent.qty),
                            "timeInForce": intent.time_in_force if intent.order_type == "Limit" else "IOC",
                            "orderLinkId": link_id_for(intent.id)}
    if intent.price is not None and intent.order_type == "Limit":
        body["price"] = str(intent.price)
    if intent.reduce_only:
        body["reduceOnly"] = True
    return body


def amend_request(intent: AmendOrder) -> dict[str, Any]:
    """The POST /v5/order/amend body (also an amend-batch item, less `category`): the order by the
    orderLinkId its intent got, and only the terms that change (Bybit: "do not pass it if not modify")."""
    body: dict[str, Any] = {"category": "linear", "symbol": intent.symbol, "orderLinkId": link_id_for(intent.intent_id)}
    if intent.qty is not None:
        body["qty"] = str(intent.qty)
    if intent.price is not None:
        body["price"] = str(intent.price)
    return body


class MalformedPrivateMessage(MalformedFrame):
    """A private WebSocket message that is not what Bybit sends: dead-lettered, never fatal."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "malformed")


def parse_private(raw: str | bytes) -> dict[str, Any]:
    """One private WS frame as a JSON object, or MalformedPrivateMessage."""
    return json_object(raw, MalformedPrivateMessage)


# The private stream's own requests (bybit-v5.md §2.1-2.2): auth first, then the all-in-one topics.
SUBSCRIBE = '{"op": "subscribe", "args": ["order", "execution"]}'


def auth_message(api_key: str, secret: str, expires_ms: int) -> str:
    """The `auth` op for a connection, valid until `expires_ms` (venue time, in the future)."""
    return orjson.dumps({"op": "auth", "args": [api_key, expires_ms, ws_auth_signature(secret, expires_ms)]}).decode()


def ping_message(n: int) -> str:
    return orjson.dumps({"op": "ping", "req_id": f"hean-{n}"}).decode()


def _decimal(item: dict[str, Any], field: str, default: str | None = None) -> Decimal:
    """A finite Decimal from a venue string field (Bybit sends numbers as strings)."""
    value = item[field] if default is None else (item.get(field) or default)
    if not isinstance(value, str | int):
        raise MalformedPrivateMessage(f"Expected a numeric string in {field!r}, found {value!r}")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise MalformedPrivateMessage(f"Expected a numeric string in {field!r}, found {value!r}") from None
    if not number.is_finite():
        raise MalformedPrivateMessage(f"Expected a finite number in {field!r}, found {value!r}")
    return number


def never_rested(view: dict[str, Any]) -> bool:
    """True for an order the venue cancelled at placement (see NEVER_RESTED)."""
    return view.get("rejectReason") in NEVER_RESTED


def _cancel_reason(item: dict[str, Any]) -> str:
    """Why an order ended: Bybit's cancelType, or its rejectReason where cancelType says only
    "UNKNOWN" (the venue's own cancels: PostOnly, FOK, the unfilled rest of an IOC)."""
    cancel_type = str(item.get("cancelType") or "")
    if cancel_type in ("", "UNKNOWN") and item.get("rejectReason") not in (None, "", "EC_NoError"):
        return str(item["rejectReason"])
    return cancel_type


def _funding(item: dict[str, Any], account: str, now_ns: int, created_ms: int) -> FundingSettled:
    """A funding settlement: execFee is what the holder paid (negative: received), feeRate the
    funding rate, execQty the position it was charged on, on the side of `side`, at execPrice
    (the mark price); no order is involved, so it is reported whoever opened the position."""
    side = _text(item, "side")
    if side not in ("Buy", "Sell"):
        raise MalformedPrivateMessage(f"Expected side Buy or Sell on a funding execution, found {side!r}")
    size = _decimal(item, "execQty")
    return FundingSettled(
        id=exec_funding_id(_text(item, "execId")), ts_event=int(item.get("execTime") or created_ms) * 1_000_000,
        ts_ingest=now_ns, account=account, symbol=_text(item, "symbol"), exec_id=item["execId"],
        funding_rate=_decimal(item, "feeRate"), position_qty=size if side == "Buy" else -size,
        mark_price=_decimal(item, "execPrice"), amount=_decimal(item, "execFee"))


def _text(item: dict[str, Any], field: str) -> str:
    value = item[field]
    if not isinstance(value, str) or not value:
        raise MalformedPrivateMessage(f"Expected a non-empty string in {field!r}, found {value!r}")
    return value


def events_from_private(message: dict[str, Any], account: str, now_ns: int,
                        origins: Mapping[str, int]) -> list[Event]:
    """orders.events from one private WS message; `origins` maps orderLinkId → origin_ts.

    A message whose items lack a field the events need, or carry a field of the wrong shape,
    raises MalformedPrivateMessage naming it; no event of that message is returned, so the
    shell's reconciliation (which asks the venue) is what recovers its content."""
    data = message.get("data", [])
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise MalformedPrivateMessage(f"Expected 'data' to be a list of objects, found {str(data)[:100]!r}")
    try:
        return _events(message, data, account, now_ns, origins)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MalformedPrivateMessage(f"Expected a Bybit {message.get('topic')!r} item, found one with "
                                      f"{type(exc).__name__}: {exc}") from None


def _events(message: dict[str, Any], data: list[dict[str, Any]], account: str, now_ns: int,
            origins: Mapping[str, int]) -> list[Event]:
    events: list[Event] = []
    topic = message.get("topic", "")
    created_ms = int(message.get("creationTime", 0))
    for item in data:
        if topic == "execution" and item.get("execType") == "Funding":
            events.append(_funding(item, account, now_ns, created_ms))
            continue
        link_id = item.get("orderLinkId", "")
        if not isinstance(link_id, str):
            raise MalformedPrivateMessage(f"Expected a string orderLinkId, found {link_id!r}")
        intent_id = intent_id_of(link_id)
        if not intent_id:
            continue  # not ours (placed by hand on the account)
        # Event time is the venue's time of the fill or order change itself, so a report re-derived
        # by reconciliation carries the same time as the one the WebSocket pushed.
        item_ms = item.get("execTime") if topic == "execution" else item.get("updatedTime")
        common = {"ts_event": int(item_ms or created_ms) * 1_000_000, "ts_ingest": now_ns,
                  "origin_ts": origins.get(link_id, 0), "account": account, "symbol": _text(item, "symbol"),
                  "intent_id": intent_id, "order_link_id": link_id, "order_id": _text(item, "orderId")}
        if topic == "execution":
            leaves = _decimal(item, "leavesQty", "0")
            fill_qty = _decimal(item, "execQty")
            fill = {"exec_id": _text(item, "execId"), "side": _text(item, "side"), "fill_qty": fill_qty,
                    "fill_price": _decimal(item, "execPrice"), "fee": _decimal(item, "execFee", "0"),
                    "is_maker": bool(item.get("isMaker")),
                    "cum_qty": (_decimal(item, "orderQty") if item.get("orderQty") else fill_qty) - leaves}
            if leaves == 0:
                events.append(OrderFilled(id=exec_fill_id(item["execId"]), **common, **fill))
            else:
                events.append(OrderPartiallyFilled(id=exec_fill_id(item["execId"]), **common,
                                                   leaves_qty=leaves, **fill))
        elif topic == "order":
            status = item.get("orderStatus")
            if status == "New":
                events.append(OrderAcknowledged(
                    id=exec_ack_id(common["order_id"]), **common, side=_text(item, "side"),
                    order_type=_text(item, "orderType"), qty=_decimal(item, "qty"),
                    price=_decimal(item, "price") if item.get("orderType") == "Limit" else None))
            elif status in ("Cancelled", "Deactivated", "PartiallyFilledCanceled"):
                events.append(OrderCancelled(id=exec_cancel_id(common["order_id"]), **common,
                                             reason=_cancel_reason(item),
                                             cum_qty=_decimal(item, "cumExecQty", "0")))
            elif status == "Rejected":
                events.append(OrderRejected(id=exec_reject_id(common["order_id"]), **common, ret_code=0,
                                            reason=str(item.get("rejectReason") or "")))
    return events
