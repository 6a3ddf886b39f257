"""`hean up` on the local stack: every service as a supervised process, trading on the simulator.

A service killed with SIGKILL is restarted by the supervisor and recovers from the log; the run
ends with every service healthy and the summary printed.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rich.console import Console

from schemas.events import SubmitOrder
from services.runtime.codec import decode
from services.supervisor.stack import Stack, StackConfig, run_stack
from services.supervisor.view import View, summary
from tests.conftest import read_topic

pytestmark = pytest.mark.integration


async def test_stack_trades_and_restarts_a_killed_service(bootstrap: str, redis_url: str, prefix: str,
                                                          tmp_path: Path) -> None:
    config = StackConfig(home=tmp_path, bootstrap=bootstrap, redis_url=redis_url, prefix=prefix,
                         symbols=("BTCUSDT", "ETHUSDT"), market_rate=40,
                         recorder_store=f"chdb://{tmp_path / 'chdb'}")
    killed: dict[str, int] = {}
    began = time.monotonic()

    def chaos(stack: Stack) -> None:
        elapsed = time.monotonic() - began
        for name, at in (("strategy", 12.0), ("execution", 18.0)):
            child = stack.services[name].child
            if elapsed >= at and name not in killed and child.pid is not None:
                killed[name] = child.pid
                os.kill(child.pid, signal.SIGKILL)

    stack, healthy = await run_stack(config, 40.0, chaos, interval=0.5)
    out = io.StringIO()
    summary(Console(file=out, width=140), View(), stack, healthy)
    report = out.getvalue()

    assert set(killed) == {"strategy", "execution"}
    assert healthy, report
    assert stack.services["strategy"].child.restarts == 1 and stack.services["execution"].child.restarts == 1
    assert all(stack.services[n].child.restarts == 0 for n in stack.services if n not in killed), report
    for name, samples in ((n, s.samples) for n, s in stack.services.items() if s.metrics_port):
        assert samples.ok, f"{name} answered /metrics"
        assert samples.total("hean_ready") == 1, f"{name} holds its inputs (or its lease) again after any restart"
    assert stack.services["execution"].samples.total("hean_orders_total", outcome="placed") > 0, report
    assert "all services healthy" in report and "positions and PnL" in report

    intents = [decode(r.value) for r in await read_topic(bootstrap, prefix + "orders.intents")]
    assert any(isinstance(i, SubmitOrder) for i in intents)
    assert len({i.id for i in intents}) == len(intents), "no intent duplicated by the restart"
    assert not await read_topic(bootstrap, prefix + "dlq")


def test_hean_up_headless_exits_zero_with_a_summary(bootstrap: str, redis_url: str, prefix: str,
                                                   tmp_path: Path) -> None:
    env = {**os.environ, "HEAN_HOME": str(tmp_path), "HEAN_KAFKA_BOOTSTRAP": bootstrap, "HEAN_REDIS_URL": redis_url}
    done = subprocess.run([sys.executable, "-m", "services.cli.main", "up", "--duration", "12", "--no-recorder",
                           "--topic-prefix", prefix], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all services healthy" in done.stdout
    assert "tick→order" in done.stdout and (tmp_path / "logs" / "strategy.log").exists()
    assert asyncio.run(_count(bootstrap, prefix + "md.trades")) > 0


async def _count(bootstrap: str, topic: str) -> int:
    return len(await read_topic(bootstrap, topic))


async def test_scaled_stack_shares_partitions_symbols_and_the_executor_lease(bootstrap: str, redis_url: str,
                                                                            prefix: str, tmp_path: Path) -> None:
    """`hean up --scale strategy=2 --scale execution=2 --scale ingest=2`: both strategies hold
    partitions, each ingest streams its own symbols, one executor acts and the other stands by;
    SIGKILL the active one and the standby takes the lease and goes on placing orders."""
    config = StackConfig(home=tmp_path, bootstrap=bootstrap, redis_url=redis_url, prefix=prefix,
                         symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT"), market_rate=40, recorder=False,
                         scale={"strategy": 2, "execution": 2, "ingest": 2})
    assert {"strategy-2", "execution-2", "ingest-2"} <= set(plan_names := list(Stack(config).services)), plan_names
    killed: list[str] = []
    killed_at: list[int] = []

    def chaos(stack: Stack) -> None:
        if killed or time.monotonic() - began < 15:
            return
        active = [k for k in ("execution", "execution-2")
                  if stack.services[k].samples.total("hean_execution_active") == 1]
        if len(active) == 1 and stack.services[active[0]].child.pid is not None:
            killed.append(active[0])
            killed_at.append(time.time_ns())
            stack.services[active[0]].child.kill()

    began = time.monotonic()
    stack, healthy = await run_stack(config, 32.0, chaos, interval=0.5)
    assert healthy
    assert killed, "one executor was active, and it was killed"
    active = {k: stack.services[k].samples.total("hean_execution_active") for k in ("execution", "execution-2")}
    assert sorted(active.values()) == [0, 1], f"one executor holds the lease, the other stands by: {active}"
    events = [decode(r.value) for r in await read_topic(bootstrap, prefix + "orders.events")]
    later = [e for e in events if type(e).__name__ == "OrderAcknowledged" and e.ts_ingest > killed_at[0]]
    assert later, "orders went on after the active executor was killed (the lease moved or came back)"
    for name in ("strategy", "strategy-2", "ingest", "ingest-2"):
        assert stack.services[name].samples.total("hean_ready") == 1, f"{name} holds its partitions / streams"
    assert stack.services["ingest"].child.env["INGEST_SYMBOLS"] == "BTCUSDT,SOLUSDT"
    assert stack.services["ingest-2"].child.env["INGEST_SYMBOLS"] == "ETHUSDT"
    intents = [decode(r.value) for r in await read_topic(bootstrap, prefix + "orders.intents")]
    assert len({i.id for i in intents}) == len(intents), "two strategies never emit the same intent"


def test_a_scale_that_does_not_fit_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="risk scales by account"):
        StackConfig(home=tmp_path, scale={"risk": 2})
    with pytest.raises(ValueError, match="more instances than symbols"):
        StackConfig(home=tmp_path, symbols=("BTCUSDT",), scale={"ingest": 2})
    with pytest.raises(ValueError, match="no such service"):
        StackConfig(home=tmp_path, scale={"nope": 2})
