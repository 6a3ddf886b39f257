"""Funding on the simulator and through HEAN: the venue charges open positions at each settlement,
execution reports each charge (from the private stream, or by reconciliation when the stream
missed it), and accounting's equity moves by exactly what the venue took from the wallet."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import msgspec
import pytest

from schemas.events import FundingSettled, OrderFilled
from schemas.topics import DLQ, ORDERS_DECISIONS, ORDERS_EVENTS
from services.accounting import core as accounting
from services.exchange_sim.market import DEFAULT_INSTRUMENTS, SymbolMarket
from services.exchange_sim.matching import MatchingEngine
from services.exchange_sim.server import Simulator
from services.runtime.codec import decode, encode
from services.venues.bybit.private import MalformedPrivateMessage, events_from_private
from tests.conftest import create_topics, read_topic
from tests.services.execution.test_execution_faults import KEYS, decision, executor, produce, sim, until

__all__ = ["sim"]  # the simulator fixture, shared with the execution fault tests
KEY = "key-1"
RATE = Decimal("0.0001")


def engine_with_positions() -> MatchingEngine:
    market = SymbolMarket(DEFAULT_INSTRUMENTS["BTCUSDT"], seed=1, levels=20)
    market.bids = {650000 - i: 1000 for i in range(20)}  # best bid 65000.0
    market.asks = {650002 + i: 1000 for i in range(20)}  # best ask 65000.2: mark 65000.1
    engine = MatchingEngine({"BTCUSDT": market}, {KEY: Decimal("100000"), "key-2": Decimal("100000")})
    for key, side in ((KEY, "Buy"), ("key-2", "Sell")):
        code, _, _ = engine.place(key, {"category": "linear", "symbol": "BTCUSDT", "side": side,
                                        "orderType": "Market", "qty": "0.100"}, 1)
        assert code == 0
    engine.reports.clear()
    return engine


def test_a_long_pays_and_a_short_receives_the_position_value_at_the_mark_times_the_rate() -> None:
    engine = engine_with_positions()
    before = {k: a.balance for k, a in engine.accounts.items()}
    assert engine.settle_funding(RATE, 5_000) == 2
    charge = Decimal("65000.1") * Decimal("0.100") * RATE  # 0.650001
    assert engine.accounts[KEY].balance == before[KEY] - charge
    assert engine.accounts["key-2"].balance == before["key-2"] + charge
    funding = [d for _, topic, d in engine.reports if topic == "execution"]
    assert [(d["execType"], d["side"], d["execFee"], d["execPrice"], d["execQty"], d["orderLinkId"]) for d in funding] \
        == [("Funding", "Buy", "0.650001", "65000.10", "0.100", ""),
            ("Funding", "Sell", "-0.650001", "65000.10", "0.100", "")]
    assert any(topic == "wallet" for _, topic, _ in engine.reports)
    code, _, listed = engine.executions(KEY, {"execType": "Funding"})
    assert code == 0 and [e["execId"] for e in listed["list"]] == [funding[0]["execId"]]


def test_execution_reports_funding_and_accounting_charges_it_exactly() -> None:
    engine = engine_with_positions()
    engine.settle_funding(RATE, 5_000)
    item = next(d for key, topic, d in engine.reports if topic == "execution" and key == KEY)
    [event] = events_from_private({"topic": "execution", "data": [item]}, "acc-a", 9, {})
    assert isinstance(event, FundingSettled)
    assert (event.position_qty, event.amount, event.funding_rate, event.mark_price) == (
        Decimal("0.100"), Decimal("0.65000100"), RATE, Decimal("65000.1"))
    state = accounting.initial_state()
    fill = OrderFilled(id="f", ts_event=1, ts_ingest=1, account="acc-a", symbol="BTCUSDT", intent_id="i",
                       order_link_id="l", exec_id="x", side="Buy", fill_qty=Decimal("0.100"),
                       fill_price=Decimal("65000.2"), fee=Decimal("3.57501100"), is_maker=False,
                       cum_qty=Decimal("0.100"))
    state, _ = accounting.step(state, fill, Decimal("100000"))
    charged, emits = accounting.step(state, event, Decimal("100000"))
    assert accounting.fold(state, event) == charged, "the replay fold is the step's state"
    totals = accounting.account_totals(charged, "acc-a", Decimal("100000"))
    before = accounting.account_totals(state, "acc-a", Decimal("100000"))
    assert before["equity"] - totals["equity"] == Decimal("0.65000100") and emits
    with pytest.raises(MalformedPrivateMessage, match="side"):
        events_from_private({"topic": "execution", "data": [{**item, "side": "Flat"}]}, "acc-a", 9, {})


async def test_funding_reaches_orders_events_live_and_by_reconciliation(
        sim: Simulator, bootstrap: str, redis_url: str, prefix: str) -> None:
    """Settled while the executor runs: the stream reports it. Settled while it is down: the next
    start's reconciliation finds it. Either way once, with the venue's amount."""
    await create_topics(bootstrap, prefix, (ORDERS_DECISIONS, ORDERS_EVENTS, DLQ))

    async def run_executor(until_done: object) -> None:
        execution = executor(sim, bootstrap, redis_url, prefix)
        stop = asyncio.Event()
        task = asyncio.create_task(execution.run(stop))
        try:
            await asyncio.wait_for(execution.active.wait(), 30)
            await until(lambda: any(s["topics"] for s in sim.private_sessions.values()), what="private stream")
            await until_done()  # type: ignore[operator]
        finally:
            stop.set()
            await task

    async def funding_in_log(count: int) -> list[FundingSettled]:
        deadline = time.monotonic() + 30
        while True:
            events = [decode(r.value) for r in await read_topic(bootstrap, prefix + ORDERS_EVENTS)]
            funding = [e for e in events if isinstance(e, FundingSettled)]
            if len(funding) >= count or time.monotonic() > deadline:
                return funding
            await asyncio.sleep(0.2)

    async def trade_then_settle() -> None:
        await produce(bootstrap, prefix + ORDERS_DECISIONS, [encode(decision("acc-a", 1, "Market"))])
        await until(lambda: bool(sim.engine.accounts[KEYS["acc-a"][0]].positions), what="a position")
        sim.settle_funding(sim.venue_ms())
        assert len(await funding_in_log(1)) == 1

    await run_executor(trade_then_settle)
    sim.settle_funding(sim.venue_ms())  # nobody listening: only the venue knows

    async def reconciled() -> None:
        assert len(await funding_in_log(2)) == 2

    await run_executor(reconciled)
    funding = await funding_in_log(2)
    venue = [e for e in sim.engine.accounts[KEYS["acc-a"][0]].executions if e["execType"] == "Funding"]
    assert sorted(f.exec_id for f in funding) == sorted(e["execId"] for e in venue)
    assert sum(f.amount for f in funding) == sim.engine.accounts[KEYS["acc-a"][0]].funding_paid != 0
    assert len({f.id for f in funding}) == len(funding) == 2, "each settlement once"
    assert all(msgspec.structs.asdict(f)["position_qty"] == Decimal("0.01") for f in funding)
