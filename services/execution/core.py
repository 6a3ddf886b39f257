"""Execution's pure part: intents → V5 requests, private WS messages → orders.events. No I/O.

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

import re
from decimal import Decimal
from typing import Any

from schemas.events import (
    Event,
    OrderAcknowledged,
    OrderCancelled,
    OrderFilled,
    OrderPartiallyFilled,
    OrderRejected,
    SubmitOrder,
    derive_id,
)

_LINK_SAFE = re.compile(r"^[A-Za-z0-9_-]{1,34}$")


def link_id_for(intent_id: str) -> str:
    """The orderLinkId of an intent: deterministic, at most 36 characters."""
    return f"h-{intent_id}" if _LINK_SAFE.match(intent_id) else f"h-{derive_id('link', intent_id)}"


def intent_id_of(link_id: str) -> str:
    """The intent id behind one of our orderLinkIds ("" for orders HEAN did not place)."""
    return link_id[2:] if link_id.startswith("h-") else ""


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


def events_from_private(message: dict[str, Any], account: str, now_ns: int,
                        origins: dict[str, int]) -> list[Event]:
    """orders.events from one private WS message; `origins` maps orderLinkId → origin_ts."""
    events: list[Event] = []
    topic = message.get("topic", "")
    created_ms = int(message.get("creationTime", 0))
    for item in message.get("data", []):
        link_id = item.get("orderLinkId", "")
        intent_id = intent_id_of(link_id)
        if not intent_id:
            continue  # not ours (placed by hand on the account)
        # Event time is the venue's time of the fill or order change itself, so a report re-derived
        # by reconciliation carries the same time as the one the WebSocket pushed.
        item_ms = item.get("execTime") if topic == "execution" else item.get("updatedTime")
        common = {"ts_event": int(item_ms or created_ms) * 1_000_000, "ts_ingest": now_ns,
                  "origin_ts": origins.get(link_id, 0), "account": account, "symbol": item["symbol"],
                  "intent_id": intent_id, "order_link_id": link_id, "order_id": item.get("orderId", "")}
        if topic == "execution":
            leaves = Decimal(item.get("leavesQty") or "0")
            fill = {"exec_id": item["execId"], "side": item["side"], "fill_qty": Decimal(item["execQty"]),
                    "fill_price": Decimal(item["execPrice"]), "fee": Decimal(item.get("execFee") or "0"),
                    "is_maker": bool(item.get("isMaker")),
                    "cum_qty": Decimal(item.get("orderQty") or item["execQty"]) - leaves}
            if leaves == 0:
                events.append(OrderFilled(id=derive_id("exec-fill", item["execId"]), **common, **fill))
            else:
                events.append(OrderPartiallyFilled(id=derive_id("exec-fill", item["execId"]), **common,
                                                   leaves_qty=leaves, **fill))
        elif topic == "order":
            status = item.get("orderStatus")
            if status == "New":
                events.append(OrderAcknowledged(
                    id=derive_id("exec-ack", item["orderId"]), **common, side=item["side"],
                    order_type=item["orderType"], qty=Decimal(item["qty"]),
                    price=Decimal(item["price"]) if item.get("orderType") == "Limit" else None))
            elif status in ("Cancelled", "Deactivated", "PartiallyFilledCanceled"):
                events.append(OrderCancelled(id=derive_id("exec-cancel", item["orderId"]), **common,
                                             reason=item.get("cancelType", ""),
                                             cum_qty=Decimal(item.get("cumExecQty") or "0")))
            elif status == "Rejected":
                events.append(OrderRejected(id=derive_id("exec-reject", item["orderId"]), **common, ret_code=0,
                                            reason=item.get("rejectReason", "")))
    return events
