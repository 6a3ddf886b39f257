"""The report's figures on a run whose equity path is known."""

from __future__ import annotations

from decimal import Decimal as D

from schemas.events import AccountUpdated, PositionUpdated
from schemas.topics import ACCOUNTING_POSITIONS
from services.backtest.loop import Outcome
from services.backtest.metrics import compute, drawdown, ratios, sample

S = 10**9


def account(ts: int, equity: str) -> AccountUpdated:
    return AccountUpdated(id=f"a{ts}", ts_event=ts * S, ts_ingest=0, account="x", equity=D(equity),
                          realized_pnl=D(0), unrealized_pnl=D(0), fees=D(0), gross_exposure=D(0))


def position(ts: int, qty: str, realized: str) -> PositionUpdated:
    return PositionUpdated(id=f"p{ts}", ts_event=ts * S, ts_ingest=0, account="x", symbol="BTCUSDT", qty=D(qty),
                           avg_entry_price=D(0), mark_price=D(0), realized_pnl=D(realized), unrealized_pnl=D(0),
                           fees=D(0))


def test_drawdown_its_depth_and_time_under_water() -> None:
    curve = [(0, D(100)), (10 * S, D(110)), (20 * S, D(99)), (30 * S, D(105)), (40 * S, D(111)), (50 * S, D(108))]
    worst, fraction, under = drawdown(curve, 60 * S)
    assert worst == D(11) and abs(fraction - 0.1) < 1e-12
    assert under == 30.0  # from the 110 peak at 10 s to the new high at 40 s (the last dip lasts 20 s)


def test_flat_equity_has_no_ratios_and_sampling_holds_the_last_value() -> None:
    assert ratios([100.0] * 10, 3600) == (None, None)
    assert sample([(0, D(1)), (5 * S, D(2))], 0, 10 * S, 3 * S) == [1.0, 1.0, 2.0, 2.0, 2.0]


def test_a_run_sums_up() -> None:
    out = Outcome(first_ns=0, last_ns=100 * S)
    out.log[ACCOUNTING_POSITIONS] = [
        position(10, "1", "0"), account(10, "100000"), account(20, "100050"),
        position(30, "0", "50"), account(30, "100050"),
        position(60, "-1", "50"), account(70, "99950"), position(80, "0", "-50"), account(80, "99950")]
    m = compute(out, "x", D(100000))
    assert m.pnl == D(-50) and m.final_equity == D(99950) and abs(m.total_return + 0.0005) < 1e-12
    assert m.max_drawdown == D(100) and m.win_rate == 0.5
    assert abs(m.exposure - 0.4) < 1e-12  # open 10-30 s and 60-80 s of 100 s
    assert m.sharpe is not None and m.sharpe < 0 and m.sortino is not None and m.sortino < 0
