"""Risk's limits on the real local stack (issue 16 §3): the simulator as venue, the broker, every
service of the loop. The market is frozen once risk knows it, so each figure below is exact.

In order, on one account: an intent whose id the venue's reports would not carry back is refused
(intent_id); a limit price far from the mark is refused (price_band); a strategy
that lost its limit is stopped while another goes on (strategy_loss); a burst beyond the order
rate is cut (order_rate); orders beyond the open-order cap are refused (max_open_orders); then a
loss from the equity peak beyond max_drawdown halts the account: risk cancels every resting order
at the venue, refuses new risk but lets a reduce-only order through, shows the halt in its
metrics (the live view's and Grafana's hean_trading_halted), and stays halted until an operator
resumes it with `hean kill-switch off`. Every refusal names its rule and is counted by rule.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest

from schemas.events import CancelOrder, IntentApproved, IntentRejected, SubmitOrder, TradingHalted, TradingResumed
from schemas.topics import CONTROL, ORDERS_DECISIONS, ORDERS_EVENTS, ORDERS_INTENTS
from services.domain.ids import link_id_for
from services.risk.config import RiskConfig
from services.risk.core import OWN_STRATEGY
from services.runtime.bus import make_producer, send_and_wait
from services.runtime.codec import decode, encode
from services.supervisor.observe import parse
from tests.conftest import read_topic, wait_consumed
from tests.e2e.loop import running_loop

pytestmark = pytest.mark.integration
KEY, SECRET, ACCOUNT, SYMBOL = "rules-key", "rules-secret", "sim-1", "BTCUSDT"
LIMITS = RiskConfig(rate_per_second=4, max_open_orders=7, max_strategy_loss=Decimal("0.05"),
                    max_drawdown=Decimal("2.5"))
OPEN = ("New", "PartiallyFilled")


class Desk:
    """Sends intents as strategies would and reads risk's answers from the log."""

    def __init__(self, loop: Any, producer: Any) -> None:
        self.loop, self.producer, self.count = loop, producer, 0
        stream = loop.sim.books[("linear", SYMBOL, 50)]
        self.tick = stream.market.instrument.tick_size
        self.best_bid = max(stream.bids)

    def order(self, strategy: str, side: str, qty: str, *, under: int | None = None, reduce_only: bool = False,
              ts: int | None = None, intent_id: str | None = None) -> SubmitOrder:
        """A market order, or with `under` a limit that many percent under the best bid."""
        self.count += 1
        now = ts or time.time_ns()
        price = None if under is None else (self.best_bid * (100 - under) // 100) * self.tick
        return SubmitOrder(id=intent_id or uuid.uuid4().hex, ts_event=now, ts_ingest=now, account=ACCOUNT,
                           strategy=strategy, symbol=SYMBOL, side=side,
                           order_type="Market" if price is None else "Limit", qty=Decimal(qty), price=price,
                           reduce_only=reduce_only)

    async def decide(self, *intents: Any) -> list[Any]:
        """Send `intents` in one batch; risk's decisions of them, in their order."""
        topic = self.loop.prefix + ORDERS_INTENTS
        await send_and_wait(self.producer, [(topic, SYMBOL.encode(), encode(i)) for i in intents])
        wanted = {i.id for i in intents}
        for _ in range(300):
            decided = {d.intent.id: d for d in await self.decisions() if d.intent.id in wanted}
            if len(decided) == len(wanted):
                return [decided[i.id] for i in intents]
            await asyncio.sleep(0.1)
        pytest.fail(f"risk decided {len(decided)} of {len(wanted)} intents")

    async def decisions(self) -> list[Any]:
        return [decode(r.value) for r in await read_topic(self.loop.bootstrap, self.loop.prefix + ORDERS_DECISIONS)]

    async def settled(self) -> None:
        """Execution placed what was approved, the venue's reports are in, and risk folded them;
        then a second passes, so the next intents start a new order-rate window."""
        loop = self.loop
        await wait_consumed(loop.bootstrap, loop.execution.group_id, loop.prefix + ORDERS_DECISIONS)
        seen = -1
        while True:  # the venue's reports come over its private stream: until a quiet 0.7 s
            reports = len(await read_topic(loop.bootstrap, loop.prefix + ORDERS_EVENTS))
            if reports == seen:
                break
            seen = reports
            await asyncio.sleep(0.7)
        await wait_consumed(loop.bootstrap, loop.risk.group_id, loop.prefix + ORDERS_EVENTS)
        await wait_consumed(loop.bootstrap, loop.accounting.group_id, loop.prefix + ORDERS_EVENTS)
        await asyncio.sleep(1.1)

    def resting(self) -> list[Any]:
        return [o for o in self.loop.sim.engine.accounts[KEY].orders.values() if o.status in OPEN]


def rules(decisions: list[Any]) -> list[str]:
    return [d.rule if isinstance(d, IntentRejected) else "approved" for d in decisions]


async def scrape(loop: Any) -> Any:
    """Risk's metrics as the live view and Prometheus read them: over HTTP from its endpoint."""
    async with httpx.AsyncClient() as client:
        return parse((await client.get(f"http://127.0.0.1:{loop.risk.metrics_port}/metrics")).text)


def kill_switch(prefix: str, bootstrap: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "services.cli.main", "kill-switch", *args, "--account", ACCOUNT,
                           "--topic-prefix", prefix], env={**os.environ, "HEAN_KAFKA_BOOTSTRAP": bootstrap},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_each_limit_refuses_by_name_and_a_drawdown_halts_until_an_operator_resumes(
        bootstrap: str, redis_url: str, prefix: str) -> None:
    async with running_loop(bootstrap, redis_url, prefix, key=KEY, secret=SECRET, account=ACCOUNT, symbols=(SYMBOL,),
                            maker_symbols=(), ema=False, risk_config=LIMITS) as loop:
        for _ in range(200):  # risk has the market (mid, mark) and the venue's rules
            state = loop.risk.states[0] if loop.risk.states else None
            if state is not None and SYMBOL in state.mids and SYMBOL in state.marks and SYMBOL in state.instruments:
                break
            await asyncio.sleep(0.1)
        loop.sim.stalled_until = float("inf")  # the market freezes: fills and valuations are exact from here
        await asyncio.sleep(0.5)
        producer = make_producer(bootstrap)
        await producer.start()
        try:
            desk = Desk(loop, producer)

            [untraceable] = await desk.decide(desk.order("mine", "Buy", "0.001", intent_id=f"my.order/{prefix}"))
            assert rules([untraceable]) == ["intent_id"], "its fills could not be traced back to it"
            [band] = await desk.decide(desk.order("fat-finger", "Buy", "0.001", under=15))
            assert rules([band]) == ["price_band"] and "from mark" in band.detail, band.detail

            assert rules(await desk.decide(desk.order("loser", "Buy", "0.010"))) == ["approved"]
            await desk.settled()  # its taker fee alone is a loss beyond 0.05
            stopped, other, closing = await desk.decide(desk.order("loser", "Buy", "0.001"),
                                                        desk.order("winner", "Buy", "0.001", under=3),
                                                        desk.order("loser", "Sell", "0.010", reduce_only=True))
            assert rules([stopped, other, closing]) == ["strategy_loss", "approved", "approved"], stopped
            await desk.settled()

            burst_ts = time.time_ns()
            burst = await desk.decide(*[desk.order("burst", "Buy", "0.001", under=3, ts=burst_ts) for _ in range(6)])
            assert rules(burst) == ["approved"] * 4 + ["order_rate"] * 2, [d.detail for d in burst]
            await desk.settled()
            capped = await desk.decide(*[desk.order("cap", "Buy", "0.001", under=3) for _ in range(3)])
            assert rules(capped) == ["approved", "approved", "max_open_orders"], [d.detail for d in capped]
            await desk.settled()
            assert len(desk.resting()) == 7, "every approved limit rests at the venue"
            [freed] = await desk.decide(CancelOrder(
                id=f"rules-cancel-{prefix}", ts_event=time.time_ns(), ts_ingest=time.time_ns(), account=ACCOUNT,
                strategy="cap", symbol=SYMBOL, intent_id=capped[0].intent.id))
            assert rules([freed]) == ["approved"]
            await desk.settled()
            working = {o.order_link_id for o in desk.resting()}
            assert len(working) == 6

            # 0.1 BTC bought at the ask costs ~3.6 in fees: with the loser's ~0.7, past 2.5 below the peak.
            assert rules(await desk.decide(desk.order("big", "Buy", "0.100"))) == ["approved"]
            for _ in range(150):
                if not desk.resting():
                    break
                await asyncio.sleep(0.2)
            assert not desk.resting(), "the halt cancelled every resting order at the venue"
            halts = [decode(r.value) for r in await read_topic(bootstrap, prefix + CONTROL)]
            assert [type(h) for h in halts] == [TradingHalted], halts
            assert halts[0].actor == "risk" and halts[0].reason.startswith("max_drawdown"), halts[0].reason
            own = [d for d in await desk.decisions() if isinstance(d, IntentApproved) and
                   d.intent.strategy == OWN_STRATEGY and isinstance(d.intent, CancelOrder)]
            assert working <= {link_id_for(d.intent.intent_id) for d in own}, "each cancel is a decision in the log"

            await desk.settled()
            refused, reduce = await desk.decide(desk.order("winner", "Buy", "0.001", under=3),
                                                desk.order("big", "Sell", "0.100", reduce_only=True))
            assert rules([refused, reduce]) == ["halted", "approved"] and "max_drawdown" in refused.detail
            await desk.settled()
            metrics = await scrape(loop)
            assert metrics.total("hean_trading_halted", account=ACCOUNT) == 1
            for rule, count in (("intent_id", 1), ("price_band", 1), ("strategy_loss", 1), ("order_rate", 2),
                                ("max_open_orders", 1), ("halted", 1)):
                assert metrics.total("hean_outputs_total", kind=f"rejected:{rule}") == count, rule
            [still] = await desk.decide(desk.order("winner", "Buy", "0.001", under=3))
            assert rules([still]) == ["halted"], "a limit's halt does not lift by itself"

            kill_switch(prefix, bootstrap, "off", "--reason", "drawdown reviewed")
            for _ in range(100):
                if not loop.risk.states[0].accounts[ACCOUNT].halted:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.1)
            [resumed] = await desk.decide(desk.order("winner", "Buy", "0.001", under=3))
            assert rules([resumed]) == ["approved"]
            assert (await scrape(loop)).total("hean_trading_halted", account=ACCOUNT) == 0
        finally:
            await producer.stop()
    control = [type(decode(r.value)) for r in await read_topic(bootstrap, prefix + CONTROL)]
    assert control == [TradingHalted, TradingResumed]
