"""Execution algorithms on the whole loop: an operator submits a TWAP and an iceberg with
`hean algo submit`; the algos service (on the shared runtime, real Kafka and Redis) sends their
children, risk approves each, execution places them on the simulator, and they fill. Each parent's
AlgoCompleted must add up against the fills in orders.events: filled qty, average price, fees and
implementation shortfall, and `hean algo status` shows both completed. A third parent, an iceberg
resting under the market, is stopped with `hean algo cancel`: its child is cancelled through risk
at the venue and the parent ends cancelled."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from decimal import Decimal
from typing import Any

import pytest

from schemas.events import (
    AlgoCompleted,
    CancelOrder,
    IntentApproved,
    IntentRejected,
    OrderAcknowledged,
    OrderCancelled,
    OrderFilled,
    OrderPartiallyFilled,
    SubmitAlgo,
)
from services.algos.core import summarize
from services.algos.report import BPS_PLACES, PRICE_PLACES
from services.algos.shell import definition as algos_definition
from services.domain.ids import algo_cancel_child_id, algo_child_id
from services.runtime.codec import decode
from services.runtime.run import ServiceRunner
from services.runtime.settings import RuntimeSettings
from tests.conftest import read_topic
from tests.e2e.loop import running_loop

pytestmark = pytest.mark.integration
KEY, SECRET, ACCOUNT = "algo-key", "algo-secret", "sim-1"


def hean(prefix: str, bootstrap: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.cli.main", *args, "--topic-prefix", prefix],
                          env={**os.environ, "HEAN_KAFKA_BOOTSTRAP": bootstrap}, capture_output=True, text=True,
                          timeout=60)


async def completions(bootstrap: str, prefix: str, count: int, algos: ServiceRunner,
                      timeout: float = 45) -> list[AlgoCompleted]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reports = [decode(r.value) for r in await read_topic(bootstrap, prefix + "algos.reports")]
        done = [e for e in reports if isinstance(e, AlgoCompleted)]
        if len(done) >= count:
            return done
        await asyncio.sleep(0.5)
    states = {shard: summarize(state) for shard, state in algos.states.items()}
    raise AssertionError(f"{count} parents did not complete in {timeout} s: reports {reports}, states {states}")


async def acknowledged(bootstrap: str, prefix: str, intent_id: str, timeout: float = 30) -> None:
    """Wait until the venue acknowledged the order of `intent_id` (it rests on the book)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(isinstance(e := decode(r.value), OrderAcknowledged) and e.intent_id == intent_id
               for r in await read_topic(bootstrap, prefix + "orders.events")):
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"order {intent_id} was not acknowledged in {timeout} s")


async def test_a_twap_and_an_iceberg_complete_through_risk_and_add_up(bootstrap: str, redis_url: str,
                                                                     prefix: str) -> None:
    settings = RuntimeSettings(kafka_bootstrap=bootstrap, redis_url=redis_url, topic_prefix=prefix)
    async with running_loop(bootstrap, redis_url, prefix, key=KEY, secret=SECRET, account=ACCOUNT,
                            symbols=("BTCUSDT",), maker_symbols=(), ema=False) as loop:  # the algos' orders only
        algos = ServiceRunner(algos_definition(), settings)
        stop = asyncio.Event()
        task = asyncio.create_task(algos.run(stop))
        try:
            await asyncio.sleep(2)  # books and instrument rules in the log
            stream = loop.sim.books[("linear", "BTCUSDT", 50)]
            tick = stream.market.instrument.tick_size
            through = (min(stream.asks) * 101 // 100) * tick  # 1 % over the ask: each child takes at once
            under = (max(stream.bids) * 98 // 100) * tick  # 2 % under the bid (in risk's 5 % band): it rests
            twap = hean(prefix, bootstrap, "algo", "submit", "twap", "--account", ACCOUNT, "--symbol", "BTCUSDT",
                        "--side", "Buy", "--qty", "0.004", "--duration", "3", "--slices", "4")
            iceberg = hean(prefix, bootstrap, "algo", "submit", "iceberg", "--account", ACCOUNT, "--symbol",
                           "BTCUSDT", "--side", "Buy", "--qty", "0.005", "--display", "0.002", "--price", str(through))
            resting = hean(prefix, bootstrap, "algo", "submit", "iceberg", "--account", ACCOUNT, "--symbol",
                           "BTCUSDT", "--side", "Buy", "--qty", "0.003", "--display", "0.001", "--price", str(under))
            assert twap.returncode == 0 and iceberg.returncode == 0 and resting.returncode == 0, \
                twap.stderr + iceberg.stderr + resting.stderr
            stopped = resting.stdout.split()[1]
            await acknowledged(bootstrap, prefix, algo_child_id(stopped, 0))
            # In a thread: the services run on this event loop while the command waits for the end.
            cancel = await asyncio.to_thread(hean, prefix, bootstrap, "algo", "cancel", stopped, "--reason", "e2e")
            again = await asyncio.to_thread(hean, prefix, bootstrap, "algo", "cancel", stopped)
            done = await completions(bootstrap, prefix, 3, algos)
            status = hean(prefix, bootstrap, "algo", "status", "--account", ACCOUNT)
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)

    assert status.returncode == 0 and status.stdout.count("completed") == 2, status.stdout
    assert cancel.returncode == 0, cancel.stdout + cancel.stderr
    assert "cancelled: filled 0 of 0.003 in 1 children (cancelled by operator: e2e)" in cancel.stdout, cancel.stdout
    assert again.returncode == 2 and "has ended already: cancelled" in again.stderr, again.stderr
    parents = {e.id: e for r in await read_topic(bootstrap, prefix + "orders.intents")
               if isinstance(e := decode(r.value), SubmitAlgo)}
    decisions = [decode(r.value) for r in await read_topic(bootstrap, prefix + "orders.decisions")]
    approved = {d.intent.id: d.intent for d in decisions if isinstance(d, IntentApproved)}
    refused = {d.intent.id: f"{d.rule}: {d.detail}" for d in decisions if isinstance(d, IntentRejected)}
    fills: dict[str, list[Any]] = {}
    cancelled: set[str] = set()
    for r in await read_topic(bootstrap, prefix + "orders.events"):
        event = decode(r.value)
        if isinstance(event, OrderPartiallyFilled | OrderFilled):
            fills.setdefault(event.intent_id, []).append(event)
        elif isinstance(event, OrderCancelled):
            cancelled.add(event.intent_id)
    assert {d.kind for d in done} == {"twap", "iceberg"} and set(parents) == {d.parent_id for d in done}
    [ended] = [d for d in done if d.parent_id == stopped]
    child = algo_child_id(stopped, 0)
    assert ended.status == "cancelled" and ended.children == 1 and ended.filled_qty == 0
    assert isinstance(approved.get(algo_cancel_child_id(stopped, child)), CancelOrder), "the child's cancel passed risk"
    assert child in cancelled, "the venue cancelled the resting child"
    for report in (d for d in done if d.parent_id != stopped):
        parent = parents[report.parent_id]
        assert report.status == "completed" and report.filled_qty == parent.qty, report
        kids = [algo_child_id(parent.id, n) for n in range(report.children)]
        assert all(k in approved for k in kids), f"every child passed risk: {[refused.get(k) for k in kids]}"
        if parent.kind == "iceberg":
            assert all(approved[k].qty <= parent.display_qty for k in kids)  # type: ignore[operator]
            assert report.children == 3, "0.002 + 0.002 + 0.001"
        else:
            # One child per due slot; a market clock that jumps past several slots (a starved machine)
            # gets one child for all of them, so the count is bounded, not fixed (tests/services/algos).
            assert 1 <= report.children <= 4 and all(approved[k].time_in_force == "IOC" for k in kids)
        own = [f for k in kids for f in fills.get(k, [])]
        qty = sum((f.fill_qty for f in own), Decimal(0))
        notional = sum((f.fill_qty * f.fill_price for f in own), Decimal(0))
        fees = sum((f.fee for f in own), Decimal(0))
        assert qty == report.filled_qty and fees == report.fees
        assert report.avg_price == (notional / qty).quantize(PRICE_PLACES)
        arrival = report.arrival_price
        assert arrival is not None and report.market_vwap is not None and report.market_volume > 0
        expected = notional - qty * arrival + fees  # a buy, all filled: no opportunity cost
        assert report.shortfall == expected.quantize(PRICE_PLACES)
        assert report.shortfall_bps == (expected / (arrival * parent.qty) * 10_000).quantize(BPS_PLACES)
