"""Stop and start again, and carry on: two `hean up` runs of one session (the same topic prefix
and home), as a user's Ctrl-C and `make run` again; the first is the `hean up` command, headless.

The second run finds the venue as the first left it (the simulator's saved state: every order
and fill of the first run is still on its books), reports what the venue did after the first
run's executor stopped (its fills reach orders.events), places no order twice, and ends with
`hean state accounting` equal to `hean replay accounting --from-beginning` over both runs.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import msgspec
import pytest

from schemas.events import derive_id
from schemas.topics import ORDERS_DECISIONS, ORDERS_EVENTS
from services.domain.ids import intent_id_of, link_id_for
from services.exchange_sim import persist
from services.exchange_sim.server import SimConfig, Simulator
from services.runtime.codec import decode
from services.supervisor.stack import StackConfig, run_stack, venue_state_file
from tests.conftest import read_topic

pytestmark = pytest.mark.integration
SYMBOLS = ("BTCUSDT", "ETHUSDT")
FAST = {"STRATEGY_EMA_FAST": "3", "STRATEGY_EMA_SLOW": "8"}  # as the lockstep runs: a short run trades


def venue_ledger(path: Path) -> dict[str, Any]:
    """The venue's books as the simulator saved them (loaded the way a restart loads them)."""
    sim = Simulator(SimConfig(port=0, rest_port=0, symbols=SYMBOLS))
    assert persist.load(sim, path), f"no venue state at {path}"
    [account] = sim.engine.ledger().values()
    return account


def cli(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "services.cli.main", *args, "--json"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return msgspec.json.decode(done.stdout.strip().splitlines()[-1])


async def test_a_second_run_of_the_session_carries_on(bootstrap: str, redis_url: str, prefix: str,
                                                      tmp_path: Path) -> None:
    config = StackConfig(home=tmp_path, bootstrap=bootstrap, redis_url=redis_url, prefix=prefix, symbols=SYMBOLS,
                         market_rate=40, recorder=False, extra_env=FAST)
    env = {**os.environ, "HEAN_KAFKA_BOOTSTRAP": bootstrap, "HEAN_REDIS_URL": redis_url, "HEAN_HOME": str(tmp_path)}

    # The first run is `hean up` itself, headless: it exits 0 with its summary (as `make run DURATION=…`).
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "services.cli.main", "up", "--duration", "12", "--no-recorder",
                         "--topic-prefix", prefix, "--symbols", ",".join(SYMBOLS), "--market-rate", "40"],
        env={**env, **FAST}, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"new session {prefix!r}" in done.stdout and "all services healthy" in done.stdout, done.stdout
    assert "tick→order" in done.stdout and (tmp_path / "logs" / "strategy.log").exists()
    assert await read_topic(bootstrap, prefix + "md.trades"), "the first run streamed market data"
    first_venue = venue_ledger(venue_state_file(config))
    first_state = cli(["state", "accounting", "--topic-prefix", prefix], env)
    assert first_venue["executions"], "the first run traded"

    _stack, healthy = await run_stack(config, 12.0, lambda _stack: None, interval=0.5)
    assert healthy
    venue = venue_ledger(venue_state_file(config))
    state = cli(["state", "accounting", "--topic-prefix", prefix], env)
    rebuilt = cli(["replay", "accounting", "--from-beginning", "--topic-prefix", prefix], env)

    placed = [o["orderLinkId"] for o in venue["orders"] if intent_id_of(o["orderLinkId"])]
    first_placed = [o["orderLinkId"] for o in first_venue["orders"] if intent_id_of(o["orderLinkId"])]
    assert placed[:len(first_placed)] == first_placed, "the venue kept the first run's orders"
    assert len(placed) > len(first_placed), "the second run traded too"
    assert len(placed) == len(set(placed)), "no order placed twice"
    decisions = [decode(r.value) for r in await read_topic(bootstrap, prefix + ORDERS_DECISIONS)]
    approved = {link_id_for(d.intent.id) for d in decisions if type(d).__name__ == "IntentApproved"}
    assert set(placed) <= approved, "every venue order is an approved intent's"

    reported = {decode(r.value).id for r in await read_topic(bootstrap, prefix + ORDERS_EVENTS)}
    missing = [x["execId"] for x in first_venue["executions"]
               if intent_id_of(x["orderLinkId"]) and derive_id("exec-fill", x["execId"]) not in reported]
    assert not missing, f"fills of the first run never reached orders.events: {missing}"

    assert state["records"] > first_state["records"], "accounting went on from where it stopped"
    assert state["hash"] == rebuilt["hash"], "the live state equals a replay of both runs"
