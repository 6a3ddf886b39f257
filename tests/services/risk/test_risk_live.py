"""The risk service on the real log: decisions for intents, the operator's kill switch through the
CLI, and a replay that ends in the live state."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from decimal import Decimal

import pytest

from schemas.events import BookSnapshotReceived, IntentApproved, IntentRejected, SubmitOrder
from schemas.topics import (
    ACCOUNTING_POSITIONS,
    CONTROL,
    DLQ,
    MD_BOOK,
    MD_TICKERS,
    ORDERS_DECISIONS,
    ORDERS_EVENTS,
    ORDERS_INTENTS,
    REF_INSTRUMENTS,
)
from services.risk.shell import definition
from services.runtime.bus import make_producer
from services.runtime.codec import decode, encode
from services.runtime.run import ServiceRunner, replay
from services.runtime.service import StartFrom
from services.runtime.settings import RuntimeSettings
from tests.conftest import create_topics, read_topic, wait_consumed
from tests.samples import instrument_defined

pytestmark = pytest.mark.integration
D = Decimal


async def test_decisions_kill_switch_and_replay(bootstrap: str, redis_url: str, prefix: str) -> None:
    await create_topics(bootstrap, prefix, (ORDERS_INTENTS, ORDERS_EVENTS, MD_BOOK, MD_TICKERS, ACCOUNTING_POSITIONS,
                                            CONTROL, ORDERS_DECISIONS, DLQ, REF_INSTRUMENTS))
    settings = RuntimeSettings(kafka_bootstrap=bootstrap, redis_url=redis_url, topic_prefix=prefix)
    service = definition()
    runner = ServiceRunner(service, settings)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    producer = make_producer(bootstrap)
    await producer.start()

    async def send(topic: str, key: str, event: object) -> None:
        await (await producer.send(prefix + topic, encode(event), key=key.encode()))

    async def decisions(count: int, own: bool = False) -> list:
        """The decisions on intents (or, with `own`, risk's own: a halt's cancels)."""
        for _ in range(200):
            found = [d for d in (decode(r.value) for r in await read_topic(bootstrap, prefix + ORDERS_DECISIONS))
                     if (d.intent.strategy == "risk") == own]
            if len(found) >= count:
                return found
            await asyncio.sleep(0.1)
        raise AssertionError(f"expected {count} decisions, found {len(found)}")

    def intent(n: int, qty: str, reduce_only: bool = False) -> SubmitOrder:
        return SubmitOrder(id=f"i{n}", ts_event=n, ts_ingest=n, account="acc", strategy="s", symbol="BTCUSDT",
                           side="Buy", order_type="Limit", qty=D(qty), price=D("65000.0"), reduce_only=reduce_only)

    book = BookSnapshotReceived(id="b", ts_event=0, ts_ingest=0, symbol="BTCUSDT", depth=50, update_id=1, seq=1,
                                bids=[(D("64999.9"), D(1))], asks=[(D("65000.1"), D(1))],
                                best_bid=(D("64999.9"), D(1)), best_ask=(D("65000.1"), D(1)))
    await send(REF_INSTRUMENTS, "BTCUSDT", instrument_defined("BTCUSDT", ts=0))  # the venue's rules, from the log
    await send(MD_BOOK, "BTCUSDT", book)
    await asyncio.sleep(1.0)  # the mid is known before the first intent (separate topics, no order between them)
    await send(ORDERS_INTENTS, "BTCUSDT", intent(1, "0.010"))
    await send(ORDERS_INTENTS, "BTCUSDT", intent(2, "5.000"))  # 325,000 notional
    first = await decisions(2)
    assert [type(d).__name__ for d in first] == ["IntentApproved", "IntentRejected"]
    assert first[1].rule == "max_notional"

    env = {**os.environ, "HEAN_KAFKA_BOOTSTRAP": bootstrap}
    result = subprocess.run([sys.executable, "-m", "services.cli.main", "kill-switch", "on", "--account", "acc",
                             "--reason", "test halt", "--topic-prefix", prefix], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    await asyncio.sleep(1.0)
    await send(ORDERS_INTENTS, "BTCUSDT", intent(3, "0.010"))
    await send(ORDERS_INTENTS, "BTCUSDT", intent(4, "0.010", reduce_only=True))
    [cancel] = await decisions(1, own=True)  # the halt cancels the order still working
    assert isinstance(cancel, IntentApproved) and cancel.intent.intent_id == "i1"
    halted = (await decisions(4))[2:]
    assert isinstance(halted[0], IntentRejected) and halted[0].rule == "halted" and "test halt" in halted[0].detail
    assert isinstance(halted[1], IntentApproved)  # reduce-only passes

    subprocess.run([sys.executable, "-m", "services.cli.main", "kill-switch", "off", "--account", "acc",
                    "--reason", "done", "--topic-prefix", prefix], env=env, check=True, timeout=60)
    await asyncio.sleep(1.0)
    await send(ORDERS_INTENTS, "BTCUSDT", intent(5, "0.010"))
    assert isinstance((await decisions(5))[4], IntentApproved)

    await producer.stop()
    await wait_consumed(bootstrap, runner.group_id, prefix + ORDERS_DECISIONS)  # every decision read back
    stop.set()
    await task
    rebuilt = await replay(service, settings, StartFrom("beginning"))
    assert rebuilt.states == runner.states
    assert rebuilt.hash == runner.state_hash()
