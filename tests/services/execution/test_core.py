"""The execution core: decisions decided and acted on once, reports folded once per id, the fold
independent of how orders.decisions and orders.events interleave; no broker, no sleeps."""

from __future__ import annotations

import itertools
import random
from decimal import Decimal

import msgspec
import pytest

from schemas.events import (
    AccountOpened,
    CancelOrder,
    Event,
    FundingSettled,
    IntentApproved,
    IntentRejected,
    OrderAcknowledged,
    OrderCancelled,
    OrderFilled,
    OrderPartiallyFilled,
    OrderRejected,
    PositionAdopted,
    SubmitOrder,
)
from services.domain.ids import link_id_for
from services.execution import core
from services.runtime.service import state_hash

D = Decimal
S = 1_000_000_000
ACCOUNT = "acc"


def submit(n: int, account: str = ACCOUNT, symbol: str = "BTCUSDT", ts: int | None = None) -> SubmitOrder:
    return SubmitOrder(id=f"i{n}", ts_event=ts if ts is not None else n * S, ts_ingest=0, origin_ts=n * 7,
                       account=account, strategy="s", symbol=symbol, side="Buy", order_type="Limit", qty=D("0.2"),
                       price=D("50000"))


def approved(intent: SubmitOrder | CancelOrder) -> IntentApproved:
    return IntentApproved(id=f"d-{intent.id}", ts_event=intent.ts_event, ts_ingest=0, intent=intent)


def order(n: int, kind: str, qty: str = "0.1", seq: int = 0, symbol: str = "BTCUSDT") -> Event:
    """A report of order n: "ack", "part", "fill", "cancel" or "reject"."""
    common = {"id": f"e{n}-{kind}-{seq}", "ts_event": n * S + seq, "ts_ingest": 0, "account": ACCOUNT,
              "symbol": symbol, "intent_id": f"i{n}", "order_link_id": link_id_for(f"i{n}")}
    fill = {"exec_id": f"x{n}-{seq}", "side": "Buy", "fill_qty": D(qty), "fill_price": D("50000"), "fee": D("0.5"),
            "is_maker": True, "cum_qty": D(qty)}
    if kind == "ack":
        return OrderAcknowledged(**common, side="Buy", order_type="Limit", qty=D("0.2"), price=D("50000"))
    if kind == "part":
        return OrderPartiallyFilled(**common, **fill, leaves_qty=D("0.1"))
    if kind == "fill":
        return OrderFilled(**common, **fill)
    if kind == "cancel":
        return OrderCancelled(**common)
    return OrderRejected(**common, ret_code=110007, reason="no margin")


def fold(events: list[Event], state: core.ExecutionState | None = None) -> core.ExecutionState:
    state = state or core.initial_state()
    for event in events:
        state = core.evolve(state, event)
    return state


def book(state: core.ExecutionState) -> core.AccountExecution:
    return state.accounts[ACCOUNT]


def test_an_approval_is_acted_on_once_and_only_by_its_account() -> None:
    decision = approved(submit(1))
    state = core.initial_state()
    assert core.decide(state, ACCOUNT, decision) == decision.intent
    assert core.decide(state, "other", decision) is None
    rejected = IntentRejected(id="r", ts_event=S, ts_ingest=0, intent=submit(2), rule="max_qty", detail="")
    assert core.decide(state, ACCOUNT, rejected) is None
    after = core.evolve(state, decision)
    assert core.decide(after, ACCOUNT, decision) is None  # a repeat from an emitter without a transaction
    assert core.evolve(after, decision) == after


def test_a_decision_noted_in_flight_is_still_acted_on() -> None:
    """A batch given up when the lease moved is fetched again: being decided is not being acted on."""
    decision = approved(submit(1))
    noted = core.note_decision(core.initial_state(), decision)
    assert core.decide(noted, ACCOUNT, decision) == decision.intent
    link = link_id_for("i1")
    assert core.summarize(noted)[ACCOUNT]["decided"] == 1
    assert core.unsure_orders(noted, ACCOUNT, 0) == {link: "BTCUSDT"}
    assert core.evolve(noted, decision) == core.evolve(core.initial_state(), decision)


def test_reports_open_fill_and_close_an_order() -> None:
    link = link_id_for("i1")
    state = fold([approved(submit(1)), order(1, "ack")])
    assert core.open_orders(state, ACCOUNT) == {link: "BTCUSDT"}
    state = fold([order(1, "part", seq=1)], state)
    assert core.reported_fills(state, ACCOUNT, link) == (D("0.1"), D("5000.0"), D("0.5"))
    assert book(state).positions == {"BTCUSDT": D("0.1")}
    state = fold([order(1, "fill", seq=2)], state)
    assert core.open_orders(state, ACCOUNT) == {}
    assert core.unsure_orders(state, ACCOUNT, 0) == {}
    assert book(state).positions == {"BTCUSDT": D("0.2")}
    assert book(state).books["BTCUSDT"].qty == D("0.2") and book(state).books["BTCUSDT"].fees == D("1.0")


def test_an_event_folds_once_however_often_it_is_read() -> None:
    events = [order(1, "ack"), order(1, "part", seq=1)]
    once = fold(events)
    assert fold(events, once) == once
    assert core.fresh(once, [*events, order(1, "fill", seq=2), order(1, "fill", seq=2)]) == [order(1, "fill", seq=2)]


def test_a_late_acknowledgement_does_not_reopen_a_closed_order() -> None:
    state = fold([order(1, "cancel"), order(1, "ack")])
    assert core.open_orders(state, ACCOUNT) == {}
    assert core.summarize(state)[ACCOUNT]["closed"] == 1


def test_reconciliation_asks_about_orders_decided_within_the_lookback_and_never_closed() -> None:
    state = fold([approved(submit(1)), approved(submit(2)), approved(submit(3)), order(2, "reject"),
                  order(3, "ack")])
    assert core.unsure_orders(state, ACCOUNT, 0) == {link_id_for("i1"): "BTCUSDT", link_id_for("i3"): "BTCUSDT"}
    # decided before the lookback: only the working order is still asked about
    assert core.unsure_orders(state, ACCOUNT, 2 * S) == {link_id_for("i3"): "BTCUSDT"}


def test_account_events_fold_positions_funding_and_the_opening() -> None:
    adopted = PositionAdopted(id="pa", ts_event=0, ts_ingest=0, account=ACCOUNT, symbol="ETHUSDT", qty=D("-2"),
                              avg_entry_price=D("3000"))
    opened = AccountOpened(id="ao", ts_event=0, ts_ingest=0, account=ACCOUNT, wallet_balance=D("1000"), positions=1)
    funding = FundingSettled(id="fs", ts_event=S, ts_ingest=0, account=ACCOUNT, symbol="ETHUSDT", exec_id="f1",
                             funding_rate=D("0.0001"), position_qty=D("-2"), mark_price=D("3000"), amount=D("-0.6"))
    state = fold([adopted, opened])
    assert not book(state).described  # an opening alone does not describe the account's history
    state = fold([funding, adopted, funding], state)
    account = book(state)
    assert account.opened == core.Opening("ao", 0, D("1000")) and account.described
    assert account.positions == {"ETHUSDT": D("-2")}
    assert account.books["ETHUSDT"].funding == D("-0.6")


def test_the_fold_does_not_depend_on_how_decisions_and_reports_interleave() -> None:
    """Each topic keeps its own order (an order's reports are in one partition); every merge of
    the two lands on one state."""
    decisions = [approved(submit(1)), approved(submit(2, symbol="ETHUSDT")), approved(submit(3))]
    reports = [order(1, "ack"), order(1, "part", seq=1), order(2, "ack", symbol="ETHUSDT"), order(1, "fill", seq=2),
               order(3, "reject"), order(2, "cancel", symbol="ETHUSDT")]
    hashes = set()
    for picks in itertools.combinations(range(len(decisions) + len(reports)), len(decisions)):
        d, r, merged = iter(decisions), iter(reports), []
        for i in range(len(decisions) + len(reports)):
            merged.append(next(d) if i in picks else next(r))
        hashes.add(state_hash({0: fold(merged)}))
    assert len(hashes) == 1


def test_the_repeat_filter_keeps_the_newest_five_minutes_whatever_the_order() -> None:
    decisions = [approved(submit(n, ts=n * 20 * S)) for n in range(40)]  # 20 s apart: 13 minutes
    states = []
    for seed in range(5):
        shuffled = decisions[:]
        random.Random(seed).shuffle(shuffled)
        states.append(fold(shuffled))
    assert all(s == states[0] for s in states)
    kept = {i for ids in book(states[0]).acted.values() for i in ids}
    newest_bucket = 39 * 20 // 10
    assert kept == {f"i{n}" for n in range(40) if n * 20 // 10 > newest_bucket - core.ACTED_BUCKETS}
    assert core.decide(states[0], ACCOUNT, decisions[-1]) is None
    assert core.summarize(states[0])[ACCOUNT]["decided"] == 40  # orders stay decided; only the filter forgets


def test_cancels_are_acted_on_once_and_decide_no_order() -> None:
    cancel = CancelOrder(id="c1", ts_event=S, ts_ingest=0, account=ACCOUNT, strategy="s", symbol="BTCUSDT",
                         intent_id="i1")
    state = fold([approved(cancel)])
    assert core.decide(state, ACCOUNT, approved(cancel)) is None
    assert core.summarize(state)[ACCOUNT]["decided"] == 0


def test_executors_of_disjoint_accounts_join_and_a_shared_one_is_refused() -> None:
    mine = fold([approved(submit(1))])
    theirs = fold([approved(submit(2, account="other"))])
    joined = core.merge_accounts([mine, theirs])
    assert joined == fold([approved(submit(1)), approved(submit(2, account="other"))])
    with pytest.raises(ValueError, match="two instances"):
        core.merge_accounts([mine, mine])


def test_the_state_round_trips_through_a_snapshot() -> None:
    state = fold([approved(submit(1)), order(1, "ack"), order(1, "part", seq=1)])
    raw = msgspec.msgpack.encode(state)
    assert msgspec.msgpack.decode(raw, type=core.ExecutionState) == state
    assert core.step(state, order(1, "fill", seq=2)) == (fold([order(1, "fill", seq=2)], state), ())


def test_no_local_time_is_in_the_state() -> None:
    """When HEAN received something (ts_ingest, origin_ts) differs per run; two runs of one log
    must hold one state (the chaos test compares a crash run's with a clean one's)."""
    def run(local: int) -> core.ExecutionState:
        intent = msgspec.structs.replace(submit(1), ts_ingest=local, origin_ts=local)
        opened = AccountOpened(id="ao", ts_event=5, ts_ingest=local, account=ACCOUNT, wallet_balance=D("1000"))
        fill = msgspec.structs.replace(order(1, "fill", seq=2), ts_ingest=local, origin_ts=local)
        return fold([approved(intent), opened, order(1, "ack"), fill])

    assert run(1) == run(2)


def test_an_orders_event_ids_do_not_depend_on_their_order() -> None:
    assert fold([order(1, "ack"), order(1, "part", seq=1)]) == fold([order(1, "part", seq=1), order(1, "ack")])


def test_an_order_already_ended_in_the_log_is_not_placed_again() -> None:
    """A crash after its refusal was logged and before the decision's offset was committed: the
    restart re-reads the decision, not yet acted on, but its order has ended."""
    decision = approved(submit(1))
    refused = fold([order(1, "reject")])
    assert core.decide(refused, ACCOUNT, decision) is None
    assert core.decide(fold([order(1, "ack")]), ACCOUNT, decision) == decision.intent  # only an end
    assert core.evolve(refused, decision) == fold([order(1, "reject"), decision])  # still folded as acted on
