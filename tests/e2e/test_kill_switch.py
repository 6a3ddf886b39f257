"""The kill switch acts: the whole loop trades on the simulator, then an operator runs
`hean kill-switch on --flatten`. Risk answers with a cancel for every working order and a
reduce-only market order for every position, all as decisions in the log; execution carries them
out, so the venue ends with no resting order and no position, and new orders are refused."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from decimal import Decimal

import pytest

from schemas.events import CancelOrder, IntentApproved, IntentRejected, SubmitOrder, TradingHalted
from schemas.topics import TOPICS
from services.accounting.shell import definition as accounting_definition
from services.exchange_sim.server import SimConfig, Simulator
from services.execution.core import link_id_for
from services.execution.shell import Execution, ExecutionConfig
from services.ingest.shell import Ingest, IngestConfig
from services.risk.config import RiskConfig
from services.risk.core import OWN_STRATEGY
from services.risk.shell import definition as risk_definition
from services.runtime.bus import make_producer, send_and_wait
from services.runtime.codec import decode, encode
from services.runtime.run import ServiceRunner
from services.runtime.settings import RuntimeSettings, Secret
from services.strategy.config import StrategyConfig
from services.strategy.shell import definition as strategy_definition
from tests.conftest import create_topics, read_topic, wait_consumed

pytestmark = pytest.mark.integration
KEY, SECRET, ACCOUNT = "ks-key", "ks-secret", "sim-1"
SYMBOLS = ("BTCUSDT", "ETHUSDT")


async def test_kill_switch_cancels_resting_orders_and_flattens(bootstrap: str, redis_url: str, prefix: str) -> None:
    await create_topics(bootstrap, prefix, [t.name for t in TOPICS])
    sim = Simulator(SimConfig(port=0, rest_port=0, rate=50, symbols=SYMBOLS, seed=12, api_keys=(f"{KEY}:{SECRET}",)))
    port = await sim.start()
    settings = RuntimeSettings(kafka_bootstrap=bootstrap, redis_url=redis_url, topic_prefix=prefix)
    strategy = ServiceRunner(strategy_definition(StrategyConfig(account=ACCOUNT, ema_fast=3, ema_slow=10,
                                                                maker_symbols=SYMBOLS)), settings)
    risk = ServiceRunner(risk_definition(RiskConfig(rate_per_second=8)), settings)
    accounting = ServiceRunner(accounting_definition(), settings)
    execution = Execution(ExecutionConfig(account=ACCOUNT, rest_url=f"http://127.0.0.1:{sim.rest_port}",
                                          ws_url=f"ws://127.0.0.1:{port}/v5/private", api_key=KEY,
                                          api_secret=Secret(SECRET)), settings)
    ingest = Ingest(IngestConfig(url=f"ws://127.0.0.1:{port}/v5/public/linear", symbols=SYMBOLS), settings)
    stops = {name: asyncio.Event() for name in ("ingest", "strategy", "risk", "execution", "accounting")}
    tasks = {"execution": asyncio.create_task(execution.run(stops["execution"])),
             "accounting": asyncio.create_task(accounting.run(stops["accounting"])),
             "risk": asyncio.create_task(risk.run(stops["risk"])),
             "strategy": asyncio.create_task(strategy.run(stops["strategy"]))}
    await asyncio.wait_for(execution.active.wait(), 30)
    tasks["ingest"] = asyncio.create_task(ingest.run(stops["ingest"]))
    venue = sim.engine.accounts[KEY]
    try:
        await asyncio.sleep(8)
        for name in ("ingest", "strategy"):  # the market freezes and the strategies stop: orders rest
            stops[name].set()
            await tasks[name]
        sim.stalled_until = float("inf")
        await wait_consumed(bootstrap, risk.group_id, prefix + "orders.intents")
        await wait_consumed(bootstrap, execution.group_id, prefix + "orders.decisions")
        await asyncio.sleep(1.0)  # the last private reports
        await wait_consumed(bootstrap, risk.group_id, prefix + "orders.events")
        # Two bids 3 % under the market (inside risk's price band) rest for sure, beside any quote.
        stream = sim.books[("linear", "BTCUSDT", 50)]
        tick = stream.market.instrument.tick_size
        price = (max(stream.bids) * 97 // 100) * tick
        producer = make_producer(bootstrap)
        await producer.start()
        try:
            for n in (1, 2):
                intent = SubmitOrder(id=f"rest-{n}-{prefix}", ts_event=time.time_ns(), ts_ingest=time.time_ns(),
                                     account=ACCOUNT, strategy="manual", symbol="BTCUSDT", side="Buy",
                                     order_type="Limit", qty=Decimal("0.001"), price=price)
                await send_and_wait(producer, [(prefix + "orders.intents", b"BTCUSDT", encode(intent))])
        finally:
            await producer.stop()
        await wait_consumed(bootstrap, risk.group_id, prefix + "orders.intents")
        await wait_consumed(bootstrap, execution.group_id, prefix + "orders.decisions")
        await asyncio.sleep(0.5)
        resting = [o for o in venue.orders.values() if o.status in ("New", "PartiallyFilled")]
        held = {s: p.size for s, p in venue.positions.items() if p.size}
        assert len(resting) >= 2, "orders rest: something to cancel"

        done = subprocess.run([sys.executable, "-m", "services.cli.main", "kill-switch", "on", "--account", ACCOUNT,
                               "--reason", "test", "--flatten", "--topic-prefix", prefix],
                              env={**os.environ, "HEAN_KAFKA_BOOTSTRAP": bootstrap}, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr
        assert "cancels every working order and closes every position" in done.stdout
        for _ in range(100):
            await asyncio.sleep(0.2)
            if not [o for o in venue.orders.values() if o.status in ("New", "PartiallyFilled")] and \
                    not any(p.size for p in venue.positions.values()):
                break
        assert not [o.order_link_id for o in venue.orders.values() if o.status in ("New", "PartiallyFilled")], \
            "no order rests after the kill switch"
        assert not {s: p.size for s, p in venue.positions.items() if p.size}, f"flattened (held {held})"
        await wait_consumed(bootstrap, risk.group_id, prefix + "control")
        await asyncio.sleep(0.5)
        assert risk.states[0].accounts[ACCOUNT].halted
    finally:
        for name, task in tasks.items():
            stops[name].set()
            await asyncio.wait_for(task, 30)
        await sim.stop()

    control = [decode(r.value) for r in await read_topic(bootstrap, prefix + "control")]
    assert [type(e) for e in control] == [TradingHalted] and control[0].flatten
    decisions = [decode(r.value) for r in await read_topic(bootstrap, prefix + "orders.decisions")]
    own = [d for d in decisions if isinstance(d, IntentApproved) and d.intent.strategy == OWN_STRATEGY]
    cancelled = {d.intent.intent_id for d in own if isinstance(d.intent, CancelOrder)}
    assert {o.order_link_id for o in resting} <= {link_id_for(i) for i in cancelled}, \
        "each resting order got its cancel, in the log"
    flattening = [d.intent for d in own if isinstance(d.intent, SubmitOrder)]
    assert {i.symbol for i in flattening} == set(held) and all(i.reduce_only for i in flattening)
    assert not [d for d in decisions if isinstance(d, IntentRejected) and d.rule == "reserved_strategy"]
