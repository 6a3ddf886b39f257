"""Execution of approved amends: to the venue one by one or as amend-batches, and their reports.

An amend's outcome is reported on orders.events from the venue's answer: OrderAmended when the
venue took it, OrderAmendRejected with Bybit's retCode when it refused (110001: the order had
already filled or been cancelled). The report's id derives from the amend intent, so acting on a
decision twice (a retry after a venue timeout, a restart) reports it once. A second send of an
amend that had landed is answered "remains unchanged" (10001): that is the amend done, not refused.

Several approved amends of one account that arrive together (the maker moves both its quotes on
one book update) go out as one /v5/order/amend-batch (up to 10 a request) when `batch` is on:
one request instead of one per order, against the same per-second limit.
"""

from __future__ import annotations

import time

import msgspec

from schemas.events import AmendOrder, OrderAmended, OrderAmendRejected
from services.domain.ids import exec_amend_id, exec_amend_reject_id, link_id_for
from services.venues.bybit.private import amend_request
from services.venues.bybit.rest import BybitRest, VenueError

UNCHANGED = "remains unchanged"  # Bybit's 10001 text for an amend whose terms the order already has
PARAMS_ERROR = 10001


def amend_report(intent: AmendOrder, code: int, message: str, now_ns: int) -> OrderAmended | OrderAmendRejected:
    """The orders.events report of one amend from the venue's (retCode, retMsg) for it."""
    # Event time is the amend's own: the venue's answer would give another time to an amend resent
    # after a crash, and the report must be the same record however often it is derived.
    common = {"ts_event": intent.ts_event, "ts_ingest": now_ns, "origin_ts": intent.origin_ts,
              "account": intent.account, "symbol": intent.symbol, "intent_id": intent.intent_id,
              "order_link_id": link_id_for(intent.intent_id)}
    if code == 0 or (code == PARAMS_ERROR and UNCHANGED in message):
        return OrderAmended(id=exec_amend_id(intent.id), qty=intent.qty, price=intent.price, **common)
    return OrderAmendRejected(id=exec_amend_reject_id(intent.id), ret_code=code, reason=message, **common)


def stale_report(intent: AmendOrder, waited_s: float, now_ns: int) -> OrderAmendRejected:
    """An amend decided too long ago is not sent (as a stale order is not placed): refused, code 0."""
    report = amend_report(intent, -1, f"stale decision: waited {waited_s:.1f} s in the log", now_ns)
    assert isinstance(report, OrderAmendRejected)
    return msgspec.structs.replace(report, ret_code=0)


async def send_amends(rest: BybitRest, intents: list[AmendOrder], batch: bool,
                      ) -> list[OrderAmended | OrderAmendRejected]:
    """Send `intents` (one account's, in log order) and report each. Transient failures propagate:
    the caller acts on the same decisions again, and the reports' ids make that harmless."""
    if not intents:
        return []
    outcomes: list[tuple[int, str]] = []
    if batch and len(intents) > 1:
        outcomes = await rest.amend_orders("linear", [amend_request(i) for i in intents])
    else:
        for intent in intents:
            try:
                await rest.amend_order(amend_request(intent))
                outcomes.append((0, "OK"))
            except VenueError as exc:
                outcomes.append((exc.ret_code, exc.ret_msg))
    now = time.time_ns()
    return [amend_report(intent, code, message, now) for intent, (code, message) in zip(intents, outcomes, strict=True)]
