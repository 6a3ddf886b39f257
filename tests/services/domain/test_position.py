"""The one fill → position fold against a brute-force reference, and its edge cases."""

from __future__ import annotations

from decimal import Decimal as D
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.domain.position import FLAT, FillRefused, Position, apply_fill, apply_funding

TOLERANCE = Fraction(1, 10**12)  # Decimal's 28 digits against exact fractions, on values below 1e9


def reference(fills: list[tuple[str, D, D, D]]) -> tuple[Fraction, Fraction, Fraction, Fraction]:
    """(qty, entry value, realized, fees) by keeping every open lot and closing all of them pro rata.

    Average cost means a close takes the same fraction of every open lot: written that way, in exact
    fractions, it shares no code and no arithmetic shortcut with the fold."""
    lots: list[tuple[Fraction, Fraction]] = []  # (signed qty, price)
    realized = fees = Fraction(0)
    for side, qty, price, fee in fills:
        signed, price_f = Fraction(qty) * (1 if side == "Buy" else -1), Fraction(price)
        fees += Fraction(fee)
        held = sum((q for q, _ in lots), Fraction(0))
        if held == 0 or (held > 0) == (signed > 0):
            lots.append((signed, price_f))
            continue
        closing = min(abs(held), abs(signed))
        share = closing / abs(held)
        for q, p in lots:
            realized += (price_f - p) * q * share
        lots = [(q * (1 - share), p) for q, p in lots if q * (1 - share) != 0]
        rest = abs(signed) - closing
        if rest:
            lots = [(rest * (1 if signed > 0 else -1), price_f)]
    qty = sum((q for q, _ in lots), Fraction(0))
    entry_value = sum((abs(q) * p for q, p in lots), Fraction(0))
    return qty, entry_value, realized, fees


fill = st.tuples(st.sampled_from(["Buy", "Sell"]),
                 st.integers(1, 5_000).map(lambda n: D(n) / 1000),
                 st.integers(1, 2_000_000).map(lambda n: D(n) / 100),
                 st.integers(-50, 500).map(lambda n: D(n) / 10_000))


@settings(max_examples=120, deadline=None)
@given(st.lists(fill, max_size=40), st.integers(1, 2_000_000).map(lambda n: D(n) / 100))
def test_fold_agrees_with_the_lot_by_lot_reference(fills: list[tuple[str, D, D, D]], mark: D) -> None:
    position = FLAT
    for side, qty, price, fee in fills:
        position = apply_fill(position, side, qty, price, fee)
    qty, entry_value, realized, fees = reference(fills)
    assert Fraction(position.qty) == qty  # sums of exact decimals: exact
    assert Fraction(position.fees) == fees
    assert abs(Fraction(position.entry_value) - entry_value) <= TOLERANCE
    assert abs(Fraction(position.realized) - realized) <= TOLERANCE
    if not position.qty:
        assert position.entry_value == 0  # flat means no entry value left, exactly
    # Cash flow: what the fills paid and received plus what the position is worth at the mark.
    cash = sum((Fraction(p) * Fraction(q) * (-1 if s == "Buy" else 1) for s, q, p, _ in fills), Fraction(0))
    assert abs(cash + Fraction(position.qty) * Fraction(mark)
               - Fraction(position.realized) - Fraction(position.unrealized(mark))) <= TOLERANCE


def test_a_fill_larger_than_the_position_flips_it_at_the_fill_price() -> None:
    long = apply_fill(FLAT, "Buy", D("2"), D("100"), D("0.1"))
    short = apply_fill(long, "Sell", D("5"), D("110"), D("0.2"))
    assert short == Position(D("-3"), D("330"), D("20"), D("0.3"))
    assert short.avg_entry == D("110") and short.unrealized(D("100")) == D("30")
    assert short.net == D("19.7")


def test_funding_moves_only_funding_and_the_multiplier_scales_value() -> None:
    held = apply_fill(FLAT, "Buy", D("3"), D("10"), multiplier=D("0.1"))
    assert held.entry_value == D("3.0") and held.avg_price(D("0.1")) == D("10")
    assert held.unrealized(D("12"), D("0.1")) == D("0.6")
    paid = apply_funding(held, D("0.05"))
    assert (paid.qty, paid.entry_value, paid.funding, paid.net) == (held.qty, held.entry_value, D("0.05"), D("-0.05"))


@pytest.mark.parametrize(("qty", "price"), [(D(0), D(1)), (D(1), D(0)), (D(-1), D(1))])
def test_a_fill_without_positive_qty_and_price_is_refused(qty: D, price: D) -> None:
    with pytest.raises(FillRefused, match="positive qty and price"):
        apply_fill(FLAT, "Buy", qty, price)
