"""The execution core: what one executor knows of its accounts' orders, as a fold of the log. No I/O.

Two inputs make the state, and both are in the log, so `hean replay execution` rebuilds it:
- orders.decisions: an approved order (SubmitOrder) of the account is an order *decided*, in
  flight until orders.events closes it (reconciliation asks the venue about every such order);
  every approved intent of the account is a decision *acted on*, remembered by id so a repeat
  from an emitter without a transaction (docs/COMMITS.md) is dropped, not sent again;
- orders.events, execution's own output: acknowledgements, fills (the reported quantity, value
  and fee per order, the positions and the domain's position fold with funding, for the account
  checks), ends, amend answers, adoptions and the account's opening. Each event id folds once, so
  a record written twice, or one folded live and read back at a restart, counts once.

The fold does not depend on how the two topics interleave: an order's reports are in one
partition (keyed by symbol), in order; an acknowledgement never reopens an order already closed;
sums are sums; the repeat filter keeps ids per 10 s bucket of event time for the newest 5
minutes, the same set whatever order the ids came in. So the live executor, which folds a
decision when it acts and an event once the broker acknowledged it, ends in the replay's state.

`decide` is the other half: given a decision fetched from the log, the intent to act on (None for
another account's, a rejection, or a repeat). Effects stay in the shell (shell.py), which holds
the lease: its fencing token belongs to the process's term, not to the log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any, TypeVar

import msgspec

from schemas.events import (
    AccountOpened,
    AnyIntent,
    Event,
    FundingSettled,
    IntentApproved,
    OrderAcknowledged,
    OrderCancelled,
    OrderEvent,
    OrderFilled,
    OrderPartiallyFilled,
    OrderRejected,
    PositionAdopted,
    SubmitOrder,
)
from services.domain import repeats
from services.domain.ids import link_id_for
from services.domain.position import FLAT, Position, adopt, apply_fill, apply_funding
from services.runtime.service import join_disjoint

__all__ = ["AccountExecution", "Decided", "ExecutionState", "Opening", "OrderReports", "account_of", "decide", "evolve",
           "fold", "fresh", "initial_state", "merge_accounts", "note_decision", "open_orders", "reported_fills",
           "step", "summarize", "unsure_orders"]

ZERO = Decimal(0)
NS_PER_S = 10**9
ACTED_BUCKET_NS = repeats.BUCKET_NS  # the repeat filter (services/domain/repeats.py): 10 s buckets …
ACTED_BUCKETS = repeats.BUCKETS  # … of event time, the newest 5 minutes
Fills = tuple[Decimal, Decimal, Decimal]
T = TypeVar("T")
# Orders by orderLinkId, in 256 shards by a stable hash of the id: a new state copies one shard
# and the shard index, not every order of the session (100k orders: ~400 per shard).
Sharded = dict[str, dict[str, T]]


def _shard(link_id: str) -> str:
    return hashlib.blake2b(link_id.encode(), digest_size=1).hexdigest()


def _get(sharded: Sharded[T], link_id: str) -> T | None:
    shard = sharded.get(_shard(link_id))
    return None if shard is None else shard.get(link_id)


def _put(sharded: Sharded[T], link_id: str, value: T) -> Sharded[T]:
    key = _shard(link_id)
    return {**sharded, key: {**sharded.get(key, {}), link_id: value}}


def _items(sharded: Sharded[T]) -> Iterator[tuple[str, T]]:
    for shard in sharded.values():
        yield from shard.items()


class Decided(msgspec.Struct, frozen=True, array_like=True):
    """An approved order of the account: its symbol and when risk decided it (event time). No
    local time (origin_ts, ts_ingest) is kept in the state: two runs of one log hold one state."""

    symbol: str
    ts_event: int


class Opening(msgspec.Struct, frozen=True):
    """The account's opening (AccountOpened) as the checks use it: its wallet balance, and its
    venue time (funding before it is in that balance)."""

    id: str
    ts_event: int
    wallet_balance: Decimal


class OrderReports(msgspec.Struct, frozen=True):
    """What orders.events holds of one order (by orderLinkId)."""

    symbol: str
    working: bool = False  # acknowledged or partly filled, and not closed
    closed: bool = False  # filled, cancelled or rejected
    qty: Decimal = ZERO  # reported fills: their quantity, value (qty * price) and fees
    value: Decimal = ZERO
    fee: Decimal = ZERO
    event_ids: tuple[str, ...] = ()  # sorted: the same tuple whatever order the reports came in


class AccountExecution(msgspec.Struct, frozen=True):
    """One account's orders, positions and opening as the log tells them."""

    decided: Sharded[Decided] = {}  # orderLinkId → approved order (in shards, see Sharded)
    orders: Sharded[OrderReports] = {}  # orderLinkId → its reports
    event_ids: dict[str, None] = {}  # ids of the account's events that belong to no order
    positions: dict[str, Decimal] = {}  # symbol → signed sum of reported fills and adoptions
    books: dict[str, Position] = {}  # symbol → the domain fold of them, with funding (the wallet check)
    opened: Opening | None = None
    described: bool = False  # the log holds order events or funding of the account
    acted: dict[str, dict[str, None]] = {}  # bucket of event time → ids of decisions acted on


class ExecutionState(msgspec.Struct, frozen=True):
    accounts: dict[str, AccountExecution] = {}


def initial_state() -> ExecutionState:
    return ExecutionState()


def account_of(event: Any) -> str | None:
    """The account a decision or a report belongs to."""
    if isinstance(event, IntentApproved):
        return event.intent.account
    return getattr(event, "account", None)


def _account(state: ExecutionState, name: str) -> AccountExecution:
    return state.accounts.get(name) or AccountExecution()


def _acted(account: AccountExecution, intent: AnyIntent) -> bool:
    return repeats.seen(account.acted, intent.id, intent.ts_event)


# ---------------------------------------------------------------------- decisions


def decide(state: ExecutionState, account: str, decision: Event) -> AnyIntent | None:
    """The intent `account`'s executor must act on for a decision fetched from orders.decisions:
    None for a rejection, another account's approval, an approval acted on already (a repeat),
    or an order whose end is in the log already (acted on and refused before a crash kept its
    offset from being committed: placing it again could now succeed after its OrderRejected)."""
    if not isinstance(decision, IntentApproved) or decision.intent.account != account:
        return None
    book, intent = _account(state, account), decision.intent
    if _acted(book, intent):
        return None
    if isinstance(intent, SubmitOrder):
        order = _get(book.orders, link_id_for(intent.id))
        if order is not None and order.closed:
            return None
    return intent


def _fold_decision(state: ExecutionState, decision: IntentApproved) -> ExecutionState:
    intent = decision.intent
    account = _account(state, intent.account)
    if _acted(account, intent):
        return state
    acted = repeats.remember(account.acted, intent.id, intent.ts_event)  # order-free, as a replay needs
    return _replace(state, intent.account, msgspec.structs.replace(account, acted=acted,
                                                                   decided=_decided(account, decision)))


def note_decision(state: ExecutionState, decision: Event) -> ExecutionState:
    """An approved order fetched and about to be acted on (or read back past the committed
    offsets, so to be fetched again): decided, in flight, but not yet acted on, so a batch given
    up (the lease lost) is acted on when fetched again. `evolve` folds it whole once acted on."""
    if not isinstance(decision, IntentApproved) or not isinstance(decision.intent, SubmitOrder):
        return state
    account = _account(state, decision.intent.account)
    decided = _decided(account, decision)
    if decided is account.decided:
        return state
    return _replace(state, decision.intent.account, msgspec.structs.replace(account, decided=decided))


def _decided(account: AccountExecution, decision: IntentApproved) -> Sharded[Decided]:
    intent = decision.intent
    if not isinstance(intent, SubmitOrder):
        return account.decided
    link_id = link_id_for(intent.id)
    if _get(account.decided, link_id) is not None:
        return account.decided
    return _put(account.decided, link_id, Decided(intent.symbol, decision.ts_event))


# ---------------------------------------------------------------------- reports


def _known(account: AccountExecution, event: Event) -> bool:
    if isinstance(event, OrderEvent):
        order = _get(account.orders, event.order_link_id)
        return order is not None and event.id in order.event_ids
    return event.id in account.event_ids


def fresh(state: ExecutionState, events: Sequence[Event]) -> list[Event]:
    """The events orders.events does not hold yet (by id), each once, in their order."""
    seen: set[str] = set()
    out: list[Event] = []
    for event in events:
        name = getattr(event, "account", None)
        if event.id in seen or (name is not None and _known(_account(state, name), event)):
            continue
        seen.add(event.id)
        out.append(event)
    return out


def _fold_report(state: ExecutionState, event: Event) -> ExecutionState:
    name = getattr(event, "account", None)
    if name is None:
        return state
    account = _account(state, name)
    if _known(account, event):
        return state  # a record written twice, or folded live and read back: once
    if isinstance(event, OrderEvent):
        account = _fold_order_event(account, event)
    elif isinstance(event, PositionAdopted | FundingSettled | AccountOpened):
        account = _fold_account_event(account, event)
    else:
        return state
    return _replace(state, name, account)


def _fold_account_event(account: AccountExecution, event: PositionAdopted | FundingSettled | AccountOpened,
                        ) -> AccountExecution:
    ids = {**account.event_ids, event.id: None}
    if isinstance(event, PositionAdopted):
        return msgspec.structs.replace(
            account, event_ids=ids,
            positions={**account.positions, event.symbol: account.positions.get(event.symbol, ZERO) + event.qty},
            books={**account.books, event.symbol: adopt(account.books.get(event.symbol, FLAT), event.qty,
                                                        event.avg_entry_price)})
    if isinstance(event, FundingSettled):
        return msgspec.structs.replace(
            account, event_ids=ids, described=True,
            books={**account.books, event.symbol: apply_funding(account.books.get(event.symbol, FLAT), event.amount)})
    return msgspec.structs.replace(account, event_ids=ids, opened=Opening(event.id, event.ts_event,
                                                                           event.wallet_balance))


def _fold_order_event(account: AccountExecution, event: OrderEvent) -> AccountExecution:
    link_id = event.order_link_id
    order = _get(account.orders, link_id) or OrderReports(event.symbol)
    changes: dict[str, Any] = {"event_ids": tuple(sorted((*order.event_ids, event.id)))}
    positions, books = account.positions, account.books
    if isinstance(event, OrderPartiallyFilled | OrderFilled):
        signed = event.fill_qty if event.side == "Buy" else -event.fill_qty
        positions = {**positions, event.symbol: positions.get(event.symbol, ZERO) + signed}
        books = {**books, event.symbol: apply_fill(books.get(event.symbol, FLAT), event.side, event.fill_qty,
                                                   event.fill_price, event.fee)}
        changes.update(qty=order.qty + event.fill_qty, value=order.value + event.fill_qty * event.fill_price,
                       fee=order.fee + event.fee)
    if isinstance(event, OrderFilled | OrderCancelled | OrderRejected):
        changes.update(working=False, closed=True)
    elif isinstance(event, OrderAcknowledged | OrderPartiallyFilled) and not order.closed:
        changes.update(working=True)  # a late acknowledgement never reopens a closed order
    order = msgspec.structs.replace(order, **changes)
    return msgspec.structs.replace(account, orders=_put(account.orders, link_id, order), positions=positions,
                                   books=books, described=True)


# ---------------------------------------------------------------------- the fold


def evolve(state: ExecutionState, event: Event) -> ExecutionState:
    """The state after one record of orders.decisions or orders.events; anything else leaves it."""
    if isinstance(event, IntentApproved):
        return _fold_decision(state, event)
    return _fold_report(state, event)


fold = evolve


def step(state: ExecutionState, event: Event) -> tuple[ExecutionState, tuple[()]]:
    """The runtime's view (replay, `hean state`): execution's outputs are effects at the venue,
    performed by the shell, so a step emits nothing to the log."""
    return evolve(state, event), ()


def _replace(state: ExecutionState, name: str, account: AccountExecution) -> ExecutionState:
    return ExecutionState({**state.accounts, name: account})


# ---------------------------------------------------------------------- reads for the shell


def open_orders(state: ExecutionState, account: str) -> dict[str, str]:
    """orderLinkId → symbol of the account's orders acknowledged and not closed."""
    return {link: o.symbol for link, o in _items(_account(state, account).orders) if o.working}


def unsure_orders(state: ExecutionState, account: str, decided_since_ns: int) -> dict[str, str]:
    """The orders reconciliation asks the venue about: working ones, and those decided since
    `decided_since_ns` (the lookback) and never seen closed (placed, maybe, with reports missed)."""
    book = _account(state, account)
    unsure = open_orders(state, account)
    for link, decided in _items(book.decided):
        order = _get(book.orders, link)
        if decided.ts_event >= decided_since_ns and (order is None or not order.closed):
            unsure.setdefault(link, decided.symbol)
    return unsure


def reported_fills(state: ExecutionState, account: str, link_id: str) -> Fills:
    order = _get(_account(state, account).orders, link_id)
    return (ZERO, ZERO, ZERO) if order is None else (order.qty, order.value, order.fee)


def merge_accounts(parts: Sequence[ExecutionState]) -> ExecutionState:
    """One state from executors of disjoint accounts (each folds only its own account)."""
    return ExecutionState(join_disjoint((part.accounts for part in parts), "execution accounts"))


def summarize(state: ExecutionState) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, account in sorted(state.accounts.items()):
        orders = [o for _, o in _items(account.orders)]
        out[name] = {"decided": sum(len(shard) for shard in account.decided.values()), "orders": len(orders),
                     "working": sum(1 for o in orders if o.working), "closed": sum(1 for o in orders if o.closed),
                     "positions": {s: str(q) for s, q in sorted(account.positions.items()) if q},
                     "opened": account.opened is not None,
                     "acted_recently": sum(len(ids) for ids in account.acted.values())}
    return out
