"""Faults below and beside the platform, each in the middle of a lockstep run of the whole trading
loop, compared with the same run without faults (services/supervisor/chaos.py):

- the broker SIGKILLed and restarted, and Redis wiped (FLUSHALL);
- the venue answering 5xx (the REST circuit opens and closes), answering late, dropping the
  connection after placing an order, and refusing for its rate limit.

The runs use a broker and a Redis of their own (services/supervisor/faults.py), so the faults
touch nothing else. They must agree exactly, as in the SIGKILL chaos test: the venue's books,
every intent, decision and order event, and each folded service's `hean state` hash, which must
equal its `hean replay --from-beginning`; no record repeats, no orderLinkId reaches the venue
twice. After each wipe the execution lease is taken again with a higher fencing token, and the
snapshots are written again (`hean state` reads them at the end).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from schemas.topics import ORDERS_DECISIONS, ORDERS_EVENTS
from services.domain.ids import link_id_for
from services.runtime.bus import wait_group_coordinator
from services.supervisor.chaos import Fault, RunRecord, differences, lockstep_run
from services.supervisor.faults import PrivateBroker, PrivateRedis
from services.supervisor.stack import Stack
from tests.e2e.conftest import SEED, STEPS

pytestmark = pytest.mark.integration
BROKER_KILLS, REDIS_WIPES = (30,), (90,)  # frames (of ~150) after which each fault happens
VENUE_FAULTS = {15: ("http5xx", 8), 45: ("timeout", 2), 75: ("dropack", 2), 105: ("ratelimit", 3)}


class Infra:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.broker = PrivateBroker(home / "broker")
        self.store = PrivateRedis(home / "redis")
        self.where = {"bootstrap": self.broker.bootstrap, "redis_url": self.store.url}


@pytest.fixture(scope="module")
async def infra(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Infra]:
    infra = Infra(tmp_path_factory.mktemp("infra-faults"))
    await infra.broker.start()
    await infra.store.start()
    try:
        await wait_group_coordinator(infra.broker.bootstrap)
        yield infra
    finally:
        await infra.broker.stop()
        infra.store.stop()


@pytest.fixture
def clean(clean_run: RunRecord) -> RunRecord:
    """The crash-free run (tests/e2e/conftest.py): its record does not depend on the broker."""
    return clean_run


def probe(after: int, resumed: dict[int, float]) -> Fault:
    """The frame after a fault: reached once the platform had settled again."""
    async def fault(_stack: Stack) -> str:
        resumed[after] = time.monotonic()
        return "probe"
    return fault


def assert_each_order_placed_once(run: RunRecord, context: str) -> None:
    [venue] = run.ledger.values()
    placed = [o["orderLinkId"] for o in venue["orders"]]
    approved = {link_id_for(d["intent"]["id"]) for d in run.records[ORDERS_DECISIONS]
                if d["type"] == "risk.approved" and d["intent"]["type"] == "order.submit"}
    refused = {e["order_link_id"] for e in run.records[ORDERS_EVENTS] if e["type"] == "order.rejected"}
    assert len(placed) == len(set(placed)) and set(placed) == approved - refused, context


async def test_broker_sigkill_and_redis_wipe_change_nothing(infra: Infra, clean: RunRecord) -> None:
    prefix = f"f{uuid.uuid4().hex[:8]}."
    lease_key = f"hean:{prefix}:lease:execution:sim-1"
    tokens: list[int] = []
    ended: dict[int, float] = {}
    resumed: dict[int, float] = {}

    async def lease_token() -> int:
        """The lease's token now, or (after the stack stopped and released it) the last one issued."""
        client = aioredis.Redis.from_url(infra.store.url)
        try:
            return int(await client.hget(lease_key, "token") or await client.get(f"{lease_key}:fence") or 0)
        finally:
            await client.aclose()

    def kill_broker(frame: int) -> Fault:
        async def fault(_stack: Stack) -> str:
            await infra.broker.kill()
            await asyncio.sleep(1.0)  # down for a while: every client sees it gone
            await infra.broker.start()
            ended[frame] = time.monotonic()
            return "broker SIGKILL + restart"
        return fault

    def wipe_redis(frame: int) -> Fault:
        async def fault(_stack: Stack) -> str:
            tokens.append(await lease_token())
            await infra.store.flushall()
            ended[frame] = time.monotonic()
            return "redis FLUSHALL"
        return fault

    faults: dict[int, Fault] = {}
    for frame in BROKER_KILLS:
        faults[frame], faults[frame + 1] = kill_broker(frame), probe(frame, resumed)
    for frame in REDIS_WIPES:
        faults[frame], faults[frame + 1] = wipe_redis(frame), probe(frame, resumed)
    faulty = await lockstep_run(infra.home / "broker-redis", prefix, STEPS, seed=SEED, faults=faults, **infra.where)
    tokens.append(await lease_token())

    done = [label for _, label in faulty.kills if label != "probe"]
    context = f"faults {faulty.kills}; recovery s {({f: round(resumed[f] - ended[f], 1) for f in resumed})}"
    assert done.count("broker SIGKILL + restart") == len(BROKER_KILLS), context
    assert done.count("redis FLUSHALL") == len(REDIS_WIPES), context
    assert differences(clean, faulty) == [], context
    assert faulty.frames == clean.frames
    assert tokens == sorted(tokens) and len(set(tokens)) == len(tokens), f"fencing tokens must grow: {tokens}"
    assert_each_order_placed_once(faulty, context)
    print(f"\nbroker/redis faults: {context}; clean run {clean.seconds:.0f} s, faulty run {faulty.seconds:.0f} s")


async def test_venue_errors_stalls_and_dropped_answers_lose_and_duplicate_nothing(infra: Infra,
                                                                                  clean: RunRecord) -> None:
    """8 answers of HTTP 502 in a row open execution's circuit (5 failures) for 3 s; the batch is
    acted on again once it closes. Late answers, answers dropped after the order was placed, and
    10006 refusals follow. The venue's books and the log equal the fault-free run's."""
    home = infra.home / "venue"
    injected: list[str] = []

    def venue_fault(kind: str, count: int) -> Fault:
        async def fault(stack: Stack) -> str:
            port = stack.services["exchange-sim"].child.env["EXCHANGE_SIM_PORT"]
            async with httpx.AsyncClient() as client:
                answer = await client.get(f"http://127.0.0.1:{port}/sim/fault", params={"kind": kind,
                                                                                        "count": str(count)})
            answer.raise_for_status()
            injected.append(kind)
            return f"venue {kind} x{count}"
        return fault

    faults = {frame: venue_fault(kind, count) for frame, (kind, count) in VENUE_FAULTS.items()}
    faulty = await lockstep_run(home, f"v{uuid.uuid4().hex[:8]}.", STEPS, seed=SEED, faults=faults,
                                env={"EXECUTION_BREAKER_OPEN_SECONDS": "3"}, **infra.where)
    context = f"faults {faulty.kills}"
    assert sorted(injected) == sorted(kind for kind, _ in VENUE_FAULTS.values()), context
    assert differences(clean, faulty) == [], context
    assert_each_order_placed_once(faulty, context)
    log = (home / "logs" / "execution.log").read_text()
    assert "venue circuit open" in log, "the 502s opened the circuit"
    assert "acting on the batch again" in log, "the batch waited for the circuit, then went through"
    print(f"\nvenue faults: {context}; faulty run {faulty.seconds:.0f} s")
