"""Position drift: a position the venue holds that the reported fills do not add up to becomes a
PositionDriftDetected on control, a metric and (with halt_on_drift) a halt; a fill still on its
way never does (pure rule first, then the executor against the simulator over real sockets)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from schemas.events import PositionDriftDetected, TradingHalted
from schemas.topics import CONTROL, DLQ, ORDERS_DECISIONS, ORDERS_EVENTS
from services.exchange_sim.server import Simulator
from services.execution.drift import PositionCheck, venue_positions
from services.runtime.codec import decode, encode
from tests.conftest import create_topics, read_topic
from tests.services.execution.test_execution_faults import KEYS, counter, decision, executor, produce, sim, until

__all__ = ["sim"]
D = Decimal


def test_a_difference_is_drift_only_when_it_holds_with_no_fill_in_between() -> None:
    check = PositionCheck()
    assert check.check({"BTCUSDT": (D("0.02"), 7)}, {"BTCUSDT": D("0.01")}) == ([], [], ["BTCUSDT"])
    # the venue filled again meanwhile (seq moved): still only suspect, the fill may be on its way
    assert check.check({"BTCUSDT": (D("0.03"), 8)}, {"BTCUSDT": D("0.01")})[0] == []
    drifts, _, _ = check.check({"BTCUSDT": (D("0.03"), 8)}, {"BTCUSDT": D("0.01")})
    assert [(d.symbol, d.venue_qty, d.reported_qty, d.venue_seq) for d in drifts] == [("BTCUSDT", D("0.03"),
                                                                                        D("0.01"), 8)]
    assert check.check({"BTCUSDT": (D("0.03"), 8)}, {"BTCUSDT": D("0.01")})[0] == [], "reported once"
    assert check.check({"BTCUSDT": (D("0.03"), 8)}, {"BTCUSDT": D("0.03")})[1] == ["BTCUSDT"], "agrees again"
    assert check.check({}, {"ETHUSDT": D("0.1")})[2] == ["ETHUSDT"], "a reported position the venue lacks"
    assert venue_positions([{"symbol": "X", "size": "0.5", "side": "Sell", "seq": 3},
                            {"symbol": "Y", "size": "0", "side": ""}]) == {"X": (D("-0.5"), 3)}


async def test_a_fill_hean_never_saw_is_a_drift_and_halts_the_account(
        sim: Simulator, bootstrap: str, redis_url: str, prefix: str) -> None:
    await create_topics(bootstrap, prefix, (ORDERS_DECISIONS, ORDERS_EVENTS, DLQ, CONTROL))
    execution = executor(sim, bootstrap, redis_url, prefix, account_check_seconds=0.3, halt_on_drift=True)
    key = KEYS["acc-a"][0]
    stop = asyncio.Event()
    task = asyncio.create_task(execution.run(stop))
    try:
        await asyncio.wait_for(execution.active.wait(), 30)
        await produce(bootstrap, prefix + ORDERS_DECISIONS, [encode(decision("acc-a", 1, "Market"))])
        await until(lambda: execution.reports.positions.get("BTCUSDT") == D("0.01"), what="the reported fill")
        await asyncio.sleep(1.2)  # several checks: the venue and the reports agree
        assert counter(execution, "hean_position_drifts_total") == 0
        code, _, _ = sim.engine.place(key, {"category": "linear", "symbol": "BTCUSDT", "side": "Buy",
                                            "orderType": "Market", "qty": "0.010", "orderLinkId": "by-hand-1"},
                                      sim.venue_ms())  # placed by hand on the account: not HEAN's order
        assert code == 0
        sim.deliver_private_reports()
        await until(lambda: counter(execution, "hean_position_drifts_total") == 1, timeout=15, what="the drift")
        await asyncio.sleep(1.0)
        assert counter(execution, "hean_position_drifts_total") == 1, "a drift is reported once"
        assert counter(execution, "hean_position_drift", account="acc-a", symbol="BTCUSDT") == 0.01
    finally:
        stop.set()
        await task
    control = [decode(r.value) for r in await read_topic(bootstrap, prefix + CONTROL)]
    [drift] = [e for e in control if isinstance(e, PositionDriftDetected)]
    assert (drift.account, drift.symbol, drift.venue_qty, drift.reported_qty) == ("acc-a", "BTCUSDT", D("0.02"),
                                                                                   D("0.01"))
    [halt] = [e for e in control if isinstance(e, TradingHalted)]
    assert halt.account == "acc-a" and "position drift on BTCUSDT" in halt.reason and halt.actor == "execution"
