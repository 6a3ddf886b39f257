"""Parity: the backtest of a live lockstep run's recorded ticks, with zero latency and the live
parameters, makes the intents and risk decisions the live services made, id for id and field for
field, and fills that agree with the simulator's own executions.

The live run is the session's crash-free lockstep run (`clean_run`: simulator, ingest, strategy,
risk, execution, accounting as processes on the real broker, 25 steps of 3 symbols). The backtest
reads its md topics from the log and runs in this process; then `hean backtest` runs the same
through the CLI and stores the run, which `hean sql`'s reader gets back from the chDB store.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from schemas.events import OrderFilled, OrderPartiallyFilled
from schemas.topics import ORDERS_DECISIONS, ORDERS_EVENTS, ORDERS_INTENTS
from services.backtest import loop, setup
from services.backtest.sources import Query, from_log
from services.cli.sql import fetch
from services.domain.ids import intent_id_of
from services.recorder.query import QueryLimits
from services.supervisor.chaos import RunRecord, as_recorded

pytestmark = pytest.mark.integration
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
# The live run's settings (services/supervisor/chaos.py LOCKSTEP_ENV and the stack's risk rate).
LIVE = {"ema_fast": "3", "ema_slow": "8", "maker_min_requote_ms": "250", "risk_rate_per_second": "8"}


def _fill_key(intent_id: str, side: str, qty: Any, price: Any, maker: bool, fee: Any) -> tuple[Any, ...]:
    return (intent_id, side, Decimal(qty), Decimal(price), bool(maker), Decimal(fee))


async def test_backtest_of_recorded_ticks_equals_the_live_run(clean_run: RunRecord, bootstrap: str,
                                                              tmp_path: Path) -> None:
    recorded = await from_log(bootstrap, Query(SYMBOLS, 0, 2**63 - 1, clean_run.prefix))
    assert {d.symbol for d in recorded.instruments} == set(SYMBOLS)  # what ingest published from the venue
    outcome = loop.run(setup.build("ema+maker", LIVE, SYMBOLS), recorded.events, instruments=recorded.instruments)

    live_intents, live_decisions = clean_run.records[ORDERS_INTENTS], clean_run.records[ORDERS_DECISIONS]
    assert len(live_intents) >= 10, "the live run must trade to prove anything"
    intents, decisions = as_recorded(outcome.of(ORDERS_INTENTS)), as_recorded(outcome.of(ORDERS_DECISIONS))
    assert [i["id"] for i in intents] == [i["id"] for i in live_intents]
    assert intents == live_intents
    assert [d["id"] for d in decisions] == [d["id"] for d in live_decisions]
    assert decisions == live_decisions

    [venue] = clean_run.ledger.values()
    live_fills = Counter(_fill_key(intent_id_of(e["orderLinkId"]), e["side"], e["execQty"], e["execPrice"],
                                   e["isMaker"], e["execFee"]) for e in venue["executions"])
    fills = Counter(_fill_key(f.intent_id, f.side, f.fill_qty, f.fill_price, f.is_maker, f.fee)
                    for f in outcome.of(ORDERS_EVENTS) if isinstance(f, OrderFilled | OrderPartiallyFilled))
    assert sum(live_fills.values()) >= 5 and any(k[4] for k in live_fills), "makers and takers both filled live"
    assert fills == live_fills
    # The live executor's opening of the venue account (AccountOpened) has no counterpart: a backtest
    # opens no venue account, it starts from its configured balance.
    kinds = Counter(e["type"] for e in clean_run.records[ORDERS_EVENTS] if e["type"] != "account.opened")
    assert Counter(type(e).__name__ for e in outcome.of(ORDERS_EVENTS)) == Counter(
        {_TYPES[k]: n for k, n in kinds.items()})

    # The same through the command, stored in the chDB store and read back with hean sql.
    store = f"chdb://{tmp_path / 'chdb'}"
    params = [a for k, v in LIVE.items() for a in ("--param", f"{k}={v}")]
    command = [sys.executable, "-m", "services.cli.main", "backtest", "--strategy", "ema+maker", *params,
               "--symbols", ",".join(SYMBOLS), "--from", "2025-12-31T23:00:00Z", "--to", "2026-01-02T00:00:00Z",
               "--source", "log", "--topic-prefix", clean_run.prefix, "--store", store, "--out", str(tmp_path),
               "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False,
                          env=_env(bootstrap))
    assert done.returncode == 0, done.stderr
    printed = orjson.loads(done.stdout.strip().splitlines()[-1])
    assert printed["intents"] == len(live_intents) and printed["decisions"] == len(live_decisions)
    assert printed["trades"] == sum(live_fills.values())
    assert (tmp_path / "report.png").stat().st_size > 10_000 and (tmp_path / "report.html").stat().st_size > 1_000_000
    answer = fetch("SELECT run_id, strategy, trades, (SELECT count() FROM hean.backtest_trades) AS fills "
                   "FROM hean.backtest_runs FINAL", store, "JSONEachRow", tmp_path, QueryLimits())  # hean sql's path
    [row] = [orjson.loads(line) for line in answer.splitlines() if line]
    assert row["run_id"] == printed["run_id"] and row["strategy"] == "ema+maker"
    assert int(row["trades"]) == int(row["fills"]) == printed["trades"]


_TYPES = {"order.ack": "OrderAcknowledged", "order.rejected": "OrderRejected", "order.partial_fill":
          "OrderPartiallyFilled", "order.fill": "OrderFilled", "order.cancelled": "OrderCancelled",
          "order.amended": "OrderAmended", "order.amend_rejected": "OrderAmendRejected"}


def _env(bootstrap: str) -> dict[str, str]:
    import os

    return {**os.environ, "HEAN_KAFKA_BOOTSTRAP": bootstrap}
