"""The price band (fat finger) against the venue's mark price from md.tickers, the mid while no
mark is known; the rejection names which one it measured against."""

from __future__ import annotations

from decimal import Decimal

from schemas.events import AmendOrder, IntentRejected, TickerUpdated
from services.risk.core import RiskState, initial_state, merge_accounts, step
from tests.services.risk.test_core import PARAMS, decide, mid, submit

D = Decimal


def ticker(mark: str | None, symbol: str = "BTCUSDT", last: str = "50000.0") -> TickerUpdated:
    return TickerUpdated(id=f"k{mark}", ts_event=0, ts_ingest=0, symbol=symbol, last_price=D(last),
                         mark_price=D(mark) if mark is not None else None)


def refusal(state: RiskState, intent: object) -> str:
    _, [emit] = step(state, intent, PARAMS)  # type: ignore[arg-type]
    assert isinstance(emit.event, IntentRejected) and emit.event.rule == "price_band", emit.event
    return emit.event.detail


def test_the_band_is_measured_from_the_mark_when_one_is_known() -> None:
    at_mid = mid(initial_state(), "50000.0")  # band 1 %: 49500-50500 around the mid
    assert refusal(at_mid, submit(1, price="50600.0")) == "price 50600.0 is more than 0.01 from mid 50000.0"
    marked, _ = step(at_mid, ticker("50400.0"), PARAMS)  # the mark 0.8 % over the mid: 49896-50904
    assert decide(marked, submit(1, price="50600.0"))[1] == "approved", "within 1 % of the mark"
    assert refusal(marked, submit(2, price="49800.0")) == "price 49800.0 is more than 0.01 from mark 50400.0"
    assert refusal(marked, submit(3, price="50910.0")) == "price 50910.0 is more than 0.01 from mark 50400.0"


def test_a_ticker_without_a_mark_keeps_the_last_and_a_mark_needs_no_book() -> None:
    marked, _ = step(initial_state(), ticker("50000.0"), PARAMS)
    assert marked.marks == {"BTCUSDT": D("50000.0")} and not marked.mids
    again, out = step(marked, ticker(None, last="60000.0"), PARAMS)
    assert out == [] and again is marked, "a ticker that states no mark changes nothing"
    assert refusal(marked, submit(1, price="51000.0")) == "price 51000.0 is more than 0.01 from mark 50000.0"
    assert decide(mid(marked, "50000.0"), submit(2, price="50400.0"))[1] == "approved"


def test_a_market_order_is_not_banded_and_an_amend_is_banded_by_the_mark() -> None:
    state = mid(initial_state(), "50000.0")
    state, _ = step(state, ticker("47000.0"), PARAMS)  # the mid 6 % over the mark: a market order still passes
    assert decide(state, submit(1, price=None))[1] == "approved"
    state, outcome = decide(state, submit(2, price="47100.0"))
    assert outcome == "approved"
    amend = AmendOrder(id="m", ts_event=2 * 10**9, ts_ingest=0, account="acc", strategy="s", symbol="BTCUSDT",
                       intent_id="i2", price=D("50000.0"))
    assert refusal(state, amend) == "price 50000.0 is more than 0.01 from mark 47000.0"


def test_instances_merge_their_marks() -> None:
    left, _ = step(initial_state(), ticker("50000.0"), PARAMS)
    right, _ = step(initial_state(), ticker("3000.00", "ETHUSDT"), PARAMS)
    assert merge_accounts([left, right]).marks == {"BTCUSDT": D("50000.0"), "ETHUSDT": D("3000.00")}
