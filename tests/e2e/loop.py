"""The whole trading loop in one test process, over real sockets and the real broker: simulator →
ingest → strategy → risk → execution → simulator fills → accounting (and the recorder on request).

`running_loop` starts it in the order `hean up` uses (readers before the source) and stops it;
`Loop.quiesce` stops the sources and waits until every decision, order and report is through, so
a test can then compare the log with the venue's own books.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from schemas.topics import TOPICS
from services.accounting.shell import definition as accounting_definition
from services.exchange_sim.server import SimConfig, Simulator
from services.execution.config import ExecutionConfig
from services.execution.shell import Execution
from services.ingest.shell import Ingest, IngestConfig
from services.recorder.shell import Recorder, RecorderConfig
from services.risk.config import RiskConfig
from services.risk.shell import definition as risk_definition
from services.runtime.run import ServiceRunner
from services.runtime.settings import RuntimeSettings, Secret
from services.strategy.config import StrategyConfig
from services.strategy.shell import definition as strategy_definition
from tests.conftest import create_topics, wait_consumed

SYMBOLS = ("BTCUSDT", "ETHUSDT")


@dataclass
class Loop:
    """The running services and the venue; `services` by name, each with its stop event and task."""

    sim: Simulator
    strategy: ServiceRunner
    risk: ServiceRunner
    accounting: ServiceRunner
    execution: Execution
    ingest: Ingest
    recorder: Recorder | None
    prefix: str
    bootstrap: str
    stops: dict[str, asyncio.Event] = field(default_factory=dict)
    tasks: dict[str, asyncio.Task[Any]] = field(default_factory=dict)

    async def quiesce(self) -> None:
        """No new intents (ingest and strategy stop), the market frozen, then wait until risk,
        execution and accounting have taken in everything that is left."""
        for name in ("ingest", "strategy"):
            self.stops[name].set()
            await self.tasks[name]
        self.sim.stalled_until = float("inf")
        await wait_consumed(self.bootstrap, self.risk.group_id, self.prefix + "orders.intents")
        await wait_consumed(self.bootstrap, self.execution.group_id, self.prefix + "orders.decisions")
        await asyncio.sleep(1.0)  # the last private WS reports
        await wait_consumed(self.bootstrap, self.accounting.group_id, self.prefix + "orders.events")


@asynccontextmanager
async def running_loop(bootstrap: str, redis_url: str, prefix: str, *, key: str, secret: str,
                       account: str = "sim-1", symbols: tuple[str, ...] = SYMBOLS,
                       maker_symbols: tuple[str, ...] = ("BTCUSDT",), recorder_store: str | None = None,
                       ema: bool = True, risk_config: RiskConfig | None = None) -> AsyncIterator[Loop]:
    await create_topics(bootstrap, prefix, [t.name for t in TOPICS])
    sim = Simulator(SimConfig(port=0, rest_port=0, rate=50, symbols=symbols, seed=12, api_keys=(f"{key}:{secret}",)))
    port = await sim.start()
    settings = RuntimeSettings(kafka_bootstrap=bootstrap, redis_url=redis_url, topic_prefix=prefix,
                               snapshot_every_seconds=1.0)
    loop = Loop(
        sim=sim, prefix=prefix, bootstrap=bootstrap,
        strategy=ServiceRunner(strategy_definition(StrategyConfig(account=account, ema=ema, ema_fast=3, ema_slow=10,
                                                                  maker_symbols=maker_symbols)), settings),
        # Risk's order rate under the venue's 10/s unless the test sets its own limits.
        risk=ServiceRunner(risk_definition(risk_config or RiskConfig(rate_per_second=8)), settings),
        accounting=ServiceRunner(accounting_definition(), settings),
        execution=Execution(ExecutionConfig(account=account, rest_url=f"http://127.0.0.1:{sim.rest_port}",
                                            ws_url=f"ws://127.0.0.1:{port}/v5/private", api_key=key,
                                            api_secret=Secret(secret)), settings),
        ingest=Ingest(IngestConfig(url=f"ws://127.0.0.1:{port}/v5/public/linear", symbols=symbols), settings),
        recorder=Recorder(RecorderConfig(store=recorder_store), settings) if recorder_store else None)
    readers: dict[str, Any] = {"execution": loop.execution, "accounting": loop.accounting, "risk": loop.risk,
                               "strategy": loop.strategy}
    if loop.recorder is not None:
        readers["recorder"] = loop.recorder
    loop.stops = {name: asyncio.Event() for name in (*readers, "ingest")}
    loop.tasks = {name: asyncio.create_task(service.run(loop.stops[name])) for name, service in readers.items()}
    try:
        await asyncio.wait_for(loop.execution.active.wait(), 30)
        loop.tasks["ingest"] = asyncio.create_task(loop.ingest.run(loop.stops["ingest"]))
        yield loop
    finally:
        for name, task in loop.tasks.items():
            loop.stops[name].set()
            await asyncio.wait_for(task, 30)
        await sim.stop()
