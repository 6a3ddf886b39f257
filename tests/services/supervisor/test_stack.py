"""`hean up` on the local stack: every service as a supervised process, trading on the simulator.

A service killed with SIGKILL is restarted by the supervisor and recovers from the log; the run
ends with every service healthy and the summary printed.
"""

from __future__ import annotations

import io
import os
import signal
import time
from pathlib import Path

import pytest
from rich.console import Console

from schemas.events import SubmitOrder
from services.runtime.codec import decode
from services.runtime.settings import load_settings
from services.strategy.config import StrategyConfig
from services.supervisor.stack import Stack, StackConfig, run_stack
from services.supervisor.view import View, summary
from tests.conftest import read_topic

pytestmark = pytest.mark.integration


async def test_scaled_stack_restarts_killed_services_and_moves_the_executor_lease(
        bootstrap: str, redis_url: str, prefix: str, tmp_path: Path) -> None:
    """`hean up --scale strategy=2 --scale execution=2 --scale ingest=2` with the recorder: both
    strategies hold partitions, each ingest streams its own symbols, one executor acts and the other
    stands by. SIGKILL one strategy: the supervisor restarts it and it recovers from the log; SIGKILL
    the active executor: the standby takes the lease and goes on placing orders. The run ends with
    every service healthy and the summary printed. (One stack for both: each start costs ~30 s here.)"""
    config = StackConfig(home=tmp_path, bootstrap=bootstrap, redis_url=redis_url, prefix=prefix,
                         symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT"), market_rate=40,
                         recorder_store=f"chdb://{tmp_path / 'chdb'}",
                         scale={"strategy": 2, "execution": 2, "ingest": 2})
    assert {"strategy-2", "execution-2", "ingest-2"} <= set(plan_names := list(Stack(config).services)), plan_names
    killed: dict[str, int] = {}
    executor_killed_at: list[int] = []

    def chaos(stack: Stack) -> None:
        elapsed = time.monotonic() - began
        child = stack.services["strategy"].child
        if elapsed >= 10 and "strategy" not in killed and child.pid is not None:
            killed["strategy"] = child.pid
            os.kill(child.pid, signal.SIGKILL)
        if elapsed < 14 or executor_killed_at:
            return
        active = [k for k in ("execution", "execution-2")
                  if stack.services[k].samples.total("hean_execution_active") == 1]
        if len(active) == 1 and (pid := stack.services[active[0]].child.pid) is not None:
            killed[active[0]] = pid
            executor_killed_at.append(time.time_ns())
            os.kill(pid, signal.SIGKILL)

    began = time.monotonic()
    stack, healthy = await run_stack(config, 28.0, chaos, interval=0.5)
    out = io.StringIO()
    summary(Console(file=out, width=140), View(), stack, healthy)
    report = out.getvalue()

    assert healthy, report
    assert "strategy" in killed and executor_killed_at, f"a strategy and the active executor were killed: {killed}"
    for name, service in stack.services.items():
        assert service.child.restarts == (1 if name in killed else 0), (name, report)
    for name, samples in ((n, s.samples) for n, s in stack.services.items() if s.metrics_port):
        assert samples.ok, f"{name} answered /metrics"
        if not name.startswith("execution"):
            assert samples.total("hean_ready") == 1, f"{name} holds its inputs again after any restart"
    active = {k: stack.services[k].samples.total("hean_execution_active") for k in ("execution", "execution-2")}
    assert sorted(active.values()) == [0, 1], f"one executor holds the lease, the other stands by: {active}"
    assert "all services healthy" in report and "positions and PnL" in report
    events = [decode(r.value) for r in await read_topic(bootstrap, prefix + "orders.events")]
    later = [e for e in events if type(e).__name__ == "OrderAcknowledged" and e.ts_ingest > executor_killed_at[0]]
    assert later, "orders went on after the active executor was killed (the lease moved or came back)"
    assert stack.services["ingest"].child.env["INGEST_SYMBOLS"] == "BTCUSDT,SOLUSDT"
    assert stack.services["ingest-2"].child.env["INGEST_SYMBOLS"] == "ETHUSDT"
    intents = [decode(r.value) for r in await read_topic(bootstrap, prefix + "orders.intents")]
    assert any(isinstance(i, SubmitOrder) for i in intents)
    # Two strategies never make one intent twice; a restart in the idempotent commit mode (the
    # default, docs/COMMITS.md) may send one again, but only as a copy equal to the first.
    first: dict[str, object] = {}
    assert all(first.setdefault(i.id, i) == i for i in intents), "an intent repeated with other content"
    if (os.environ.get("HEAN_COMMIT_MODE") or load_settings(StrategyConfig, "STRATEGY").commit_mode) == "transaction":
        assert len(first) == len(intents), "no intent duplicated by two strategies or a restart"
    assert not await read_topic(bootstrap, prefix + "dlq")


def test_a_scale_that_does_not_fit_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="risk scales by account"):
        StackConfig(home=tmp_path, scale={"risk": 2})
    with pytest.raises(ValueError, match="more instances than symbols"):
        StackConfig(home=tmp_path, symbols=("BTCUSDT",), scale={"ingest": 2})
    with pytest.raises(ValueError, match="no such service"):
        StackConfig(home=tmp_path, scale={"nope": 2})
