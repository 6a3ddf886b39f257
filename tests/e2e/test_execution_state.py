"""Execution's state on the real stack (issue 14 §4): after a trading run, `hean state execution`
(the executor's snapshot) and `hean replay execution` (the log folded by the same core) give one
hash, and a restarted executor recovers that state from the snapshot and the log, acting on no
decision again."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import msgspec
import pytest

from services.execution import core
from services.execution.shell import Execution
from services.runtime.snapshot import SnapshotStore
from tests.e2e.loop import running_loop

pytestmark = pytest.mark.integration
KEY, SECRET, ACCOUNT = "state-key", "state-secret", "sim-1"


def hean(args: list[str], bootstrap: str, redis_url: str) -> dict[str, object]:
    """`hean ARGS --json` as an operator runs it, its answer decoded."""
    env = {**os.environ, "HEAN_KAFKA_BOOTSTRAP": bootstrap, "HEAN_REDIS_URL": redis_url}
    result = subprocess.run([sys.executable, "-m", "services.cli.main", *args, "--json"], capture_output=True,
                            text=True, env=env, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-800:]
    answer: dict[str, object] = msgspec.json.decode(result.stdout.strip().splitlines()[-1])
    return answer


async def test_live_state_equals_the_replay_and_a_restart_recovers_it(bootstrap: str, redis_url: str,
                                                                     prefix: str) -> None:
    async with running_loop(bootstrap, redis_url, prefix, key=KEY, secret=SECRET, account=ACCOUNT) as loop:
        await asyncio.sleep(8)
        await loop.quiesce()
        loop.stops["execution"].set()
        await asyncio.wait_for(loop.tasks["execution"], 30)
        live = loop.execution.reports.state
        summary = core.summarize(live)[ACCOUNT]
        assert summary["decided"] > 0 and summary["closed"] > 0 and summary["acted_recently"] > 0, summary

        # A second executor (the same account) recovers from the snapshot and the log: the same state,
        # and nothing placed again (every decision was acted on and is remembered as such).
        placed = len(loop.sim.private.created_link_ids)
        again = Execution(loop.execution.config, loop.execution.settings)
        stop = asyncio.Event()
        task = asyncio.create_task(again.run(stop))
        await asyncio.wait_for(again.active.wait(), 30)
        await asyncio.sleep(1.0)
        assert again.reports.state == live
        assert len(loop.sim.private.created_link_ids) == placed
        stop.set()
        await asyncio.wait_for(task, 30)

    store = SnapshotStore(redis_url, namespace=f"hean:{prefix}")
    try:
        [snapshot] = await store.load_scopes("execution")
    finally:
        await store.close()
    assert snapshot.service == f"execution@{ACCOUNT}"
    assert msgspec.msgpack.decode(snapshot.state, type=core.ExecutionState) == live

    state = await asyncio.to_thread(hean, ["state", "execution", "--topic-prefix", prefix], bootstrap, redis_url)
    replay = await asyncio.to_thread(hean, ["replay", "execution", "--from-beginning", "--topic-prefix", prefix],
                                     bootstrap, redis_url)
    assert state["hash"] == replay["hash"], (state["summary"], replay["summary"])
    assert replay["summary"] == {"0": core.summarize(live)}
