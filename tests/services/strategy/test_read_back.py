"""The strategy folds its own intents back from orders.intents (docs/COMMITS.md, issue 17 §1).

After a crash in the idempotent commit mode the log may hold intents the restarted strategy did
not make itself (the first incarnation made them from another interleaving) or made otherwise:
it must continue from what the log holds, and leave no order of its own unknown to it."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from schemas.events import CancelOrder, Event, OrderCancelled, SubmitOrder
from services.runtime.service import Emit
from services.strategy import core
from tests.samples import instrument_defined
from tests.services.strategy.test_strategies import EMA, MAKER, book, trade

D = Decimal
PARAMS = core.StrategyParams(ema=EMA, makers={"BTCUSDT": msgspec.structs.replace(MAKER, tick_size=D(0))})


def run(events: list[Event], state: core.StrategyState | None = None) -> tuple[core.StrategyState, list[Event]]:
    state = state or core.initial_state()
    out: list[Emit] = []
    for event in events:
        state, emits = core.step(state, event, PARAMS)
        out += emits
    return state, [e.event for e in out]


def cancelled(intent_id: str) -> OrderCancelled:
    return OrderCancelled(id=f"c-{intent_id}", ts_event=9 * 10**9, ts_ingest=0, account="acc", symbol="BTCUSDT",
                          intent_id=intent_id, order_link_id="l")


def test_intents_read_back_as_emitted_leave_pending_and_a_copy_is_dropped() -> None:
    state, quotes = run([instrument_defined(), book(1, "100.0", "1", "100.2", "1")])
    assert set(state.symbols["BTCUSDT"].pending) == {q.id for q in quotes}
    after, out = run(quotes, state)
    symbol = after.symbols["BTCUSDT"]
    assert out == [] and symbol.pending == {} and symbol.maker == state.symbols["BTCUSDT"].maker
    again, out = run(quotes, after)
    assert out == [] and again == after, "a copy of an intent read back changes nothing"


def test_maker_quotes_another_incarnation_sent_are_cancelled_not_left_resting() -> None:
    """The first incarnation read the instrument before book 1 and quoted it; the restarted one
    re-applies them the other way round (book 1 without rules: no quote) and quotes book 2. The
    first quotes are in the log and at the venue: folded back, they are cancelled."""
    _, first = run([instrument_defined(), book(1, "100.0", "1", "100.2", "1")])
    state, second = run([book(1, "100.0", "1", "100.2", "1"), instrument_defined(),
                         book(2, "100.0", "1", "100.2", "1")])
    assert {q.id for q in first}.isdisjoint(q.id for q in second)
    state, out = run([*first, *second], state)
    assert [(type(c), c.intent_id) for c in out] == [(CancelOrder, q.id) for q in first]
    symbol = state.symbols["BTCUSDT"].maker
    assert set(symbol.orders.working) == {q.id for q in (*first, *second)}, "counted until their end comes back"
    assert (symbol.bid, symbol.ask) == tuple(core.maker.Quote(q.id, q.price) for q in second)  # type: ignore[union-attr]
    state, out = run([cancelled(q.id) for q in first], state)
    assert out == [] and set(state.symbols["BTCUSDT"].maker.orders.working) == {q.id for q in second}


def test_a_quote_the_log_holds_with_other_terms_takes_the_logs_terms() -> None:
    state, [bid, ask] = run([instrument_defined(), book(1, "100.0", "1", "100.2", "1")])
    logged = msgspec.structs.replace(bid, price=bid.price - D("0.1"))  # type: ignore[operator]
    state, out = run([logged, ask], state)
    assert out == [] and state.symbols["BTCUSDT"].maker.bid == core.maker.Quote(bid.id, logged.price)  # type: ignore[arg-type]


def test_ema_continues_from_the_order_another_incarnation_sent() -> None:
    """The log holds a Buy 0.5 the restarted strategy did not make (its fold crossed elsewhere):
    folded back, the next cross sells 1.0 to reach -0.5, not 0.5 to end flat."""
    prices = ["100"] * 6
    state, out = run([trade(n, p) for n, p in enumerate(prices)])
    assert out == []
    theirs = SubmitOrder(id="from-the-first-incarnation", ts_event=5, ts_ingest=5, account="acc", strategy="ema",
                         symbol="BTCUSDT", side="Buy", order_type="Market", qty=D("0.5"), time_in_force="IOC")
    state, out = run([theirs], state)
    assert out == [] and state.symbols["BTCUSDT"].ema.orders.expected_position() == D("0.5")
    state, out = run([trade(n, p) for n, p in enumerate(["99", "97", "95"], start=6)], state)
    assert [(i.side, i.qty) for i in out] == [("Sell", D("1.0"))]  # type: ignore[attr-defined]


def test_intents_of_others_are_not_ours() -> None:
    state, _ = run([trade(n, "100") for n in range(3)])
    operator = SubmitOrder(id="op", ts_event=5, ts_ingest=5, account="acc", strategy="operator", symbol="BTCUSDT",
                           side="Buy", order_type="Market", qty=D("1"))
    other_account = msgspec.structs.replace(operator, id="other", strategy="ema", account="someone-else")
    after, out = run([operator, other_account], state)
    assert after is state and out == []


def test_folding_one_log_twice_gives_one_state() -> None:
    """hean replay equals the live state: emissions and read-backs in log order, folded again."""
    log: list[Event] = [instrument_defined(), *[trade(n, p) for n, p in enumerate(["100"] * 6 + ["103"])]]
    state, out = run(log)
    log += out
    state, more = run(out, state)
    log += [book(2, "100.0", "1", "100.2", "1")]
    state, out = run(log[-1:], state)
    log += out
    state, _ = run(out, state)
    again, _ = run(log)
    assert msgspec.msgpack.encode(again) == msgspec.msgpack.encode(state) and more == []
    assert all(not s.pending for s in state.symbols.values())
