"""Crash safety, proven: SIGKILL the service process at random points, restart, compare.

Two copies of the same input (with poison records) go to two topic prefixes. One service runs
crash-free; the other is killed with SIGKILL several times (once during start-up, then mid-stream
at random committed-offset targets plus jitter) and restarted. Its output topic, dead letters,
snapshot state hash and a from-beginning replay must equal the crash-free run's: no loss, no
duplicates.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from schemas.events import DeadLettered, TallyUpdated
from schemas.topics import DEMO_TALLIES, DEMO_TRADES, DLQ
from services.runtime.codec import decode_as
from services.tally.feed import produce_trades, synthetic_trades
from tests.conftest import create_topics, group_offsets, read_topic, wait_caught_up

pytestmark = pytest.mark.integration

N = 20_000
POISON = [(777, b"\xc1\xc1 garbage"), (15_000, b"\x81\xa4type\xa7md.nope")]


def start_service(prefix: str, bootstrap: str, redis_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HEAN_KAFKA_BOOTSTRAP": bootstrap, "HEAN_REDIS_URL": redis_url,
           "HEAN_BATCH_MAX_RECORDS": "100", "HEAN_SNAPSHOT_EVERY_EVENTS": "700",
           "HEAN_SESSION_TIMEOUT_MS": "3000", "HEAN_LOG_LEVEL": "WARNING"}
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "services.cli.main", "run", "tally", "--topic-prefix", prefix],
                                env=env, stdout=out, stderr=out)


async def committed_total(admin: AIOKafkaAdminClient, group: str) -> int:
    offsets = await group_offsets(admin, group)
    return sum(meta.offset for meta in offsets.values() if meta.offset > 0)


def hean_json(*args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "services.cli.main", *args, "--json"], check=True,
                         capture_output=True, text=True, env=os.environ).stdout
    return orjson.loads(out)


async def test_sigkill_at_random_points_equals_crash_free_run(
    bootstrap: str, redis_url: str, prefix: str, tmp_path: Path
) -> None:
    seed = int(os.environ.get("HEAN_CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print(f"crash schedule seed {seed} (rerun with HEAN_CRASH_SEED={seed})")
    clean, crashy = prefix + "clean.", prefix + "crashy."
    trades = list(synthetic_trades(N, seed=21))
    for p in (clean, crashy):
        await create_topics(bootstrap, p, (DEMO_TRADES, DEMO_TALLIES, DLQ))
        await produce_trades(bootstrap, p + DEMO_TRADES, trades, extra=POISON)
    total_in = N + len(POISON)
    log = tmp_path / "service.log"

    proc = start_service(clean, bootstrap, redis_url, log)
    await wait_caught_up(bootstrap, f"{clean}hean.tally", clean + DEMO_TRADES, timeout=120)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    group = f"{crashy}hean.tally"
    kills = []
    try:
        proc = start_service(crashy, bootstrap, redis_url, log)
        await asyncio.sleep(rng.uniform(0.2, 1.5))  # a kill during start-up
        proc.kill()
        proc.wait()
        kills.append(await committed_total(admin, group))
        for _ in range(4):  # kills mid-stream
            target = min(total_in - 200, kills[-1] + rng.randint(300, 4_000))
            proc = start_service(crashy, bootstrap, redis_url, log)
            while await committed_total(admin, group) < target and proc.poll() is None:
                await asyncio.sleep(0.02)
            await asyncio.sleep(rng.uniform(0, 0.05))
            proc.kill()
            proc.wait()
            kills.append(await committed_total(admin, group))
        proc = start_service(crashy, bootstrap, redis_url, log)
        await wait_caught_up(bootstrap, group, crashy + DEMO_TRADES, timeout=120)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        await admin.close()
    print(f"committed offsets at each SIGKILL: {kills}")
    assert any(0 < k < total_in for k in kills[1:]), f"no kill landed mid-stream: {kills}"

    async def outputs(p: str) -> dict[int, list[TallyUpdated]]:
        by_partition: dict[int, list[TallyUpdated]] = {}
        for record in await read_topic(bootstrap, p + DEMO_TALLIES):
            by_partition.setdefault(record.partition, []).append(decode_as(record.value, TallyUpdated))
        return by_partition

    expected, got = await outputs(clean), await outputs(crashy)
    assert sum(len(v) for v in got.values()) == N
    assert got == expected

    letters = [decode_as(r.value, DeadLettered) for r in await read_topic(bootstrap, crashy + DLQ)]
    assert sorted(letter.payload for letter in letters) == sorted(p for _, p in POISON)

    clean_state = hean_json("state", "tally", "--topic-prefix", clean)
    crashy_state = hean_json("state", "tally", "--topic-prefix", crashy)
    replayed = hean_json("replay", "tally", "--from-beginning", "--topic-prefix", crashy)
    assert crashy_state["hash"] == clean_state["hash"] == replayed["hash"]
    assert crashy_state["summary"] == clean_state["summary"]
    assert replayed["records"] == total_in and replayed["undecodable"] == len(POISON)
