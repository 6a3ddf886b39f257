"""Reference data as part of each core's fold: strategy and risk read instruments from the log,
and ingest publishes only what changed."""

from __future__ import annotations

from decimal import Decimal as D

import msgspec

from schemas.events import BookSnapshotReceived, SubmitOrder
from services.domain.instrument import from_defined
from services.ingest.reference import changed
from services.risk import core as risk
from services.strategy import core as strategy
from services.strategy.maker import MakerParams
from tests.samples import instrument_defined

BTC = instrument_defined("BTCUSDT")


def book(n: int) -> BookSnapshotReceived:
    bid, ask = (D("65000.00"), D(1)), (D("65000.50"), D(1))
    return BookSnapshotReceived(id=f"b{n}", ts_event=n * 10**9, ts_ingest=n, symbol="BTCUSDT", depth=50,
                                update_id=n, seq=n, bids=[bid], asks=[ask], best_bid=bid, best_ask=ask)


def test_the_maker_quotes_only_on_the_grid_it_read_from_the_log() -> None:
    params = strategy.StrategyParams(makers={"BTCUSDT": MakerParams(account="acc", min_requote_ns=0, amend=False)})
    state = strategy.initial_state()
    state, emits = strategy.step(state, book(1), params)
    assert emits == []  # no rules yet: no quote
    state, emits = strategy.step(state, BTC, params)
    assert emits == [] and state.symbols["BTCUSDT"].instrument == from_defined(BTC)
    again, _ = strategy.step(state, BTC, params)
    assert again is state  # the same rules republished change nothing
    coarse = msgspec.structs.replace(BTC, id="coarse", tick_size=D("5"))
    state, _ = strategy.step(state, coarse, params)
    state, emits = strategy.step(state, book(2), params)
    prices = [e.event.price for e in emits if isinstance(e.event, SubmitOrder)]
    assert len(prices) == 2 and all(p % 5 == 0 for p in prices)


def test_risk_checks_the_venues_rules_from_the_log() -> None:
    params = risk.RiskParams()
    state = risk.initial_state()

    def decide(state: risk.RiskState, qty: str, price: str) -> tuple[risk.RiskState, str]:
        intent = SubmitOrder(id=f"i{qty}_{price}".replace(".", "p"), ts_event=1, ts_ingest=1, account="acc",
                             strategy="s", symbol="BTCUSDT", side="Buy", order_type="Limit", qty=D(qty), price=D(price))
        state, [emit] = risk.step(state, intent, params)
        return state, getattr(emit.event, "rule", "approved")

    state, _ = risk.step(state, book(1), params)
    assert decide(state, "0.010", "65000.10")[1] == "unknown_symbol"
    state, _ = risk.step(state, BTC, params)
    assert decide(state, "0.010", "65000.10")[1] == "approved"
    assert decide(state, "0.0105", "65000.10")[1] == "qty_step"
    assert decide(state, "0.010", "65000.15")[1] == "tick_size"
    assert decide(state, "1200", "65000.10")[1] == "max_qty"
    halted = msgspec.structs.replace(BTC, id="halted", status="Settling")
    state, _ = risk.step(state, halted, params)
    assert decide(state, "0.010", "65000.10")[1] == "not_trading"
    merged = risk.merge_accounts([state, risk.initial_state()])
    assert merged.instruments == state.instruments


def test_ingest_publishes_an_instrument_once_per_change() -> None:
    btc = from_defined(BTC)
    [first] = changed({}, [btc], 5)
    assert changed({"BTCUSDT": first}, [btc], 9) == []  # same rules later: nothing to publish
    wider = msgspec.structs.replace(btc, min_notional=D("10"))
    [update] = changed({"BTCUSDT": first}, [wider], 9)
    assert update.min_notional == D("10") and update.id != first.id
    assert changed({}, [btc], 7)[0].id == first.id  # an id from the rules, not the time
