"""Every table, exactly once: a recorder SIGKILLed at random points and restarted, and then replayed
from the beginning, holds the same rows (count and content) as a crash-free recording."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.recorder.core import TABLES, TOPIC_TABLES
from services.recorder.shell import Recorder, RecorderConfig
from services.recorder.store import ChdbStore
from services.recorder.synthetic import session
from services.runtime.codec import encode
from services.runtime.settings import RuntimeSettings
from tests.conftest import create_topics, group_offsets, wait_caught_up

pytestmark = pytest.mark.integration
TOPICS = tuple(TOPIC_TABLES)


async def produce_session(bootstrap: str, prefix: str, steps: int) -> int:
    """Produce the synthetic session interleaved across topics (as a live stack would); its record count."""
    events = session(steps)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=5)
    await producer.start()
    futures = []
    try:
        queues = {t: list(v) for t, v in events.items()}
        while any(queues.values()):
            for topic, queue in queues.items():
                for key, event in queue[:50]:
                    futures.append(await producer.send(prefix + topic, encode(event), key=key.encode()))
                del queue[:50]
        await producer.flush()
    finally:
        await producer.stop()
    await asyncio.gather(*futures)
    return len(futures)


def dump(path: Path) -> dict[str, list[Any]]:
    """Every row of every table, in one order (the whole row is the sort key)."""
    store = ChdbStore(path)
    try:
        return {t.name: store.query(f"SELECT * FROM hean.{t.name} ORDER BY ALL") for t in TABLES}
    finally:
        store.close()


async def caught_up(bootstrap: str, prefix: str, timeout: float = 120) -> None:
    for topic in TOPICS:
        await wait_caught_up(bootstrap, f"{prefix}hean.recorder", prefix + topic, timeout=timeout)


async def record_in_process(bootstrap: str, prefix: str, path: Path) -> Recorder:
    recorder = Recorder(RecorderConfig(store=f"chdb://{path}", query_port=-1),
                        RuntimeSettings(kafka_bootstrap=bootstrap, topic_prefix=prefix))
    stop = asyncio.Event()
    task = asyncio.create_task(recorder.run(stop))
    waiter = asyncio.create_task(caught_up(bootstrap, prefix))
    try:
        done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            waiter.cancel()
            task.result()
            raise AssertionError("recorder stopped before catching up")
        await waiter
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)
    return recorder


def start_recorder(prefix: str, bootstrap: str, path: Path, log: Path) -> subprocess.Popen[bytes]:
    """Small flushes and INSERTs cut at 300 rows, so a kill lands between many INSERTs and between
    the two tables md.book fills."""
    env = {**os.environ, "HEAN_KAFKA_BOOTSTRAP": bootstrap, "RECORDER_STORE": f"chdb://{path}",
           "RECORDER_FLUSH_ROWS": "400", "RECORDER_FLUSH_SECONDS": "0.02", "RECORDER_INSERT_MAX_ROWS": "300",
           "RECORDER_QUERY_PORT": "-1", "HEAN_BATCH_MAX_RECORDS": "200", "HEAN_SESSION_TIMEOUT_MS": "3000",
           "HEAN_LOG_LEVEL": "WARNING"}
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "services.cli.main", "run", "recorder", "--topic-prefix",
                                 prefix], env=env, stdout=out, stderr=out)


async def rewind_group(bootstrap: str, group: str, tps: list[TopicPartition]) -> None:
    """Commit offset 0 on every partition: the group would replay every topic from its start."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.commit(dict.fromkeys(tps, 0))
    finally:
        await consumer.stop()


async def committed(admin: AIOKafkaAdminClient, group: str) -> int:
    return sum(m.offset for m in (await group_offsets(admin, group)).values() if m.offset > 0)


async def test_sigkills_and_a_replay_leave_the_rows_of_a_crash_free_run(bootstrap: str, prefix: str,
                                                                        tmp_path: Path) -> None:
    seed = int(os.environ.get("HEAN_CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print(f"recorder crash seed {seed}")
    await create_topics(bootstrap, prefix, TOPICS)
    n = await produce_session(bootstrap, prefix, steps=2000)
    killed, log, group = tmp_path / "killed", tmp_path / "recorder.log", f"{prefix}hean.recorder"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    kills: list[int] = []
    try:
        for _ in range(3):
            target = min(n - 1_000, (kills[-1] if kills else 0) + rng.randint(1_500, 5_000))
            proc = start_recorder(prefix, bootstrap, killed, log)
            while proc.poll() is None and await committed(admin, group) < target:
                await asyncio.sleep(0.01)
            await asyncio.sleep(rng.uniform(0, 0.05))
            proc.kill()
            proc.wait()
            kills.append(await committed(admin, group))
        proc = start_recorder(prefix, bootstrap, killed, log)
        waiter = asyncio.create_task(caught_up(bootstrap, prefix))
        while not waiter.done():
            assert proc.poll() is None, f"recorder exited early: {log.read_text()[-3000:]}"
            await asyncio.sleep(0.1)
        await waiter
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
        # A replay from the beginning: the group's Kafka offsets are gone; the tables decide.
        tps = list(await group_offsets(admin, group))
        await rewind_group(bootstrap, group, tps)
    finally:
        if proc.poll() is None:
            proc.kill()
        await admin.close()
    print(f"committed offsets at each SIGKILL: {kills} of {n}")
    assert all(0 < k < n for k in kills), kills
    replay = await record_in_process(bootstrap, prefix, killed)
    assert sum(replay.metrics.rows.labels("recorder", t.name)._value.get() for t in TABLES) == 0

    clean = tmp_path / "clean"
    await rewind_group(bootstrap, group, tps)  # or the wait below would see the replay's commits
    await record_in_process(bootstrap, prefix, clean)  # its empty tables: it reads everything, no crash
    crash_free, after_kills = dump(clean), dump(killed)
    expected = {name: len(v) for name, v in session(2000).items()}
    for table in TABLES:
        rows = crash_free[table.name]
        if table.name != "book_levels":
            assert len(rows) == expected[table.topic], table.name
        assert after_kills[table.name] == rows, f"{table.name}: {len(after_kills[table.name])} vs {len(rows)} rows"
    assert len(crash_free["book_levels"]) == sum(len(e.bids) + len(e.asks) for _, e in session(2000)["md.book"])
