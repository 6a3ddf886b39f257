"""Other venues' market data never moves a trading service: a Binance BTCUSDT book, trade, ticker
or instrument leaves strategy, risk and accounting exactly as they were (the same step Bybit's
would change), in the services' own definitions — the functions the runtime folds and replays."""

from __future__ import annotations

import msgspec
import pytest

from schemas import events as ev
from services.accounting.shell import definition as accounting
from services.risk.shell import definition as risk
from services.strategy.shell import definition as strategy
from tests.samples import SAMPLES, instrument_defined

MARKET = [SAMPLES[ev.TradeReceived], SAMPLES[ev.BookSnapshotReceived], SAMPLES[ev.TickerUpdated],
          instrument_defined()]


@pytest.mark.parametrize("make", [strategy, risk, accounting], ids=["strategy", "risk", "accounting"])
def test_another_venues_market_data_leaves_the_state_as_it_is(make: object) -> None:
    service = make()  # type: ignore[operator]
    state = service.initial_state()
    for event in MARKET:
        binance = msgspec.structs.replace(event, venue="binance", id=event.id + "-binance")
        after, outputs = service.step(state, binance)
        assert after is state and not outputs, type(event).__name__
        if service.fold is not None:
            assert service.fold(state, binance) is state
    moved = [e for e in MARKET if service.step(state, e)[0] != state]
    assert moved, "the same events from the traded venue do change the state (the test can fail)"
