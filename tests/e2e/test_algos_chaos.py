"""Chaos with a running TWAP: the lockstep loop (services/supervisor/chaos.py) runs twice from one seed
with the same parent order sent before the first frame, once untouched and once with the algos
service SIGKILLed at random frames and restarted by the supervisor (snapshot + replay of the log).
Both runs must end with the same children (orders.intents), decisions, venue books and execution
reports, the algos service's `hean state` equal in both and equal to `hean replay`. Every second
kill lands after a batch's outputs are acknowledged and before its offsets are committed (the
runtime's kill point). Algos and risk commit in the idempotent mode by default (docs/COMMITS.md):
children, decisions and reports may then repeat in the log, but only as copies equal to the first
of their id; HEAN_CHAOS_COMMIT_MODE=transaction runs them with transactions, where nothing may.

The clean run is also the live side of the backtester's algo parity: its recorded ticks backtested
with the same parent, zero latency and the live settings make the same children, decisions,
fills and execution reports, id for id and field for field (issue 16 §2: the backtester runs the
same algorithms)."""

from __future__ import annotations

import os
import random
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from schemas.events import OrderFilled, OrderPartiallyFilled, SubmitAlgo
from schemas.topics import ALGOS_REPORTS, ORDERS_DECISIONS, ORDERS_EVENTS, ORDERS_INTENTS
from services.backtest import loop, setup
from services.backtest.sources import Query, from_log
from services.domain.ids import algo_child_id, intent_id_of
from services.supervisor.chaos import RunRecord, as_recorded, differences, lockstep_run

pytestmark = pytest.mark.integration
STEPS, SEED, KILLS = 24, 11, 2
SYMBOLS = ("BTCUSDT",)


def twap() -> SubmitAlgo:
    """1 s of market time (the lockstep clock moves 50 ms a step) in 4 slices of 0.001."""
    return SubmitAlgo(id="chaos-twap", ts_event=1, ts_ingest=1, account="sim-1", strategy="operator",
                      symbol="BTCUSDT", side="Buy", kind="twap", qty=Decimal("0.004"), duration_s=1, slices=4)


# The strategies stay off: their intents for a frame and a child for the same frame come from two
# processes at once, and their order in orders.intents (so risk's and the venue's) would be a race.
QUIET = {"STRATEGY_EMA": "false", "STRATEGY_MAKER_SYMBOLS": "[]"}
MODE = os.environ.get("HEAN_CHAOS_COMMIT_MODE", "")
MODE_ENV = {"ALGOS_COMMIT_MODE": MODE, "RISK_COMMIT_MODE": MODE} if MODE else {}
# Without a transaction a crash may repeat a child, a decision or a report, equal to the first.
REPEATS_OK = (ORDERS_INTENTS, ORDERS_DECISIONS, ALGOS_REPORTS) if MODE != "transaction" else ()


def _where(bootstrap: str, redis_url: str) -> dict[str, Any]:
    return {"bootstrap": bootstrap, "redis_url": redis_url, "symbols": SYMBOLS, "parents": [twap()], "seed": SEED,
            "env": QUIET, "folded": ("algos",)}


@pytest.fixture(scope="module")
async def clean(bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> RunRecord:
    """The crash-free run with the TWAP."""
    from tests.conftest import _PREFIXES  # the runs' topics are deleted with the session's others

    clean_prefix = f"t{uuid.uuid4().hex[:10]}algoclean."
    _PREFIXES.add(clean_prefix)
    return await lockstep_run(tmp_path_factory.mktemp("algo-clean"), clean_prefix, STEPS,
                              **_where(bootstrap, redis_url))


async def test_a_twap_survives_sigkills_of_the_algos_service(clean: RunRecord, tmp_path: Path, bootstrap: str,
                                                             redis_url: str, prefix: str) -> None:
    chaos_seed = int(os.environ.get("HEAN_CHAOS_SEED") or random.randrange(1 << 30))
    where = _where(bootstrap, redis_url)
    chaos = await lockstep_run(tmp_path / "chaos", f"{prefix}algochaos.", STEPS, kills_per_service=KILLS,
                               chaos_seed=chaos_seed, killable=("algos",),
                               **{**where, "env": {**where["env"], **MODE_ENV}})
    context = (f"HEAN_CHAOS_SEED={chaos_seed}, kills (frame, service) {chaos.kills}, at the kill point "
               f"{chaos.sent_kills}, repeated ids {chaos.duplicates}")

    children = [i for i in clean.records[ORDERS_INTENTS] if i["type"] == "order.submit" and i["strategy"] == "operator"]
    done = [r for r in clean.records[ALGOS_REPORTS] if r["type"] == "algo.completed"]
    assert len(done) == 1 and done[0]["status"] == "completed" and done[0]["children"] >= 2, done
    assert {c["id"] for c in children} == {algo_child_id("chaos-twap", n) for n in range(done[0]["children"])}
    assert differences(clean, chaos, REPEATS_OK) == [], context
    assert [s for _, s in chaos.kills] == ["algos"] * KILLS and chaos.restarts["algos"] == KILLS, context


async def test_the_backtester_works_the_twap_as_the_live_algos_service_did(clean: RunRecord, bootstrap: str) -> None:
    recorded = await from_log(bootstrap, Query(SYMBOLS, 0, 2**63 - 1, clean.prefix))
    # The live settings: the strategies off (QUIET), the stack's risk rate (services/supervisor/stack.py).
    built = setup.build("none", {"risk_rate_per_second": "8"}, SYMBOLS, parents=[twap()])
    outcome = loop.run(built, recorded.events, instruments=recorded.instruments)

    children = [i for i in clean.records[ORDERS_INTENTS] if i["type"] == "order.submit"]
    assert len(children) >= 2
    for topic in (ORDERS_INTENTS, ORDERS_DECISIONS):  # the parent and its children; risk's decisions
        mine = as_recorded(outcome.of(topic))
        assert [r["id"] for r in mine] == [r["id"] for r in clean.records[topic]], topic
        assert mine == clean.records[topic], topic
    # The reports, figure for figure. A progress report's id derives from the fill that ended its child,
    # and fill ids are the venue's (the backtest derives its own: docs/BACKTEST.md), so those are
    # compared without it; the completion's id is the parent's and must match too.
    def in_order(reports: list[Any]) -> list[Any]:
        return sorted(({k: v for k, v in r.items() if k != "id" or r["type"] == "algo.completed"} for r in reports),
                      key=lambda r: (r["ts_event"], r["type"] == "algo.completed"))
    mine = in_order(as_recorded(outcome.of(ALGOS_REPORTS)))
    assert mine == in_order(clean.records[ALGOS_REPORTS])
    assert mine[-1]["status"] == "completed" and mine[-1]["children"] == len(children)
    [venue] = clean.ledger.values()
    live = Counter((intent_id_of(e["orderLinkId"]), Decimal(e["execQty"]), Decimal(e["execPrice"]),
                    Decimal(e["execFee"])) for e in venue["executions"])
    fills = Counter((f.intent_id, f.fill_qty, f.fill_price, f.fee) for f in outcome.of(ORDERS_EVENTS)
                    if isinstance(f, OrderFilled | OrderPartiallyFilled))
    assert sum(live.values()) >= 2 and fills == live
