"""Risk rules, each rejected with the right reason, and the kill switch halting and resuming."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from schemas.events import (
    AccountUpdated,
    BookDeltaReceived,
    CancelOrder,
    IntentApproved,
    IntentRejected,
    OrderFilled,
    PositionAdopted,
    SubmitOrder,
    TradingHalted,
    TradingResumed,
)
from services.risk.core import InstrumentRules, RiskParams, RiskState, initial_state, step

D = Decimal
PARAMS = RiskParams(
    instruments={"BTCUSDT": InstrumentRules(D("0.1"), D("0.001"), D("0.001"), D("5")),
                 "ETHUSDT": InstrumentRules(D("0.01"), D("0.01"), D("0.01"), D("5"))},
    max_order_qty=D("1"), max_order_notional=D("60000"), max_position_notional=D("100000"),
    max_gross_exposure=D("150000"), price_band=D("0.01"), max_open_orders=3, rate_per_second=3,
    daily_loss_limit=D("500"))
S = 1_000_000_000


def submit(n: int, qty: str = "0.1", price: str | None = "50000.0", side: str = "Buy", symbol: str = "BTCUSDT",
           reduce_only: bool = False, ts: int | None = None) -> SubmitOrder:
    return SubmitOrder(id=f"i{n}", ts_event=ts if ts is not None else n * S, ts_ingest=n, account="acc",
                       strategy="s", symbol=symbol, side=side, order_type="Limit" if price else "Market",  # type: ignore[arg-type]
                       qty=D(qty), price=D(price) if price else None, reduce_only=reduce_only)


def mid(state: RiskState, price: str, symbol: str = "BTCUSDT") -> RiskState:
    p = D(price)
    book = BookDeltaReceived(id="b", ts_event=0, ts_ingest=0, symbol=symbol, depth=50, update_id=1, seq=1, bids=[],
                             asks=[], best_bid=(p - D("0.1"), D(1)), best_ask=(p + D("0.1"), D(1)))
    return step(state, book, PARAMS)[0]


def decide(state: RiskState, intent: SubmitOrder | CancelOrder, params: RiskParams = PARAMS,
           read_back: bool = True) -> tuple[RiskState, str]:
    """One decision; like the live loop, the decision is then read back from orders.decisions."""
    state, [emit] = step(state, intent, params)
    assert emit.topic == "orders.decisions" and emit.key == intent.symbol
    if read_back:
        state, _ = step(state, emit.event, params)
    return state, emit.event.rule if isinstance(emit.event, IntentRejected) else "approved"


@pytest.fixture
def ready() -> RiskState:
    return mid(mid(initial_state(), "50000.0"), "3000.00", "ETHUSDT")


@pytest.mark.parametrize(("intent", "rule"), [
    (submit(1, qty="0.1001"), "qty_step"),
    (submit(1, qty="0.0001"), "qty_step"),
    (submit(1, price="50000.05"), "tick_size"),
    (submit(1, qty="2"), "max_order_qty"),
    (submit(1, price="51000.0"), "price_band"),
    (submit(1, qty="0.001", price="4000.0"), "price_band"),
    (submit(1, symbol="DOGEUSDT"), "unknown_symbol"),
    (submit(1, qty="0.001", price=None, symbol="ETHUSDT"), "qty_step"),
    (submit(1, qty="0.01", price="300.00", symbol="ETHUSDT"), "price_band"),
])
def test_rules_reject_with_their_name(ready: RiskState, intent: SubmitOrder, rule: str) -> None:
    assert decide(ready, intent)[1] == rule


def test_min_and_max_notional_and_no_market_price() -> None:
    no_book = initial_state()
    assert decide(no_book, submit(1, price=None))[1] == "no_market_price"
    state = mid(initial_state(), "3000.00", "ETHUSDT")
    assert decide(state, submit(1, qty="0.01", price="3000.00", symbol="ETHUSDT"))[1] == "approved"
    state = mid(initial_state(), "100.00", "ETHUSDT")
    assert decide(state, submit(2, qty="0.01", price="100.00", symbol="ETHUSDT"))[1] == "min_notional"
    state = mid(initial_state(), "70000.0")
    assert decide(state, submit(3, qty="0.9", price="70000.0"))[1] == "max_notional"


def test_position_open_orders_fills_and_rate(ready: RiskState) -> None:
    state, outcome = decide(ready, submit(1, qty="0.6", ts=0))
    assert outcome == "approved"
    state, outcome = decide(state, submit(2, qty="0.6", ts=0))
    assert outcome == "approved"
    # working buys of 1.2 BTC (60,000): another 0.9 makes 2.1 x 50,000 = 105,000 > 100,000
    state, outcome = decide(state, submit(3, qty="0.9", ts=0))
    assert outcome == "max_position"
    state, outcome = decide(state, submit(4, qty="0.6", side="Sell", ts=0))
    assert outcome == "approved"  # reduces the expected position; 3 orders now work
    state, outcome = decide(state, submit(5, qty="0.1", ts=0))
    assert outcome == "max_open_orders"
    filled = OrderFilled(id="f", ts_event=0, ts_ingest=0, account="acc", symbol="BTCUSDT", intent_id="i1",
                         order_link_id="l", exec_id="x", side="Buy", fill_qty=D("0.6"), fill_price=D("50000"),
                         fee=D("0"), is_maker=True, cum_qty=D("0.6"))
    state, _ = step(state, filled, PARAMS)
    assert state.accounts["acc"].positions["BTCUSDT"].qty == D("0.6") and "i1" not in state.accounts["acc"].working
    state, outcome = decide(state, submit(6, qty="0.1", ts=0))
    assert outcome == "order_rate"  # 3 approvals in the last second already
    state, outcome = decide(state, submit(7, qty="0.1", ts=S // 2))
    assert outcome == "order_rate"
    state, outcome = decide(state, submit(8, qty="0.1", ts=S + 1))
    assert outcome == "approved"  # the approvals at t=0 left the window


def test_gross_exposure_across_symbols(ready: RiskState) -> None:
    params = msgspec.structs.replace(PARAMS, max_gross_exposure=D("100000"), max_open_orders=10, rate_per_second=10)
    state = ready
    for n, (qty, price, symbol, want) in enumerate([
        ("1", "50000.0", "BTCUSDT", "approved"),   # 50,000
        ("1", "3000.00", "ETHUSDT", "approved"),   # 53,000
        ("1", "50000.0", "BTCUSDT", "max_gross_exposure"),  # BTC would be 100,000 (allowed) but gross 103,000
        ("0.9", "50000.0", "BTCUSDT", "approved"),  # 98,000
    ]):
        state, got = decide(state, submit(n, qty=qty, price=price, symbol=symbol, ts=0), params)
        assert got == want, (n, got)


def test_pending_decisions_count_before_they_are_read_back(ready: RiskState) -> None:
    """Live, a decision is not read back at once; the pending overlay keeps limits tight meanwhile."""
    state, outcome = decide(ready, submit(1, qty="1", ts=0), read_back=False)
    state, outcome = decide(state, submit(2, qty="1", ts=0), read_back=False)
    state, outcome = decide(state, submit(3, qty="0.1", ts=0), read_back=False)
    assert outcome == "max_position"  # 2.1 BTC x 50,000 with two approvals still in flight


def test_cancels_always_pass(ready: RiskState) -> None:
    halted = step(ready, TradingHalted(id="h", ts_event=0, ts_ingest=0, account="acc", reason="ops", actor="op"),
                  PARAMS)[0]
    cancel = CancelOrder(id="c", ts_event=0, ts_ingest=0, account="acc", strategy="s", symbol="BTCUSDT",
                         intent_id="i1")
    assert decide(halted, cancel)[1] == "approved"


def test_kill_switch_on_daily_loss_and_operator_resume(ready: RiskState) -> None:
    def equity(value: str, ts: int) -> AccountUpdated:
        return AccountUpdated(id=f"e{value}", ts_event=ts, ts_ingest=ts, account="acc", equity=D(value),
                              realized_pnl=D(0), unrealized_pnl=D(0), fees=D(0), gross_exposure=D(0))

    state, out = step(ready, equity("10000", S), PARAMS)
    assert out == []
    state, out = step(state, equity("9600", 2 * S), PARAMS)
    assert out == []
    state, [halt] = step(state, equity("9500", 3 * S), PARAMS)
    assert halt.topic == "control" and isinstance(halt.event, TradingHalted) and halt.event.actor == "risk"
    state, outcome = decide(state, submit(1, ts=3 * S))
    assert outcome == "halted"  # already, before the halt is read back from control
    state, _ = step(state, halt.event, PARAMS)
    assert state.accounts["acc"].halted
    state, outcome = decide(state, submit(2, side="Sell", reduce_only=True, ts=3 * S))
    assert outcome == "approved"  # only reduce-only orders pass
    state, out = step(state, equity("9400", 4 * S), PARAMS)
    assert out == []  # already halted: no second halt
    resume = TradingResumed(id="r", ts_event=5 * S, ts_ingest=0, account="acc", reason="reviewed", actor="ops")
    state, _ = step(state, resume, PARAMS)
    assert decide(state, submit(3, ts=5 * S))[1] == "approved"
    next_day = 86_400 * S + 1
    state, out = step(state, equity("9400", next_day), PARAMS)
    assert out == [] and state.accounts["acc"].day_start_equity == D("9400")


def test_the_committed_state_does_not_depend_on_topic_interleaving(ready: RiskState) -> None:
    """Replay reads topics in another interleaving than live did; per-topic order is all Kafka keeps.
    Folding the same recorded decisions, fills, halts and equity in any interleaving ends equal."""
    import itertools

    from services.runtime.service import state_hash

    intents = [submit(n, qty="0.1", ts=n) for n in range(1, 4)]
    decisions = [step(ready, i, PARAMS)[1][0].event for i in intents]
    fill = OrderFilled(id="f", ts_event=5, ts_ingest=5, account="acc", symbol="BTCUSDT", intent_id="i2",
                       order_link_id="l", exec_id="x", side="Buy", fill_qty=D("0.1"), fill_price=D("50000"),
                       fee=D("0"), is_maker=True, cum_qty=D("0.1"))
    topics = {"decisions": decisions, "events": [fill],
              "control": [TradingHalted(id="h", ts_event=6, ts_ingest=6, account="acc", reason="x", actor="op")]}
    hashes = set()
    for order in itertools.permutations(["decisions", "events", "control"]):
        for split in range(len(decisions) + 1):  # also interleave within the decision stream
            sequence = [*decisions[:split]]
            for topic in order:
                sequence += topics[topic] if topic != "decisions" else []
            sequence += decisions[split:]
            state = ready
            for event in sequence:
                state, _ = step(state, event, PARAMS)
            hashes.add(state_hash({0: state}))
    assert len(hashes) == 1


def test_a_decision_read_before_its_intent_is_not_decided_again(ready: RiskState) -> None:
    """In a replay the decision topic may be read ahead of the intent topic."""
    intent = submit(1, ts=0)
    decision = step(ready, intent, PARAMS)[1][0].event
    state, _ = step(ready, decision, PARAMS)  # read back first
    state, emits = step(state, intent, PARAMS)
    assert emits == [] and state.accounts["acc"].pending == {} and state.accounts["acc"].early == ()
    assert "i1" in state.accounts["acc"].working


def test_a_halt_cancels_every_working_order_and_flattens_on_request(ready: RiskState) -> None:
    """Read-back orders and an approval not read back yet are both cancelled; with flatten, every
    position risk knows gets a reduce-only market order. Reading those decisions back leaves no
    pending or early entry (they were never intents), and the flatten order counts as working."""
    state, _ = decide(ready, submit(1, qty="0.1", ts=1))
    state, _ = decide(state, submit(2, qty="0.2", side="Sell", ts=2))
    state, _ = decide(state, submit(3, qty="0.1", ts=3), read_back=False)  # approved, still pending
    fill = OrderFilled(id="f1", ts_event=4, ts_ingest=4, account="acc", symbol="BTCUSDT", intent_id="i1",
                       order_link_id="h-i1", order_id="o1", exec_id="x1", side="Buy", fill_qty=D("0.1"),
                       fill_price=D("50000"), fee=D("0"), is_maker=True, cum_qty=D("0.1"))
    state, _ = step(state, fill, PARAMS)  # i1 filled: long 0.1, no longer working
    halt = TradingHalted(id="h", ts_event=5, ts_ingest=5, account="acc", reason="ops", actor="op", flatten=True)
    state, emits = step(state, halt, PARAMS)
    assert state.accounts["acc"].halted
    decisions = [e.event for e in emits]
    assert all(isinstance(d, IntentApproved) and e.topic == "orders.decisions" for d, e in zip(decisions, emits,
                                                                                                strict=True))
    cancels = sorted(d.intent.intent_id for d in decisions if isinstance(d.intent, CancelOrder))
    assert cancels == ["i2", "i3"]
    [flatten] = [d.intent for d in decisions if isinstance(d.intent, SubmitOrder)]
    assert (flatten.side, flatten.qty, flatten.order_type, flatten.reduce_only) == ("Sell", D("0.1"), "Market", True)
    assert step(state, halt, PARAMS)[1] == emits, "the same halt makes the same decisions (replay)"
    for decision in decisions:
        state, out = step(state, decision, PARAMS)
        assert out == []
    account = state.accounts["acc"]
    assert account.early == () and set(account.pending) == {"i3"}  # i3's own approval is still unread
    assert flatten.id in account.working


def test_without_working_orders_or_positions_a_halt_only_halts(ready: RiskState) -> None:
    state, emits = step(ready, TradingHalted(id="h", ts_event=1, ts_ingest=1, account="acc", reason="x", actor="op",
                                             flatten=True), PARAMS)
    assert emits == [] and state.accounts["acc"].halted


@pytest.mark.parametrize("intent_id", ["run.1", "a" * 35, "my order", "", "ordre-é", "abc\n"])
def test_an_intent_id_the_venue_would_not_carry_back_is_refused(ready: RiskState, intent_id: str) -> None:
    """Its orderLinkId would be a hash of it, so the venue's fills could not name the intent (nor
    its strategy's loss, nor its parent): refused, not placed and lost track of."""
    assert decide(ready, msgspec.structs.replace(submit(1), id=intent_id))[1] == "intent_id"
    assert decide(ready, msgspec.structs.replace(submit(1), id="A-z_09" * 5 + "abcd"))[1] == "approved"


def test_a_strategy_may_not_pose_as_risk(ready: RiskState) -> None:
    intent = msgspec.structs.replace(submit(1), strategy="risk")
    assert decide(ready, intent)[1] == "reserved_strategy"


def test_a_drawdown_from_the_equity_peak_trips_the_kill_switch_across_days(ready: RiskState) -> None:
    """Each day's loss stays under the daily limit (500), but equity falls 1,000 below its peak over
    three days: max_drawdown (800 here) halts the account, and names itself in the reason."""
    params = msgspec.structs.replace(PARAMS, max_drawdown=D("800"))
    day = 86_400 * S

    def equity(value: str, ts: int) -> AccountUpdated:
        return AccountUpdated(id=f"e{value}-{ts}", ts_event=ts, ts_ingest=ts, account="acc", equity=D(value),
                              realized_pnl=D(0), unrealized_pnl=D(0), fees=D(0), gross_exposure=D(0))

    state = ready
    for value, ts in (("10000", S), ("10200", 2 * S), ("9800", day + S), ("9500", 2 * day + S)):
        state, out = step(state, equity(value, ts), params)
        assert out == [], value
    state, [halt] = step(state, equity("9350.12500000000", 2 * day + 2 * S), params)
    assert isinstance(halt.event, TradingHalted) and halt.event.reason.startswith("max_drawdown: 849.875 below")
    assert "10200" in halt.event.reason and state.accounts["acc"].equity_peak == D("10200")


def test_an_adopted_position_counts_against_the_limits_and_is_flattened(ready: RiskState) -> None:
    """A position the venue held before HEAN (PositionAdopted) is part of the account's position:
    1.5 BTC held at a 50,000 mid leaves room for 0.5 more under the 100,000 limit, and a flattening
    halt closes it."""
    adopted = PositionAdopted(id="pa", ts_event=0, ts_ingest=0, account="acc", symbol="BTCUSDT", qty=D("1.5"),
                              avg_entry_price=D("48000"))
    assert decide(ready, submit(1, qty="0.6", ts=0))[1] == "approved"
    state, emits = step(ready, adopted, PARAMS)
    assert emits == [] and state.accounts["acc"].positions["BTCUSDT"].qty == D("1.5")
    assert decide(state, submit(1, qty="0.6", ts=0))[1] == "max_position"
    assert decide(state, submit(1, qty="0.5", ts=0))[1] == "approved"
    halt = TradingHalted(id="h", ts_event=0, ts_ingest=0, account="acc", reason="stop", actor="operator", flatten=True)
    _, emits = step(state, halt, PARAMS)
    [flatten] = [e.event.intent for e in emits]
    assert (flatten.side, flatten.qty, flatten.reduce_only) == ("Sell", D("1.5"), True)


def test_repeated_intents_and_decisions_are_dropped(ready: RiskState) -> None:
    """An emitter without a transaction may send an output twice (docs/COMMITS.md): an intent
    repeated before or after its decision is read back is not decided again, a decision repeated
    is not folded twice, in every order of the four records; the state equals the one without repeats."""
    import itertools

    from services.runtime.service import state_hash

    intent = submit(1, ts=3 * S)
    decision = step(ready, intent, PARAMS)[1][0].event
    once = ready
    for event in (intent, decision):
        once, _ = step(once, event, PARAMS)
    fill = OrderFilled(id="f", ts_event=4 * S, ts_ingest=4, account="acc", symbol="BTCUSDT", intent_id="i1",
                       order_link_id="l", exec_id="x", side="Buy", fill_qty=D("0.1"), fill_price=D("50000"),
                       fee=D("0"), is_maker=True, cum_qty=D("0.1"))
    once, _ = step(once, fill, PARAMS)
    hashes, emitted = set(), []
    for sequence in set(itertools.permutations([intent, intent, decision, decision])):
        state, emits = ready, []
        for event in (*sequence, fill):
            state, out = step(state, event, PARAMS)
            emits += out
        emitted.append(len(emits))
        hashes.add(state_hash({0: state}))
    assert hashes == {state_hash({0: once})}
    assert set(emitted) <= {0, 1}  # decided at most once, whatever came first
    assert once.accounts["acc"].working == {}  # filled: no phantom order from the repeated approval


def test_repeat_ids_are_kept_for_a_window_of_event_time(ready: RiskState) -> None:
    """The ids read back are kept 5 minutes of event time, the newest decision's, then dropped."""
    from services.risk.core import DEDUP_BUCKET_NS, DEDUP_BUCKETS

    state = ready
    for n, ts in enumerate((0, DEDUP_BUCKET_NS * DEDUP_BUCKETS - 1, DEDUP_BUCKET_NS * DEDUP_BUCKETS)):
        state, _ = decide(state, CancelOrder(id=f"c{n}", ts_event=ts, ts_ingest=0, account="acc", strategy="s",
                                             symbol="BTCUSDT", intent_id="x"))
    kept = {i for ids in state.accounts["acc"].decided.values() for i in ids}
    assert kept == {"c1", "c2"}
