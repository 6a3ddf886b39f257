"""Chaos with a running TWAP: the lockstep loop (services/supervisor/chaos.py) runs twice from one seed
with the same parent order sent before the first frame, once untouched and once with the algos
service SIGKILLed at random frames and restarted by the supervisor (snapshot + replay of the log).
Both runs must end with the same children (orders.intents), decisions, venue books and execution
reports, the algos service's `hean state` equal in both and equal to `hean replay`."""

from __future__ import annotations

import os
import random
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from schemas.events import SubmitAlgo
from schemas.topics import ALGOS_REPORTS, ORDERS_INTENTS
from services.domain.ids import algo_child_id
from services.supervisor.chaos import differences, lockstep_run

pytestmark = pytest.mark.integration
STEPS, SEED, KILLS = 24, 11, 2
SYMBOLS = ("BTCUSDT",)


def twap() -> SubmitAlgo:
    """1 s of market time (the lockstep clock moves 50 ms a step) in 4 slices of 0.001."""
    return SubmitAlgo(id="chaos-twap", ts_event=1, ts_ingest=1, account="sim-1", strategy="operator",
                      symbol="BTCUSDT", side="Buy", kind="twap", qty=Decimal("0.004"), duration_s=1, slices=4)


async def test_a_twap_survives_sigkills_of_the_algos_service(tmp_path: Path, bootstrap: str, redis_url: str,
                                                             prefix: str) -> None:
    chaos_seed = int(os.environ.get("HEAN_CHAOS_SEED") or random.randrange(1 << 30))
    # The strategies stay off: their intents for a frame and a child for the same frame come from two
    # processes at once, and their order in orders.intents (so risk's and the venue's) would be a race.
    quiet = {"STRATEGY_EMA": "false", "STRATEGY_MAKER_SYMBOLS": "[]"}
    where = {"bootstrap": bootstrap, "redis_url": redis_url, "symbols": SYMBOLS, "parents": [twap()], "seed": SEED,
             "env": quiet, "folded": ("algos",)}
    from tests.conftest import _PREFIXES  # the runs' topics are deleted with the session's others

    clean_prefix = f"t{uuid.uuid4().hex[:10]}algoclean."
    _PREFIXES.add(clean_prefix)
    clean = await lockstep_run(tmp_path / "clean", clean_prefix, STEPS, **where)
    chaos = await lockstep_run(tmp_path / "chaos", f"{prefix}algochaos.", STEPS, kills_per_service=KILLS,
                               chaos_seed=chaos_seed, killable=("algos",), **where)
    context = f"HEAN_CHAOS_SEED={chaos_seed}, kills (frame, service) {chaos.kills}"

    children = [i for i in clean.records[ORDERS_INTENTS] if i["type"] == "order.submit" and i["strategy"] == "operator"]
    done = [r for r in clean.records[ALGOS_REPORTS] if r["type"] == "algo.completed"]
    assert len(done) == 1 and done[0]["status"] == "completed" and done[0]["children"] >= 2, done
    assert {c["id"] for c in children} == {algo_child_id("chaos-twap", n) for n in range(done[0]["children"])}
    assert differences(clean, chaos) == [], context
    assert [s for _, s in chaos.kills] == ["algos"] * KILLS and chaos.restarts["algos"] == KILLS, context
