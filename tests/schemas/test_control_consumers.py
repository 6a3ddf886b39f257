"""Every reader of the control topic takes a trade gap (control.trade_gap, from ingest) cleanly.

Risk is the one service folding control: a gap is no account's, so it changes nothing and sends
nothing. The other services (strategy, accounting, algos) do not read control; a control record
reaching one is a known event it does not accept, skipped without a dead letter (NotAccepted), not
garbage. Execution reads only orders.decisions and the live view only offsets and metrics. The
recorder keeps it in the control table, every field in its column (on a real chDB store).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from schemas.events import TradeGapDetected
from schemas.topics import CONTROL, spec
from services.recorder.core import BY_TABLE
from services.recorder.store import ChdbStore
from services.registry import SERVICES, definition
from services.risk import core as risk
from services.risk.shell import definition as risk_definition
from services.runtime.codec import encode, typed_decoder
from services.runtime.errors import NotAccepted
from tests.samples import SAMPLES

GAP = SAMPLES[TradeGapDetected]


def test_risk_folds_a_trade_gap_into_nothing() -> None:
    decoded = typed_decoder(risk_definition().accepts)(encode(GAP))
    assert decoded == GAP
    state = risk.initial_state()
    after, out = risk_definition().step(state, decoded)
    assert after == state and list(out) == []
    assert risk.account_of(GAP) is None  # folded by every risk instance, owned by none


@pytest.mark.parametrize("name", sorted(set(SERVICES) - {"risk", "tally"}))
def test_services_not_reading_control_skip_it_as_known(name: str) -> None:
    service = definition(name)
    assert CONTROL not in service.inputs
    with pytest.raises(NotAccepted):  # skipped by the runtime loop, never dead-lettered
        typed_decoder(service.accepts)(encode(GAP))


def test_the_control_topic_names_ingest_as_a_producer() -> None:
    assert "ingest" in spec(CONTROL).producer and "trade gaps" in spec(CONTROL).description


def test_the_recorder_keeps_a_trade_gap_whole(tmp_path: Path) -> None:
    table = BY_TABLE["control"]
    store = ChdbStore(tmp_path / "chdb")
    store.insert(table, [(*row, CONTROL, 0, 7) for row in table.rows(GAP)])
    [[kind, venue, symbol, reason, last_id, last_ts, first_id, first_ts, account]] = store.query(
        "SELECT type, venue, symbol, reason, last_trade_id, toUnixTimestamp64Nano(last_trade_ts), first_trade_id, "
        "toUnixTimestamp64Nano(first_trade_ts), account FROM hean.control")
    assert (kind, venue, symbol, reason, last_id, first_id, account) == (
        "control.trade_gap", "bybit", "BTCUSDT", "page_short", "t-100", "t-180", "")
    assert (Decimal(last_ts), Decimal(first_ts)) == (GAP.last_trade_ts, GAP.first_trade_ts)
