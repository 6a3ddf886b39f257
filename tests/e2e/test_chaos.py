"""Chaos: the whole trading loop runs twice from one seed, in lockstep (services/supervisor/lockstep.py):
once untouched, once with strategy, risk, execution and accounting each SIGKILLed three times at
random frames, somewhere in the work each frame starts, and restarted by the supervisor; every
second kill of strategy, risk and accounting lands after a batch's outputs are acknowledged and
before its offsets are committed (the runtime's kill point, docs/COMMITS.md). HEAN_CHAOS_COMMIT_MODE
runs strategy and risk in that commit mode (default: their own, idempotent).

The runs must agree exactly: the venue's books (every order by orderLinkId, every fill by execId,
positions, wallet), every intent, decision and order event, and the `hean state` hash of each
folded service, which must also equal its `hean replay --from-beginning` hash. No record repeats
(in the idempotent mode, intents and decisions may, but only as equal copies; with
HEAN_CHAOS_COMMIT_MODE=transaction nothing may).
The kill points come from HEAN_CHAOS_SEED (random unless set; a failure prints it).
"""

from __future__ import annotations

import os
import random
from collections import Counter
from pathlib import Path

import pytest

from schemas.topics import ORDERS_DECISIONS, ORDERS_EVENTS, ORDERS_INTENTS
from services.domain.ids import link_id_for
from services.supervisor.chaos import KILLABLE, RunRecord, differences, lockstep_run
from tests.e2e.conftest import SEED, STEPS

pytestmark = pytest.mark.integration
MODE = os.environ.get("HEAN_CHAOS_COMMIT_MODE", "")
MODE_ENV = {"STRATEGY_COMMIT_MODE": MODE, "RISK_COMMIT_MODE": MODE} if MODE else {}
KILLS = 2  # per killable service, at random frames (HEAN_CHAOS_SEED); 2 x 6 kills in one run


async def test_sigkills_at_random_points_change_nothing(tmp_path: Path, bootstrap: str, redis_url: str,
                                                        prefix: str, clean_run: RunRecord) -> None:
    chaos_seed = int(os.environ.get("HEAN_CHAOS_SEED") or random.randrange(1 << 30))
    where = {"bootstrap": bootstrap, "redis_url": redis_url}
    clean = clean_run
    chaos = await lockstep_run(tmp_path / "chaos", f"{prefix}chaos.", STEPS, seed=SEED, kills_per_service=KILLS,
                               chaos_seed=chaos_seed, env=MODE_ENV, **where)
    context = f"HEAN_CHAOS_SEED={chaos_seed}, kills (frame, service) {chaos.kills}"

    counts = clean.counts()
    assert counts["orders"] >= 10 and counts["fills"] >= 5, f"the run must trade to prove anything: {counts}"
    # Without a transaction a crash may repeat an intent or decision in the log, equal to the first.
    repeats_ok = (ORDERS_INTENTS, ORDERS_DECISIONS) if MODE != "transaction" else ()
    assert differences(clean, chaos, repeats_ok) == [], context
    assert Counter(service for _, service in chaos.kills) == dict.fromkeys(KILLABLE, KILLS), context
    assert {s: chaos.restarts[s] for s in KILLABLE} == dict.fromkeys(KILLABLE, KILLS), context
    assert chaos.frames == clean.frames
    assert chaos.sent_kills, f"no kill landed between outputs sent and offsets committed: {context}"

    # Each approved order reached the venue once: every venue order is an approved intent's, none twice.
    [venue] = chaos.ledger.values()
    placed = [o["orderLinkId"] for o in venue["orders"]]
    approved = {link_id_for(d["intent"]["id"]) for d in chaos.records[ORDERS_DECISIONS]
                if d["type"] == "risk.approved" and d["intent"]["type"] == "order.submit"}
    refused = {e["order_link_id"] for e in chaos.records[ORDERS_EVENTS] if e["type"] == "order.rejected"}
    assert len(placed) == len(set(placed)) and set(placed) == approved - refused, context
