"""The L2 book under Bybit's sync rule: snapshots, deltas, gaps, crossed books; agrees with a naive model."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.venues.bybit.book import BookGap, BybitBook


def book() -> BybitBook:
    b = BybitBook("BTCUSDT", 50)
    b.apply_snapshot([["100.5", "1"], ["100.0", "2"]], [["101.0", "3"], ["101.5", "4"]], update_id=10)
    return b


def test_snapshot_then_deltas() -> None:
    b = book()
    assert b.best_bid() == ("100.5", "1") and b.best_ask() == ("101.0", "3")
    b.apply_delta([["100.5", "0"], ["100.7", "5"]], [["101.0", "0"]], update_id=11)
    assert b.best_bid() == ("100.7", "5")
    assert b.best_ask() == ("101.5", "4")
    assert b.levels() == ([("100.7", "5"), ("100.0", "2")], [("101.5", "4")])
    assert b.update_id == 11 and not b.stale


def test_deleting_the_best_level_rescans() -> None:
    b = book()
    b.apply_delta([["100.5", "0"]], [], update_id=11)
    assert b.best_bid() == ("100.0", "2")
    b.apply_delta([["100.0", "0"]], [], update_id=12)
    assert b.best_bid() is None


def test_old_delta_is_ignored_and_gap_marks_stale() -> None:
    b = book()
    assert b.apply_delta([["1", "1"]], [], update_id=10) == 0
    assert b.best_bid() == ("100.5", "1")
    with pytest.raises(BookGap) as info:
        b.apply_delta([], [], update_id=12)
    assert info.value.expected == 11 and info.value.got == 12
    assert b.stale
    with pytest.raises(BookGap):  # nothing is applied to a stale book
        b.apply_delta([], [], update_id=13)
    b.apply_snapshot([["99", "1"]], [["100", "1"]], update_id=1)
    assert not b.stale and b.update_id == 1


def test_crossed() -> None:
    b = book()
    assert not b.crossed()
    b.apply_delta([["101.0", "1"]], [], update_id=11)
    assert b.crossed()


def test_zero_with_decimals_deletes() -> None:
    b = book()
    b.apply_delta([["100.0", "0.000"]], [], update_id=11)
    assert ("100.0", "2") not in b.levels()[0]


prices = st.integers(min_value=1, max_value=400).map(lambda t: f"{Decimal(t) / 10:.1f}")
sizes = st.one_of(st.just("0"), st.integers(min_value=1, max_value=10_000).map(lambda q: f"{Decimal(q) / 1000:.3f}"))
updates = st.lists(st.tuples(prices, sizes), max_size=12)


@given(st.lists(st.tuples(updates, updates), max_size=40))
def test_matches_a_naive_model(deltas: list) -> None:
    """After any sequence of deltas the book equals a plain Decimal dict applied the slow way."""
    b = BybitBook("X", 200)
    b.apply_snapshot([], [], update_id=1)
    model: dict[str, dict[Decimal, str]] = {"b": {}, "a": {}}
    for u, (bids, asks) in enumerate(deltas, start=2):
        b.apply_delta([list(x) for x in bids], [list(x) for x in asks], update_id=u)
        for side, ups in (("b", bids), ("a", asks)):
            for price, size in ups:
                if Decimal(size) == 0:
                    model[side].pop(Decimal(price), None)
                else:
                    model[side][Decimal(price)] = size
    want_bids = [(f"{p:.1f}", s) for p, s in sorted(model["b"].items(), reverse=True)]
    want_asks = [(f"{p:.1f}", s) for p, s in sorted(model["a"].items())]
    assert b.levels() == (want_bids, want_asks)
    assert b.best_bid() == (want_bids[0] if want_bids else None)
    assert b.best_ask() == (want_asks[0] if want_asks else None)
