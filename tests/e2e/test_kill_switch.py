"""The kill switch acts: the whole loop trades on the simulator, then an operator runs
`hean kill-switch on --flatten`. Risk answers with a cancel for every working order and a
reduce-only market order for every position, all as decisions in the log; execution carries them
out, so the venue ends with no resting order and no position, and new orders are refused."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from decimal import Decimal

import pytest

from schemas.events import CancelOrder, IntentApproved, IntentRejected, SubmitOrder, TradingHalted
from services.domain.ids import link_id_for
from services.risk.core import OWN_STRATEGY
from services.runtime.bus import make_producer, send_and_wait
from services.runtime.codec import decode, encode
from tests.conftest import read_topic, wait_consumed
from tests.e2e.loop import running_loop

pytestmark = pytest.mark.integration
KEY, SECRET, ACCOUNT = "ks-key", "ks-secret", "sim-1"
SYMBOLS = ("BTCUSDT", "ETHUSDT")


async def test_kill_switch_cancels_resting_orders_and_flattens(bootstrap: str, redis_url: str, prefix: str) -> None:
    async with running_loop(bootstrap, redis_url, prefix, key=KEY, secret=SECRET, account=ACCOUNT, symbols=SYMBOLS,
                            maker_symbols=SYMBOLS) as loop:
        sim, risk, execution = loop.sim, loop.risk, loop.execution
        venue = sim.engine.accounts[KEY]
        await asyncio.sleep(8)
        await loop.quiesce()  # the market freezes and the strategies stop: what is placed now rests
        # Two bids 3 % under the market (inside risk's price band) rest for sure, beside any quote.
        stream = sim.books[("linear", "BTCUSDT", 50)]
        tick = stream.market.instrument.tick_size
        price = (max(stream.bids) * 97 // 100) * tick
        producer = make_producer(bootstrap)
        await producer.start()
        try:
            for n in (1, 2):
                intent = SubmitOrder(id=f"rest-{n}-{prefix.rstrip('.')}", ts_event=time.time_ns(),
                                     ts_ingest=time.time_ns(),
                                     account=ACCOUNT, strategy="manual", symbol="BTCUSDT", side="Buy",
                                     order_type="Limit", qty=Decimal("0.001"), price=price)
                await send_and_wait(producer, [(prefix + "orders.intents", b"BTCUSDT", encode(intent))])
        finally:
            await producer.stop()
        await wait_consumed(bootstrap, risk.group_id, prefix + "orders.intents")
        await wait_consumed(bootstrap, execution.group_id, prefix + "orders.decisions")
        await asyncio.sleep(0.5)
        resting = [o for o in venue.orders.values() if o.status in ("New", "PartiallyFilled")]
        held = {s: p.size for s, p in venue.positions.items() if p.size}
        assert len(resting) >= 2, "orders rest: something to cancel"

        done = subprocess.run([sys.executable, "-m", "services.cli.main", "kill-switch", "on", "--account", ACCOUNT,
                               "--reason", "test", "--flatten", "--topic-prefix", prefix],
                              env={**os.environ, "HEAN_KAFKA_BOOTSTRAP": bootstrap}, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr
        assert "cancels every working order and closes every position" in done.stdout
        for _ in range(100):
            await asyncio.sleep(0.2)
            if not [o for o in venue.orders.values() if o.status in ("New", "PartiallyFilled")] and \
                    not any(p.size for p in venue.positions.values()):
                break
        assert not [o.order_link_id for o in venue.orders.values() if o.status in ("New", "PartiallyFilled")], \
            "no order rests after the kill switch"
        assert not {s: p.size for s, p in venue.positions.items() if p.size}, f"flattened (held {held})"
        await wait_consumed(bootstrap, risk.group_id, prefix + "control")
        await asyncio.sleep(0.5)
        assert risk.states[0].accounts[ACCOUNT].halted

    control = [decode(r.value) for r in await read_topic(bootstrap, prefix + "control")]
    assert [type(e) for e in control] == [TradingHalted] and control[0].flatten
    decisions = [decode(r.value) for r in await read_topic(bootstrap, prefix + "orders.decisions")]
    own = [d for d in decisions if isinstance(d, IntentApproved) and d.intent.strategy == OWN_STRATEGY]
    cancelled = {d.intent.intent_id for d in own if isinstance(d.intent, CancelOrder)}
    assert {o.order_link_id for o in resting} <= {link_id_for(i) for i in cancelled}, \
        "each resting order got its cancel, in the log"
    flattening = [d.intent for d in own if isinstance(d.intent, SubmitOrder)]
    assert {i.symbol for i in flattening} == set(held) and all(i.reduce_only for i in flattening)
    assert not [d for d in decisions if isinstance(d, IntentRejected) and d.rule == "reserved_strategy"]
