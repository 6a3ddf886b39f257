"""The whole loop on the local stack, over real sockets: simulator → ingest → strategy → risk →
execution → simulator fills → accounting. Accounting must equal the simulator's own account."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from schemas.events import IntentApproved, OrderAcknowledged, OrderFilled, OrderPartiallyFilled, SubmitOrder
from schemas.topics import TOPICS
from services.accounting.shell import definition as accounting_definition
from services.exchange_sim.server import SimConfig, Simulator
from services.execution.shell import Execution, ExecutionConfig
from services.ingest.shell import Ingest, IngestConfig
from services.risk.config import RiskConfig
from services.risk.shell import definition as risk_definition
from services.runtime.codec import decode
from services.runtime.run import ServiceRunner
from services.runtime.settings import RuntimeSettings, Secret
from services.strategy.config import StrategyConfig
from services.strategy.shell import definition as strategy_definition
from tests.conftest import create_topics, read_topic, wait_consumed

pytestmark = pytest.mark.integration
KEY, SECRET, ACCOUNT = "e2e-key", "e2e-secret", "sim-1"


async def test_full_loop_trades_and_accounting_equals_the_venue(bootstrap: str, redis_url: str, prefix: str) -> None:
    await create_topics(bootstrap, prefix, [t.name for t in TOPICS])
    sim = Simulator(SimConfig(port=0, rest_port=0, rate=50, symbols=("BTCUSDT", "ETHUSDT"), seed=12,
                              api_keys=(f"{KEY}:{SECRET}",)))
    port = await sim.start()
    settings = RuntimeSettings(kafka_bootstrap=bootstrap, redis_url=redis_url, topic_prefix=prefix,
                               snapshot_every_seconds=1.0)
    strategy = ServiceRunner(strategy_definition(StrategyConfig(account=ACCOUNT, ema_fast=3, ema_slow=10,
                                                                maker_symbols=("BTCUSDT",))), settings)
    risk = ServiceRunner(risk_definition(RiskConfig(rate_per_second=8)), settings)  # under the venue's 10/s
    accounting = ServiceRunner(accounting_definition(), settings)
    execution = Execution(ExecutionConfig(account=ACCOUNT, rest_url=f"http://127.0.0.1:{sim.rest_port}",
                                          ws_url=f"ws://127.0.0.1:{port}/v5/private", api_key=KEY,
                                          api_secret=Secret(SECRET)), settings)
    ingest = Ingest(IngestConfig(url=f"ws://127.0.0.1:{port}/v5/public/linear", symbols=("BTCUSDT", "ETHUSDT")),
                    settings)
    stops = {name: asyncio.Event() for name in ("ingest", "strategy", "risk", "execution", "accounting")}
    tasks = {"execution": asyncio.create_task(execution.run(stops["execution"])),
             "accounting": asyncio.create_task(accounting.run(stops["accounting"])),
             "risk": asyncio.create_task(risk.run(stops["risk"])),
             "strategy": asyncio.create_task(strategy.run(stops["strategy"]))}
    await asyncio.wait_for(execution.active.wait(), 30)
    tasks["ingest"] = asyncio.create_task(ingest.run(stops["ingest"]))
    try:
        await asyncio.sleep(10)
        for name in ("ingest", "strategy"):  # no new intents from here on
            stops[name].set()
            await tasks[name]
        sim.stalled_until = float("inf")  # freeze the market: no more fills
        await wait_consumed(bootstrap, risk.group_id, prefix + "orders.intents")
        await wait_consumed(bootstrap, execution.group_id, prefix + "orders.decisions")
        await asyncio.sleep(1.0)  # the last private WS reports
        await wait_consumed(bootstrap, accounting.group_id, prefix + "orders.events")
    finally:
        for name, task in tasks.items():
            stops[name].set()
            await asyncio.wait_for(task, 30)
        await sim.stop()

    intents = [decode(r.value) for r in await read_topic(bootstrap, prefix + "orders.intents")]
    decisions = [decode(r.value) for r in await read_topic(bootstrap, prefix + "orders.decisions")]
    events = [decode(r.value) for r in await read_topic(bootstrap, prefix + "orders.events")]
    approved = [d for d in decisions if isinstance(d, IntentApproved) and isinstance(d.intent, SubmitOrder)]
    assert intents and approved, "the strategies traded"
    placed = sim.private.created_link_ids
    assert len(placed) == len(set(placed)) == len(approved), "each approved intent became exactly one order"
    fills = [e for e in events if isinstance(e, OrderFilled | OrderPartiallyFilled)]
    assert fills and any(isinstance(e, OrderAcknowledged) for e in events)
    assert len({e.id for e in events}) == len(events), "no event reported twice"
    dead = [decode(r.value) for r in await read_topic(bootstrap, prefix + "dlq")]
    assert not dead, f"nothing in the loop is dead-lettered: {dead[:3]}"

    state = accounting.states[0]
    venue = sim.engine.accounts[KEY]
    for symbol, market in sim.symbols.items():
        position = state.positions.get(ACCOUNT, {}).get(symbol)
        venue_position = venue.positions.get(symbol)
        venue_qty = market.instrument.qty_step * (venue_position.size if venue_position else 0)
        assert (position.qty if position else 0) == venue_qty, symbol
        if venue_position is not None and position is not None:
            assert abs(position.realized - venue_position.realized) < Decimal("1e-12"), symbol
    assert sum((p.fees for p in state.positions[ACCOUNT].values()), Decimal(0)) == venue.fees_paid
