"""Every deterministic id recipe in one place: which cause an id is derived from.

Why one module: an id is a promise that the same cause gives the same id on every replay, and
more than one service leans on it: execution derives fill ids from the venue's execId and the
lockstep driver recomputes them to know what the log must hold; risk derives decision ids from
intent ids; the venue's orderLinkId comes from the intent id so an order can never be placed
twice. A recipe written twice drifts, so each is written once, here. `derive_id` (the hash, part
of the event envelope) stays in schemas.events and is re-exported for the few one-off ids
(tests, synthetic feeds) that have no recipe of their own.
"""

from __future__ import annotations

import re

from schemas.events import derive_id

__all__ = [
    "account_opened_id", "account_update_id", "algo_child_id", "algo_done_id", "algo_report_id", "dead_letter_id",
    "decision_id", "derive_id", "drift_halt_id", "drift_id", "ema_intent_id", "exec_ack_id", "exec_amend_id",
    "exec_amend_reject_id", "exec_cancel_id", "exec_fill_id", "exec_funding_id", "exec_reject_id", "halt_cancel_id",
    "halt_flatten_id", "instrument_event_id", "intent_id_of", "link_id_for", "local_reject_id", "maker_amend_id",
    "maker_cancel_id", "maker_quote_id", "market_book_id", "market_ticker_id", "market_trade_id",
    "operator_control_id", "position_adopted_id", "position_update_id", "raw_dead_letter_id", "risk_halt_id",
    "trade_gap_id", "wallet_drift_halt_id", "wallet_drift_id",
]

# ---------------------------------------------------------------- market data (ingest)


def market_book_id(venue: str, category: str, topic: str, update_id: int, snapshot: bool) -> str:
    """A book event from the venue's update id: a re-sent frame is a duplicate, never a new fact."""
    return derive_id(venue, category, topic, update_id, "snapshot" if snapshot else "delta")


def market_trade_id(venue: str, category: str, symbol: str, trade_id: str) -> str:
    return derive_id(venue, category, symbol, "trade", trade_id)


def trade_gap_id(venue: str, category: str, symbol: str, last_trade_id: str, reason: str,
                 first_trade_id: str) -> str:
    """A trade gap from its two ends: the same hole found again (a second instance, a restart
    before the fill published anything) is the same fact, so readers drop the repeat."""
    return derive_id(venue, category, symbol, "trade-gap", last_trade_id, reason, first_trade_id)


def market_ticker_id(venue: str, category: str, topic: str, cross_seq: int, ts: int) -> str:
    return derive_id(venue, category, topic, cross_seq, ts)


def instrument_event_id(instrument: str, rules: tuple[object, ...]) -> str:
    """A ref.instruments record from the instrument and its rules (not the time): reading the same
    rules again (every ingest start) gives the same id, a change gives a new one."""
    return derive_id("instrument", instrument, derive_id(*rules))


# ---------------------------------------------------------------- strategies


def ema_intent_id(account: str, symbol: str, trade_event_id: str) -> str:
    return derive_id("ema", account, symbol, trade_event_id)


def maker_quote_id(account: str, symbol: str, book_event_id: str, side: str) -> str:
    return derive_id("maker", account, symbol, book_event_id, side)


def maker_cancel_id(quote_intent_id: str) -> str:
    return derive_id("maker-cancel", quote_intent_id)


def maker_amend_id(quote_intent_id: str, book_event_id: str) -> str:
    return derive_id("maker-amend", quote_intent_id, book_event_id)


# ---------------------------------------------------------------- execution algorithms (services/algos)


def algo_child_id(parent_id: str, n: int) -> str:
    """The parent's n-th child order (0, 1, …): the fold numbers children in the order it sends
    them, so a replay or a restarted service sends the same children under the same ids."""
    return derive_id("algo-child", parent_id, n)


def algo_report_id(parent_id: str, cause_id: str) -> str:
    """A progress report, from the event that ended a child (its fill, cancel or rejection)."""
    return derive_id("algo-report", parent_id, cause_id)


def algo_done_id(parent_id: str) -> str:
    """The parent's one completion report."""
    return derive_id("algo-done", parent_id)


def algo_cancel_child_id(parent_id: str, child_id: str) -> str:
    """The CancelOrder of a cancelled parent's working child: one per child, however often the
    parent's cancel is read."""
    return derive_id("algo-cancel", parent_id, child_id)


# ---------------------------------------------------------------- risk


def decision_id(intent_id: str) -> str:
    """The approval or rejection of an intent: one decision per intent, however often it is decided."""
    return derive_id("risk", intent_id)


def halt_cancel_id(halt_id: str, intent_id: str) -> str:
    return derive_id("halt-cancel", halt_id, intent_id)


def halt_flatten_id(halt_id: str, symbol: str) -> str:
    return derive_id("halt-flatten", halt_id, symbol)


def risk_halt_id(account_update_id: str) -> str:
    """The halt a loss limit trips, from the equity update that tripped it."""
    return derive_id("risk-halt", account_update_id)


def drift_id(account: str, symbol: str, venue_seq: int, venue_qty: object, reported_qty: object) -> str:
    """A position drift from what was compared: the same drift seen again is the same fact."""
    return derive_id("drift", account, symbol, venue_seq, venue_qty, reported_qty)


def drift_halt_id(drift: str) -> str:
    """The halt a drift trips (EXECUTION_HALT_ON_DRIFT), from the drift's id."""
    return derive_id("drift-halt", drift)


def wallet_drift_id(account: str, coin: str, venue_balance: object, expected_balance: object) -> str:
    """A wallet drift from what was compared: the same difference seen again is the same fact."""
    return derive_id("wallet-drift", account, coin, venue_balance, expected_balance)


def wallet_drift_halt_id(drift: str) -> str:
    """The halt a wallet drift trips (EXECUTION_HALT_ON_WALLET_DRIFT), from the drift's id."""
    return derive_id("wallet-drift-halt", drift)


def account_opened_id(account: str) -> str:
    """An account's opening (AccountOpened): one per account, from the account alone, so a restart
    that reads the venue again (other figures by then) still finds it already logged."""
    return derive_id("account-opened", account)


def position_adopted_id(account: str, symbol: str) -> str:
    """A position adopted at the account's opening: one per account and symbol."""
    return derive_id("position-adopted", account, symbol)


def operator_control_id(account: str, state: str, now_ns: int) -> str:
    """An operator's halt or resume: a new command each time (the time is part of the cause)."""
    return derive_id("operator", account, state, now_ns)


# ---------------------------------------------------------------- execution


_LINK_SAFE = re.compile(r"^[A-Za-z0-9_-]{1,34}$")
LINK_PREFIX = "h-"


def link_id_for(intent_id: str) -> str:
    """The venue orderLinkId of an intent: deterministic, at most 36 of [A-Za-z0-9_-], so a crash
    between sending and logging cannot place the order twice (the venue refuses a duplicate)."""
    safe = intent_id if _LINK_SAFE.fullmatch(intent_id) else derive_id("link", intent_id)
    return f"{LINK_PREFIX}{safe}"


def round_trips(intent_id: str) -> bool:
    """Whether the venue's reports of this intent's order name the intent again: its orderLinkId
    carries the id itself (1-34 of [A-Za-z0-9_-]; every id recipe here gives 32 hex digits). Any
    other id is hashed into the link id, still never placed twice, but a fill reported under the
    hash cannot be traced back to the intent, so risk refuses such an order (rule intent_id)."""
    return _LINK_SAFE.fullmatch(intent_id) is not None  # fullmatch: "$" would let "abc\n" through


def intent_id_of(link_id: str) -> str:
    """The intent id behind one of our orderLinkIds ("" for orders HEAN did not place)."""
    return link_id[len(LINK_PREFIX):] if link_id.startswith(LINK_PREFIX) else ""


def exec_ack_id(order_id: str) -> str:
    return derive_id("exec-ack", order_id)


def exec_fill_id(exec_id: str) -> str:
    """A fill from the venue's execId: pushed on the stream or found by reconciliation, one id."""
    return derive_id("exec-fill", exec_id)


def exec_funding_id(exec_id: str) -> str:
    """A funding settlement from the venue's execId (pushed or reconciled, one id)."""
    return derive_id("exec-funding", exec_id)


def exec_cancel_id(order_id: str) -> str:
    return derive_id("exec-cancel", order_id)


def exec_reject_id(order_id: str) -> str:
    return derive_id("exec-reject", order_id)


def exec_amend_id(amend_intent_id: str) -> str:
    """The venue's acceptance of an amend, from the amend intent (one answer per amend)."""
    return derive_id("exec-amend", amend_intent_id)


def exec_amend_reject_id(amend_intent_id: str) -> str:
    return derive_id("exec-amend-reject", amend_intent_id)


def local_reject_id(intent_id: str) -> str:
    """An order execution refused before sending (too old a decision): from the intent."""
    return derive_id("exec-reject", intent_id)


# ---------------------------------------------------------------- accounting


def position_update_id(cause_id: str, account: str, symbol: str) -> str:
    return derive_id("accounting", cause_id, account, symbol)


def account_update_id(cause_id: str, account: str) -> str:
    return derive_id("accounting", cause_id, account)


# ---------------------------------------------------------------- dead letters


def dead_letter_id(service: str, topic: str, partition: int, offset: int) -> str:
    """A dead letter from the service and the source position: the same service dead-lettering the
    same record again (a replay, a restart) gives the same id, a repeat readers drop; another
    service refusing the same record is another fact (the recorder keeps one row per id)."""
    return derive_id("dlq", service, topic, partition, offset)


def raw_dead_letter_id(source: str, recv_ns: int, head: bytes) -> str:
    """A dead letter of input that never was a log record (a venue frame): source, time and bytes."""
    return derive_id("dlq", source, recv_ns, head)
