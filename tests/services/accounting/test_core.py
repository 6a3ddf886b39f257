"""The accounting core: exact positions and PnL from fills and marks; no broker."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.events import AccountOpened, AccountUpdated, OrderFilled, PositionAdopted, PositionUpdated, TickerUpdated
from services.accounting.core import Position, account_totals, apply_fill, combine, fold, initial_state, step
from services.runtime.errors import InvariantViolation
from services.runtime.service import state_hash

D = Decimal
START = D("10000")


def fill(side: str, qty: str, price: str, fee: str = "0", n: int = 0, symbol: str = "BTCUSDT") -> OrderFilled:
    return OrderFilled(id=f"f{n}", ts_event=n, ts_ingest=n, account="acc", symbol=symbol, intent_id=f"i{n}",
                       order_link_id=f"l{n}", exec_id=f"x{n}", side=side, fill_qty=D(qty),  # type: ignore[arg-type]
                       fill_price=D(price), fee=D(fee), is_maker=False, cum_qty=D(qty))


def ticker(mark: str, n: int = 0, symbol: str = "BTCUSDT") -> TickerUpdated:
    return TickerUpdated(id=f"t{n}", ts_event=n, ts_ingest=n, symbol=symbol, mark_price=D(mark))


def test_open_add_reduce_close() -> None:
    p = apply_fill(Position(), "Buy", D("1"), D("100"), D("0.1"))
    p = apply_fill(p, "Buy", D("1"), D("110"), D("0.1"))
    assert p.qty == 2 and p.avg_entry == D("105")
    p = apply_fill(p, "Sell", D("0.5"), D("120"), D("0.05"))
    assert p.qty == D("1.5") and p.realized == D("7.5") and p.avg_entry == D("105")
    p = apply_fill(p, "Sell", D("1.5"), D("100"), D("0"))
    assert p.qty == 0 and p.entry_value == 0 and p.realized == D("7.5") - D("7.5")
    assert p.fees == D("0.25")


def test_short_and_flip() -> None:
    p = apply_fill(Position(), "Sell", D("2"), D("50"), D("0"))
    assert p.qty == -2 and p.unrealized(D("40")) == D("20")
    p = apply_fill(p, "Buy", D("3"), D("45"), D("0"))
    assert p.qty == 1 and p.realized == D("10") and p.avg_entry == D("45")


def test_bad_fill_is_an_invariant_violation() -> None:
    with pytest.raises(InvariantViolation):
        apply_fill(Position(), "Buy", D("0"), D("1"), D("0"))


def test_step_emits_position_and_account_and_marks_move_unrealized() -> None:
    state, emits = step(initial_state(), fill("Buy", "0.5", "60000", "16.5", n=1), START)
    position, account = emits[0].event, emits[1].event
    assert isinstance(position, PositionUpdated) and isinstance(account, AccountUpdated)
    assert position.qty == D("0.5") and position.avg_entry_price == D("60000") and account.fees == D("16.5")
    assert emits[0].topic == "accounting.positions" and emits[0].key == "acc"
    state, emits = step(state, ticker("61000", n=2), START)
    [pos, acc] = [e.event for e in emits]
    assert pos.unrealized_pnl == D("500") and acc.equity == START + D("500") - D("16.5")
    state, emits = step(state, ticker("61000", n=3), START)
    assert emits == []  # the same mark announces nothing
    state, emits = step(state, ticker("3000", n=4, symbol="ETHUSDT"), START)
    assert emits == []  # no ETH position
    assert account_totals(state, "acc", START)["gross_exposure"] == D("30500")


decimals = st.decimals(min_value=D("0.001"), max_value=D("1000"), places=3)


@given(st.lists(st.tuples(st.sampled_from(["Buy", "Sell"]), decimals, decimals), min_size=1, max_size=30))
def test_closing_everything_realizes_the_cash_flow(fills: list[tuple[str, Decimal, Decimal]]) -> None:
    """Whatever the path, once flat: realized PnL = sells' value - buys' value (exactly, when every
    pro-rata split divides evenly; within 1e-20 otherwise)."""
    p = Position()
    cash = D(0)
    for side, qty, price in fills:
        p = apply_fill(p, side, qty, price, D(0))
        cash += qty * price if side == "Sell" else -qty * price
    if p.qty:
        closing_price = D("500")
        cash += abs(p.qty) * closing_price if p.qty > 0 else -abs(p.qty) * closing_price
        p = apply_fill(p, "Sell" if p.qty > 0 else "Buy", abs(p.qty), closing_price, D(0))
    assert p.qty == 0 and p.entry_value == 0
    assert abs(p.realized - cash) < D("1e-20")


def test_replaying_the_same_events_gives_the_same_state() -> None:
    events = [fill("Buy", "1", "100", "0.1", 1), ticker("101", 2), fill("Sell", "0.3", "102", "0.1", 3),
              fill("Buy", "2", "3000", "1", 4, "ETHUSDT"), ticker("2990", 5, "ETHUSDT")]
    states = []
    for _ in range(2):
        state = initial_state()
        for event in events:
            state, _ = step(state, event, START)
        states.append(state)
    assert state_hash({0: states[0]}) == state_hash({0: states[1]})


@given(st.lists(st.one_of(
    st.tuples(st.just("fill"), st.sampled_from(["Buy", "Sell"]), decimals, decimals, st.sampled_from(["A", "B"])),
    st.tuples(st.just("mark"), st.just(""), decimals, decimals, st.sampled_from(["A", "B"]))), max_size=40))
def test_fold_gives_exactly_steps_state(script: list[tuple[str, str, Decimal, Decimal, str]]) -> None:
    """Replays and recovery use `fold` (no outputs): it must land on the very state `step` does."""
    stepped = folded = initial_state()
    for n, (kind, side, qty, price, symbol) in enumerate(script):
        event = fill(side, str(qty), str(price), "0.01", n, symbol) if kind == "fill" else ticker(str(price), n, symbol)
        stepped, _ = step(stepped, event, START)
        folded = fold(folded, event)
    assert folded == stepped and state_hash({0: folded}) == state_hash({0: stepped})


streams = st.lists(st.tuples(st.sampled_from(["fill", "mark"]), st.sampled_from(["Buy", "Sell"]), decimals, decimals,
                             st.sampled_from(["A", "B", "C"])), max_size=40)


def events_of(script: list[tuple[str, str, Decimal, Decimal, str]]) -> list[OrderFilled | TickerUpdated]:
    return [fill(side, str(qty), str(price), "0.01", n, symbol) if kind == "fill" else ticker(str(price), n, symbol)
            for n, (kind, side, qty, price, symbol) in enumerate(script)]


def partition_of(event: OrderFilled | TickerUpdated) -> tuple[str, str]:
    """Like the topics: one partition per (input, symbol)."""
    return ("orders.events" if isinstance(event, OrderFilled) else "md.tickers", event.symbol)


@given(streams, st.randoms(use_true_random=False))
def test_the_state_does_not_depend_on_how_partitions_interleave(
        script: list[tuple[str, str, Decimal, Decimal, str]], rng: random.Random) -> None:
    """What `order_free=True` claims: any interleaving that keeps each partition's order folds to
    the same state, so the runtime may apply records as fetched and a replay may split."""
    events = events_of(script)
    queues: dict[tuple[str, str], list[OrderFilled | TickerUpdated]] = {}
    for event in events:
        queues.setdefault(partition_of(event), []).append(event)
    shuffled = []
    while queues:
        key = rng.choice(sorted(queues))
        shuffled.append(queues[key].pop(0))
        if not queues[key]:
            del queues[key]
    in_order = shuffled_state = initial_state()
    for event in events:
        in_order = fold(in_order, event)
    for event in shuffled:
        shuffled_state = fold(shuffled_state, event)
    assert state_hash({0: shuffled_state}) == state_hash({0: in_order})


@given(streams)
def test_combined_partition_groups_equal_one_fold(script: list[tuple[str, str, Decimal, Decimal, str]]) -> None:
    events = events_of(script)
    whole = initial_state()
    for event in events:
        whole = fold(whole, event)
    parts = []
    for group in ({"A"}, {"B", "C"}):
        part = initial_state()
        for event in (e for e in events if e.symbol in group):
            part = fold(part, event)
        parts.append(part)
    assert state_hash({0: combine(parts)}) == state_hash({0: whole})


def test_combine_refuses_parts_that_share_a_key() -> None:
    """A symbol fed by two partition groups means the topic was repartitioned: no guessing."""
    one = fold(initial_state(), fill("Buy", "1", "100"))
    with pytest.raises(ValueError, match="BTCUSDT"):
        combine([one, fold(initial_state(), fill("Sell", "1", "101"))])
    with pytest.raises(ValueError, match="marks"):
        combine([fold(initial_state(), ticker("100")), fold(initial_state(), ticker("101"))])


def test_merge_accounts_refuses_an_account_held_by_two_instances() -> None:
    from services.accounting.core import merge_accounts

    a = step(initial_state(), fill("Buy", "1", "100", n=1), START)[0]
    with pytest.raises(ValueError, match="held by two instances"):
        merge_accounts([a, a])


def test_an_opened_account_starts_from_the_venue_balance_and_the_positions_it_adopted() -> None:
    """AccountOpened replaces the configured starting balance with the venue's; a PositionAdopted is
    the position as the venue held it (no PnL, no fee), so closing it realizes against its entry."""
    adopted = PositionAdopted(id="pa", ts_event=1, ts_ingest=1, account="acc", symbol="BTCUSDT", qty=D("-0.5"),
                              avg_entry_price=D("60000"), venue_seq=7)
    opened = AccountOpened(id="ao", ts_event=1, ts_ingest=1, account="acc", wallet_balance=D("2500"), positions=1)
    state, emits = step(initial_state(), adopted, START)
    [position, _] = [e.event for e in emits]
    assert isinstance(position, PositionUpdated)
    assert (position.qty, position.avg_entry_price, position.realized_pnl, position.fees) == (D("-0.5"), D("60000"),
                                                                                             0, 0)
    state, emits = step(state, opened, START)
    [account] = [e.event for e in emits]
    assert isinstance(account, AccountUpdated) and account.equity == D("2500") and emits[0].key == "acc"
    state, emits = step(state, ticker("59000", n=2), START)
    assert emits[1].event.equity == D("3000")  # the short gained 500 at the mark
    state, emits = step(state, fill("Buy", "0.5", "59000", "1", n=3), START)
    assert emits[1].event.equity == D("2999") and state.positions["acc"]["BTCUSDT"].realized == D("500")
    assert account_totals(state, "other", START)["equity"] == START, "an account never opened keeps the setting"
    folded = initial_state()
    for event in (adopted, opened, ticker("59000", n=2), fill("Buy", "0.5", "59000", "1", n=3)):
        folded = fold(folded, event)
    assert folded == state
    parts = [fold(initial_state(), opened), fold(initial_state(), adopted)]  # one keyed by account, one by symbol
    assert combine(parts) == fold(fold(initial_state(), adopted), opened)
    with pytest.raises(ValueError, match="acc"):
        combine([parts[0], parts[0]])
