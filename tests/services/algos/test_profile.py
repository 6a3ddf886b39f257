"""A vwap's volume profile from recorded trades: `hean algo submit vwap --profile-days N` reads a
real chDB store (the recorder's `trades` table) at submit time and carries the shares in the
parent; trades outside the window, of other symbols, days or venues, and duplicates count not."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from schemas.events import TradeReceived
from services.algos import profile
from services.cli.algo import parent_order
from services.cli.orders import UsageError
from services.recorder.core import BY_TABLE
from services.recorder.store import ChdbStore

S = 10**9
DAY = 86_400 * S
START = int(datetime(2026, 12, 3, 10, 30, tzinfo=UTC).timestamp()) * S
D = Decimal


def trade(n: int, ts: int, qty: str, symbol: str = "BTCUSDT", venue: str = "bybit") -> TradeReceived:
    return TradeReceived(id=f"t{n}", ts_event=ts, ts_ingest=ts, venue=venue, symbol=symbol, trade_id=str(n),
                         side="Buy", price=D("65000.0"), qty=D(qty))


def args(store: str, **more: str | None) -> argparse.Namespace:
    fields: dict[str, str | None] = {"kind": "vwap", "account": "sim-1", "symbol": "BTCUSDT", "side": "Buy",
                                     "qty": "0.010", "price": None, "duration": "60", "slices": "2",
                                     "display": None, "participation": None, "profile_days": "2", "store": store}
    return argparse.Namespace(**(fields | more))


def test_the_profile_comes_from_the_recorded_trades_of_that_time_of_day(tmp_path: Path) -> None:
    history = [
        trade(1, START - DAY + 5 * S, "1"),  # yesterday, first half of the window
        trade(2, START - DAY + 20 * S, "2"),  # yesterday, first half
        trade(3, START - DAY + 40 * S, "3"),  # yesterday, second half
        trade(4, START - 2 * DAY + 59 * S, "6"),  # two days ago, second half
        trade(5, START - DAY + 61 * S, "100"),  # after the window
        trade(6, START - DAY - S, "100"),  # before it
        trade(7, START - 3 * DAY + 10 * S, "100"),  # three days ago: older than --profile-days 2
        trade(8, START - 10 * S, "100"),  # today, before the parent: not the window's time of day
        trade(9, START - DAY + 10 * S, "100", symbol="ETHUSDT"),
        trade(10, START - DAY + 10 * S, "100", venue="binance"),
    ]
    spec = BY_TABLE["trades"]
    rows = [(*spec.rows(t)[0], "md.trades", 0, i) for i, t in enumerate(history)]
    path = tmp_path / "chdb"
    store = ChdbStore(path)
    try:
        store.insert(spec, rows)
        store.insert(spec, rows[:1])  # the first trade again (a replay): counted once
    finally:
        store.close()

    parent = parent_order(args(f"chdb://{path}"), START)
    # 1 + 2 in the first half, 3 + 6 in the second: shares 0.25 and 0.75.
    assert parent.kind == "vwap" and parent.volume_profile == (D("0.25000000"), D("0.75000000"))
    assert parent.slices == 0 and parent.duration_s == 60

    with pytest.raises(UsageError, match=r"no trades recorded of BTCUSDT in hean\.trades at 11:00:00-11:01:00 UTC "
                                         r"over the last 2 days.*leave out --profile-days"):
        parent_order(args(f"chdb://{path}"), START + 30 * 60 * S)
    with pytest.raises(UsageError, match="no chDB store at"):
        parent_order(args(f"chdb://{tmp_path / 'none'}"), START)


@pytest.mark.parametrize(("more", "message"), [
    ({"slices": None}, "--slices is required"),
    ({"duration": "90000"}, "spans at most a day"),
    ({"profile_days": "0"}, "--profile-days must be positive"),
    ({"profile_days": "91"}, "--profile-days must be 1-90"),
    ({"kind": "twap"}, "a twap takes no --profile-days"),
])
def test_profile_arguments_are_checked_before_the_store_is_asked(more: dict[str, str | None], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parent_order(args("chdb:///nonexistent", **more), START, read_profile=_never)


def _never(*_: object) -> tuple[Decimal, ...]:
    raise AssertionError("the store must not be asked for arguments that are wrong already")


def test_shares_from_rows_and_the_error_without_history() -> None:
    assert profile.shares([[0, "1.5"], [2, "0.5"]], 3, "x") == (D("0.75000000"), D("0"), D("0.25000000"))
    with pytest.raises(profile.NoHistory, match=r"no trades recorded of BTCUSDT in hean\.trades at 23:59:30-00:00:30"):
        profile.shares([], 2, profile.window("BTCUSDT", "hean", START + 13 * 3600 * S + 1770 * S, 60, 1))
    with pytest.raises(ValueError, match="Expected a plain name"):
        profile.query("hean; DROP", "bybit", "BTCUSDT", START, 60, 2, 1)
