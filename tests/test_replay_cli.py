"""`hean replay` and `hean state` agree, from the beginning and from a mid offset, for services
with state that depends on the whole history (accounting) and on per-partition order (strategy).

Live states come from the real runtime (which snapshots on stop); `hean state` reads those
snapshots and `hean replay` folds the log without effects. Both are run as the operator runs them.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal

import pytest

from schemas.events import Event, OrderFilled, TickerUpdated
from schemas.topics import TOPICS
from services.registry import definition
from services.runtime.bus import make_producer, send_keyed
from services.runtime.codec import encode
from services.runtime.run import ServiceRunner
from services.runtime.service import ServiceDef, StartFrom
from services.runtime.settings import RuntimeSettings
from services.tally.feed import synthetic_trades
from tests.conftest import create_topics, wait_caught_up

pytestmark = pytest.mark.integration
MID = 150  # an offset inside every input partition


def accounting_input() -> list[tuple[str, str, Event]]:
    out: list[tuple[str, str, Event]] = []
    for i in range(1_200):
        symbol = ("BTCUSDT", "ETHUSDT", "SOLUSDT")[i % 3]
        price = Decimal(1000 + (i * 7) % 50) + Decimal(i % 10) / 10
        if i % 5 == 0:
            out.append(("md.tickers", symbol, TickerUpdated(id=f"t{i}", ts_event=i, ts_ingest=i, symbol=symbol,
                                                            mark_price=price)))
        else:
            out.append(("orders.events", symbol, OrderFilled(
                id=f"f{i}", ts_event=i, ts_ingest=i, account="acc", symbol=symbol, intent_id=f"i{i}",
                order_link_id=f"l{i}", exec_id=f"x{i}", side="Buy" if i % 3 else "Sell",
                fill_qty=Decimal(i % 4 + 1) / 100, fill_price=price, fee=Decimal("0.01"), is_maker=False,
                cum_qty=Decimal(i % 4 + 1) / 100)))
    return out


def strategy_input() -> list[tuple[str, str, Event]]:
    return [("md.trades", t.symbol, t) for t in synthetic_trades(3_000, seed=4)]


def hean(*args: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "services.cli.main", *args, "--json"], capture_output=True,
                          text=True, env={**os.environ, "HEAN_LOG_LEVEL": "WARNING"}, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


async def run_live(definition: ServiceDef, settings: RuntimeSettings, start: StartFrom) -> str:
    runner = ServiceRunner(definition, settings, start)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    for topic in runner.inputs:
        await wait_caught_up(settings.kafka_bootstrap, runner.group_id, topic)
    await asyncio.wait_for(runner.live.wait(), 30)
    stop.set()
    await task
    return runner.state_hash()


@pytest.mark.parametrize(("name", "env", "events"), [
    ("accounting", {}, accounting_input),
    ("strategy", {"STRATEGY_EMA_FAST": "3", "STRATEGY_EMA_SLOW": "8", "STRATEGY_MAKER_SYMBOLS": "[]"},
     strategy_input),
])
async def test_replay_and_state_agree_from_the_beginning_and_from_a_mid_offset(
        name: str, env: dict[str, str], events: Callable[[], list[tuple[str, str, Event]]], bootstrap: str,
        redis_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in env.items():  # the service's settings, for this process and the CLI's
        monkeypatch.setenv(key, value)
    await create_topics(bootstrap, prefix, [t.name for t in TOPICS])
    producer = make_producer(bootstrap)
    await producer.start()
    await send_keyed(producer, [(prefix + topic, key.encode(), encode(e)) for topic, key, e in events()])
    await producer.flush()
    await producer.stop()
    service = definition(name)
    settings = RuntimeSettings(kafka_bootstrap=bootstrap, redis_url=redis_url, topic_prefix=prefix)

    live_full = await run_live(service, settings, StartFrom("beginning"))
    state = hean("state", name, "--topic-prefix", prefix)
    replayed = hean("replay", name, "--from-beginning", "--topic-prefix", prefix)
    assert state["hash"] == replayed["hash"] == live_full, (state, replayed, live_full)
    # Both services split by partition groups on several processes by default; one process agrees.
    one = hean("replay", name, "--from-beginning", "--workers", "1", "--topic-prefix", prefix)
    assert (one["hash"], one["records"]) == (replayed["hash"], replayed["records"])

    # The operator rebuilds the live service from a mid offset: its state is the fold from there,
    # which is what `hean replay --from-offset` computes without touching the service.
    live_mid = await run_live(service, settings, StartFrom("offset", MID))
    state = hean("state", name, "--topic-prefix", prefix)
    replayed = hean("replay", name, "--from-offset", str(MID), "--topic-prefix", prefix)
    assert state["hash"] == replayed["hash"] == live_mid
    assert hean("replay", name, "--from-offset", str(MID), "--workers", "1", "--topic-prefix", prefix)["hash"] == \
        live_mid
    assert live_mid != live_full, "starting mid-log really leaves history out"
    assert replayed["records"] < hean("replay", name, "--from-beginning", "--topic-prefix", prefix)["records"]

    # --to-offset stops early: a prefix of the log is a different (smaller) state.
    partial = hean("replay", name, "--from-beginning", "--to-offset", str(MID), "--topic-prefix", prefix)
    assert partial["hash"] != live_full and partial["records"] < replayed["records"] + MID * 6
