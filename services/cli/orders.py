"""`hean orders` (every order with its state, folded from the log) and `hean order submit | amend |
cancel` (an operator's manual order, through risk like every other order).

A manual order is an intent on orders.intents under the strategy name OPERATOR_STRATEGY, so risk
checks it with the same rules and its decision, the venue's reports and the recorder's rows are
those of any order. The command then follows the log: risk's decision, and, once approved, the
venue's first answer about that order, and prints them; it does not wait for fills.

The order table is a fold of orders.decisions (what risk approved or rejected) and orders.events
(what the venue reported), the same facts every service folds; nothing is asked of the venue.
Bad input is refused before anything is sent: one line naming the value, exit code 2.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from schemas.events import (
    AmendOrder,
    AnyIntent,
    CancelAllOrders,
    CancelOrder,
    Event,
    IntentApproved,
    IntentRejected,
    OrderAcknowledged,
    OrderAmended,
    OrderAmendRejected,
    OrderCancelled,
    OrderEvent,
    OrderFilled,
    OrderPartiallyFilled,
    OrderRejected,
    SubmitOrder,
    derive_id,
)
from schemas.topics import ORDERS_DECISIONS, ORDERS_EVENTS, ORDERS_INTENTS
from services.cli.follow import follow
from services.runtime.codec import decode, encode
from services.runtime.errors import DecodeError

OPEN_STATES = ("approved", "New", "PartiallyFilled")
_SYMBOL = re.compile(r"^[A-Z0-9]{2,30}$")
_ACCOUNT = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class UsageError(ValueError):
    """Bad input on the command line: printed as one line, exit code 2."""


# ---------------------------------------------------------------- input → intent (pure)


def _decimal(name: str, text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise UsageError(f"--{name} must be a decimal number, got {text!r}") from None
    if not value.is_finite() or value <= 0:
        raise UsageError(f"--{name} must be a positive number, got {text!r}")
    return value


def _common(account: str, symbol: str, now_ns: int) -> dict[str, Any]:
    from services.risk.core import OPERATOR_STRATEGY  # lazily: risk's core is a heavy import
    if not _ACCOUNT.match(account):
        raise UsageError(f"--account must be 1-64 of letters, digits and _.:-, got {account!r}")
    if not _SYMBOL.match(symbol):
        raise UsageError(f"--symbol must be an uppercase venue symbol like BTCUSDT, got {symbol!r}")
    return {"ts_event": now_ns, "ts_ingest": now_ns, "origin_ts": now_ns, "account": account,
            "strategy": OPERATOR_STRATEGY, "symbol": symbol}


def manual_submit(account: str, symbol: str, side: str, qty: str, price: str | None, order_type: str | None,
                  time_in_force: str, reduce_only: bool, now_ns: int) -> SubmitOrder:
    """The intent of `hean order submit`: a limit order when a price is given, else a market order."""
    common = _common(account, symbol, now_ns)
    sides = {"buy": "Buy", "sell": "Sell"}
    if side.lower() not in sides:
        raise UsageError(f"--side must be Buy or Sell, got {side!r}")
    kind = order_type or ("Limit" if price is not None else "Market")
    if kind not in ("Limit", "Market"):
        raise UsageError(f"--type must be Limit or Market, got {kind!r}")
    if kind == "Limit" and price is None:
        raise UsageError("a Limit order needs --price")
    if kind == "Market" and price is not None:
        raise UsageError("a Market order takes no --price")
    if time_in_force not in ("GTC", "IOC", "FOK", "PostOnly"):
        raise UsageError(f"--tif must be GTC, IOC, FOK or PostOnly, got {time_in_force!r}")
    quantity = _decimal("qty", qty)
    assert quantity is not None
    return SubmitOrder(id=derive_id("operator-submit", account, symbol, now_ns), **common,
                       side=sides[side.lower()], order_type=kind, qty=quantity,  # type: ignore[arg-type]
                       price=_decimal("price", price), reduce_only=reduce_only,
                       time_in_force=time_in_force if kind == "Limit" else "IOC")  # type: ignore[arg-type]


def manual_amend(account: str, symbol: str, intent_id: str, qty: str | None, price: str | None,
                 now_ns: int) -> AmendOrder:
    common = _common(account, symbol, now_ns)
    if qty is None and price is None:
        raise UsageError("an amend needs --qty, --price or both")
    return AmendOrder(id=derive_id("operator-amend", account, intent_id, now_ns), **common,
                      intent_id=_intent(intent_id), qty=_decimal("qty", qty), price=_decimal("price", price))


def manual_cancel(account: str, symbol: str, intent_id: str | None, every: bool,
                  now_ns: int) -> CancelOrder | CancelAllOrders:
    """One order by its intent id, or with `every` all open orders of the account on the symbol."""
    common = _common(account, symbol, now_ns)
    if every == (intent_id is not None):
        raise UsageError("give either --intent ID or --all")
    if every:
        return CancelAllOrders(id=derive_id("operator-cancel-all", account, symbol, now_ns), **common)
    assert intent_id is not None
    return CancelOrder(id=derive_id("operator-cancel", account, intent_id, now_ns), **common,
                       intent_id=_intent(intent_id))


def _intent(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", text):
        raise UsageError(f"--intent must be an intent id as `hean orders` shows it, got {text!r}")
    return text


# ---------------------------------------------------------------- the order table (pure fold)


@dataclass(frozen=True)
class OrderRow:
    intent_id: str
    account: str
    strategy: str
    symbol: str
    side: str
    order_type: str
    qty: Decimal
    price: Decimal | None
    filled: Decimal = Decimal(0)
    state: str = "approved"
    detail: str = ""
    updated_ns: int = 0

    @property
    def open(self) -> bool:
        return self.state in OPEN_STATES


TERMINAL = ("Filled", "Cancelled", "Rejected", "rejected by risk")


def fold_orders(decisions: Iterable[Event], events: Iterable[Event]) -> dict[str, OrderRow]:
    """Orders by intent id: what risk decided about each submit, then what the venue reported.
    Each topic keeps a symbol's records in order, and an order's reports follow its decision, so
    decisions first, then reports, gives each order's last state."""
    rows: dict[str, OrderRow] = {}
    for decision in decisions:
        intent = decision.intent if isinstance(decision, IntentApproved | IntentRejected) else None
        if not isinstance(intent, SubmitOrder):
            continue
        row = OrderRow(intent.id, intent.account, intent.strategy, intent.symbol, intent.side, intent.order_type,
                       intent.qty, intent.price, updated_ns=decision.ts_event)
        if isinstance(decision, IntentRejected):
            row = replace(row, state="rejected by risk", detail=f"{decision.rule}: {decision.detail}")
        rows[intent.id] = row
    for event in events:
        if isinstance(event, OrderEvent):
            rows[event.intent_id] = _report(rows.get(event.intent_id), event)
    return rows


def _report(row: OrderRow | None, event: OrderEvent) -> OrderRow:
    if row is None:  # its decision is older than the log kept: start from the report
        row = OrderRow(event.intent_id, event.account, "", event.symbol, getattr(event, "side", ""),
                       getattr(event, "order_type", ""), getattr(event, "qty", None) or Decimal(0),
                       getattr(event, "price", None))
    row = replace(row, updated_ns=max(row.updated_ns, event.ts_event))
    if isinstance(event, OrderPartiallyFilled | OrderFilled):
        row = replace(row, filled=row.filled + event.fill_qty)
        if isinstance(event, OrderFilled):
            return replace(row, state="Filled")
        return row if row.state in TERMINAL else replace(row, state="PartiallyFilled")
    if isinstance(event, OrderAmended):
        return replace(row, qty=event.qty if event.qty is not None else row.qty,
                       price=event.price if event.price is not None else row.price)
    if isinstance(event, OrderAmendRejected):
        return replace(row, detail=f"amend refused {event.ret_code}: {event.reason}")
    if row.state in TERMINAL:
        return row
    if isinstance(event, OrderAcknowledged):
        return replace(row, state="New" if row.state == "approved" else row.state)
    if isinstance(event, OrderCancelled):
        return replace(row, state="Cancelled", detail=event.reason)
    if isinstance(event, OrderRejected):
        return replace(row, state="Rejected", detail=f"{event.ret_code}: {event.reason}")
    return row


def render(rows: Iterable[OrderRow]) -> str:
    """The table `hean orders` prints, oldest change first."""
    header = ("intent", "account", "strategy", "symbol", "side", "type", "qty", "price", "filled", "state", "detail")
    lines = [header] + [(r.intent_id, r.account, r.strategy, r.symbol, r.side, r.order_type, str(r.qty),
                         "" if r.price is None else str(r.price), str(r.filled), r.state, r.detail[:60])
                        for r in sorted(rows, key=lambda r: (r.updated_ns, r.intent_id))]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
                     for line in lines)


# ---------------------------------------------------------------- the log (I/O)


async def _read(topics: list[str]) -> dict[str, list[Event]]:
    # Kafka's client only where a command talks to the broker: every `hean` start imports this module.
    from services.cli.topics import bootstrap
    from services.runtime.bus import make_consumer, partitions_of, read_to_end
    consumer = make_consumer(bootstrap(), None)
    await consumer.start()
    out: dict[str, list[Event]] = {t: [] for t in topics}
    try:
        tps = await partitions_of(consumer, topics)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        async for tp, records in read_to_end(consumer, tps):
            for record in records:
                try:
                    out[tp.topic].append(decode(record.value))
                except DecodeError:
                    continue  # dead-lettered by the service that consumed it
    finally:
        await consumer.stop()
    return out


def list_orders(prefix: str, account: str | None, open_only: bool) -> int:
    """`hean orders`: the table, filtered by account and to open orders on request."""
    logs = asyncio.run(_read([prefix + ORDERS_DECISIONS, prefix + ORDERS_EVENTS]))
    rows = fold_orders(logs[prefix + ORDERS_DECISIONS], logs[prefix + ORDERS_EVENTS]).values()
    chosen = [r for r in rows if (account is None or r.account == account) and (not open_only or r.open)]
    if not chosen:
        print("no orders" + (f" for {account}" if account else "") + (" open" if open_only else ""))
        return 0
    print(render(chosen))
    return 0


def _outcome(intent: AnyIntent, event: Event) -> str | None:
    """What to tell the operator about `event`, if it answers `intent`."""
    if isinstance(event, IntentRejected) and event.intent.id == intent.id:
        return f"rejected by risk: {event.rule}: {event.detail}"
    target = intent.id if isinstance(intent, SubmitOrder) else getattr(intent, "intent_id", None)
    if not isinstance(event, OrderEvent) or event.intent_id != target or event.ts_ingest < intent.ts_event:
        return None
    if isinstance(intent, AmendOrder) and not isinstance(event, OrderAmended | OrderAmendRejected):
        return None
    detail = {OrderRejected: lambda e: f" {e.ret_code}: {e.reason}", OrderAmendRejected: lambda e: f" {e.ret_code}: "
              f"{e.reason}", OrderCancelled: lambda e: f" ({e.reason})"}.get(type(event))
    return f"venue: {type(event).__name__}" + (detail(event) if detail else "")


async def _send_and_follow(prefix: str, intent: AnyIntent, wait_s: float) -> list[str]:
    """Send the intent, then read decisions and reports from where the log ended before it until
    its answers arrived: risk's decision, then (approved) the venue's first word on the order."""
    from services.cli.topics import bootstrap
    from services.runtime.bus import make_producer
    producer = make_producer(bootstrap())
    await producer.start()
    said: list[str] = []
    approved = False

    async def send() -> None:
        await (await producer.send(prefix + ORDERS_INTENTS, encode(intent), key=intent.symbol.encode()))

    try:
        async with contextlib.aclosing(follow([prefix + ORDERS_DECISIONS, prefix + ORDERS_EVENTS], send,
                                              wait_s)) as events:
            async for event in events:
                if isinstance(event, IntentApproved) and event.intent.id == intent.id:
                    said.append("approved by risk")
                    approved = True
                    if isinstance(intent, CancelAllOrders):
                        return said
                answer = _outcome(intent, event)
                if answer is not None:
                    # The venue's answer can be read before the decision (two topics): an
                    # order the venue answered is one risk approved.
                    if not approved and answer.startswith("venue:"):
                        said.append("approved by risk")
                    return [*said, answer]
        said.append(f"no venue report within {wait_s:g} s (an order already closed gets none)" if approved
                    else f"no decision within {wait_s:g} s; is risk running on this session?")
        return said
    finally:
        await producer.stop()


def send_manual(prefix: str, intent: AnyIntent, wait_s: float) -> int:
    """Send an operator's intent and print what became of it (0 when risk decided in time)."""
    kind = type(intent).__name__
    print(f"{kind} {intent.id} for {intent.account} on {intent.symbol} sent to {prefix + ORDERS_INTENTS}")
    said = asyncio.run(_send_and_follow(prefix, intent, wait_s))
    for line in said:
        print(f"  {line}")
    return 0 if said and not said[-1].startswith("no decision") else 1


def run_order_command(args: Any, prefix: str) -> int:
    """`hean order ACTION ...` from parsed arguments; a UsageError is one line and exit code 2."""
    now = time.time_ns()
    try:
        if args.action == "submit":
            if args.qty is None or args.side is None:
                raise UsageError("hean order submit needs --side and --qty")
            intent: AnyIntent = manual_submit(args.account, args.symbol, args.side, args.qty, args.price,
                                              args.type, args.tif, args.reduce_only, now)
        elif args.action == "amend":
            if args.intent is None:
                raise UsageError("hean order amend needs --intent ID")
            intent = manual_amend(args.account, args.symbol, args.intent, args.qty, args.price, now)
        else:
            intent = manual_cancel(args.account, args.symbol, args.intent, args.all, now)
    except UsageError as exc:
        print(f"hean order {args.action}: {exc}", file=sys.stderr)
        return 2
    return send_manual(prefix, intent, args.wait)
