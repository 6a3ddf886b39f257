"""The tally core: given trades, expect exact totals and deterministic outputs; no broker."""

from __future__ import annotations

from decimal import Decimal

from schemas.events import TallyUpdated
from services.runtime.service import state_hash
from services.tally import core
from services.tally.feed import synthetic_trades


def fold(trades: list) -> tuple[core.TallyState, list]:
    state, outputs = core.initial_state(), []
    for trade in trades:
        state, emits = core.step(state, trade)
        outputs.extend(emits)
    return state, outputs


def test_totals_are_exact() -> None:
    trades = list(synthetic_trades(500, seed=3))
    state, outputs = fold(trades)
    for symbol, tally in state.symbols.items():
        mine = [t for t in trades if t.symbol == symbol]
        assert tally.count == len(mine)
        assert tally.total_qty == sum((t.qty for t in mine), Decimal(0))
        assert tally.total_notional == sum((t.qty * t.price for t in mine), Decimal(0))
    assert len(outputs) == 500
    assert all(isinstance(e.event, TallyUpdated) and e.key == e.event.symbol for e in outputs)


def test_step_never_mutates_its_input() -> None:
    trades = list(synthetic_trades(3, seed=1))
    state, _ = core.step(core.initial_state(), trades[0])
    before = dict(state.symbols)
    core.step(state, trades[1])
    assert state.symbols == before


def test_folding_twice_gives_equal_state_and_ids() -> None:
    trades = list(synthetic_trades(300, seed=9))
    a, out_a = fold(trades)
    b, out_b = fold(trades)
    assert state_hash({0: a}) == state_hash({0: b})
    assert [e.event.id for e in out_a] == [e.event.id for e in out_b]
    assert len({e.event.id for e in out_a}) == 300
