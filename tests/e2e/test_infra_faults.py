"""The broker SIGKILLed and restarted, and Redis wiped (FLUSHALL), in the middle of a lockstep run of
the whole trading loop, compared with the same run without faults (services/supervisor/chaos.py).

Both runs use a broker and a Redis of their own (services/supervisor/faults.py), so the faults
touch nothing else. The runs must agree exactly, as in the SIGKILL chaos test: the venue's books,
every intent, decision and order event, and each folded service's `hean state` hash, which must
equal its `hean replay --from-beginning`; no record repeats, no orderLinkId reaches the venue
twice. After each wipe the execution lease is taken again with a higher fencing token, and the
snapshots are written again (`hean state` reads them at the end).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from schemas.topics import ORDERS_DECISIONS, ORDERS_EVENTS
from services.execution.core import link_id_for
from services.runtime.bus import wait_group_coordinator
from services.supervisor.chaos import Fault, differences, lockstep_run
from services.supervisor.faults import PrivateBroker, PrivateRedis

pytestmark = pytest.mark.integration
STEPS, SEED = 25, 7
BROKER_KILLS, REDIS_WIPES = (20, 95), (50, 125)  # frames (of ~150) after which each fault happens


async def test_broker_sigkill_and_redis_wipe_change_nothing(tmp_path: Path, prefix: str) -> None:
    broker, store = PrivateBroker(tmp_path / "broker"), PrivateRedis(tmp_path / "redis")
    await broker.start()
    await store.start()
    try:
        await wait_group_coordinator(broker.bootstrap)
        where = {"bootstrap": broker.bootstrap, "redis_url": store.url}
        clean = await lockstep_run(tmp_path / "clean", f"{prefix}clean.", STEPS, seed=SEED, **where)

        fault_prefix = f"{prefix}fault."
        lease_key = f"hean:{fault_prefix}:lease:execution:sim-1"
        tokens: list[int] = []
        ended: dict[int, float] = {}
        resumed: dict[int, float] = {}

        async def lease_token() -> int:
            """The lease's token now, or (after the stack stopped and released it) the last one issued."""
            client = aioredis.Redis.from_url(store.url)
            try:
                return int(await client.hget(lease_key, "token") or await client.get(f"{lease_key}:fence") or 0)
            finally:
                await client.aclose()

        def kill_broker(frame: int) -> Fault:
            async def fault() -> str:
                await broker.kill()
                await asyncio.sleep(1.0)  # down for a while: every client sees it gone
                await broker.start()
                ended[frame] = time.monotonic()
                return "broker SIGKILL + restart"
            return fault

        def wipe_redis(frame: int) -> Fault:
            async def fault() -> str:
                tokens.append(await lease_token())
                await store.flushall()
                ended[frame] = time.monotonic()
                return "redis FLUSHALL"
            return fault

        def probe(after: int) -> Fault:
            async def fault() -> str:  # the next frame's release: the platform had settled again
                resumed[after] = time.monotonic()
                return "probe"
            return fault

        faults: dict[int, Fault] = {}
        for frame in BROKER_KILLS:
            faults[frame], faults[frame + 1] = kill_broker(frame), probe(frame)
        for frame in REDIS_WIPES:
            faults[frame], faults[frame + 1] = wipe_redis(frame), probe(frame)
        faulty = await lockstep_run(tmp_path / "fault", fault_prefix, STEPS, seed=SEED, faults=faults, **where)
        tokens.append(await lease_token())
    finally:
        await broker.stop()
        store.stop()

    done = [label for _, label in faulty.kills if label != "probe"]
    context = f"faults {faulty.kills}; recovery s {({f: round(resumed[f] - ended[f], 1) for f in resumed})}"
    assert done.count("broker SIGKILL + restart") == len(BROKER_KILLS), context
    assert done.count("redis FLUSHALL") == len(REDIS_WIPES), context
    counts = clean.counts()
    assert counts["orders"] >= 10 and counts["fills"] >= 5, f"the run must trade to prove anything: {counts}"
    assert differences(clean, faulty) == [], context
    assert faulty.frames == clean.frames
    assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens), f"fencing tokens must grow: {tokens}"

    [venue] = faulty.ledger.values()
    placed = [o["orderLinkId"] for o in venue["orders"]]
    approved = {link_id_for(d["intent"]["id"]) for d in faulty.records[ORDERS_DECISIONS]
                if d["type"] == "risk.approved" and d["intent"]["type"] == "order.submit"}
    refused = {e["order_link_id"] for e in faulty.records[ORDERS_EVENTS] if e["type"] == "order.rejected"}
    assert len(placed) == len(set(placed)) and set(placed) == approved - refused, context
    print(f"\ninfra faults: {context}; clean run {clean.seconds:.0f} s, faulty run {faulty.seconds:.0f} s")
