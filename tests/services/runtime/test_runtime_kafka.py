"""The service runtime on the real broker and Redis, in-process (crash tests: test_crash.py)."""

from __future__ import annotations

import asyncio
import urllib.request
from decimal import Decimal

import pytest

from schemas.events import DeadLettered, TallyUpdated
from schemas.topics import DEMO_TALLIES, DEMO_TRADES, DLQ
from services.runtime.codec import decode_as
from services.runtime.run import ServiceRunner, replay
from services.runtime.service import StartFrom
from services.runtime.settings import RuntimeSettings
from services.tally import core
from services.tally.feed import produce_trades, synthetic_trades
from services.tally.shell import DEFINITION
from tests.conftest import create_topics, read_topic, wait_caught_up

pytestmark = pytest.mark.integration

TOPICS = (DEMO_TRADES, DEMO_TALLIES, DLQ)


def settings_for(bootstrap: str, redis_url: str, prefix: str, **extra: object) -> RuntimeSettings:
    return RuntimeSettings(kafka_bootstrap=bootstrap, redis_url=redis_url, topic_prefix=prefix,
                           snapshot_every_seconds=0.5, **extra)  # type: ignore[arg-type]


async def run_to_end(settings: RuntimeSettings, start: StartFrom | None = None) -> ServiceRunner:
    """Run the tally service until it has committed its whole input, then stop it gracefully."""
    runner = ServiceRunner(DEFINITION, settings, start or StartFrom())
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        caught_up = asyncio.create_task(
            wait_caught_up(settings.kafka_bootstrap, runner.group_id, settings.topic_prefix + DEMO_TRADES))
        done, _ = await asyncio.wait({task, caught_up}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:  # the service died: surface its error instead of a timeout
            caught_up.cancel()
            task.result()
            raise AssertionError("service stopped before catching up")
        await caught_up
        await asyncio.wait_for(runner.live.wait(), 30)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    return runner


def sample(runner: ServiceRunner, name: str, **labels: str) -> float:
    value = runner.metrics.registry.get_sample_value(name, {"service": "tally", **labels})
    return value or 0.0


async def test_poison_goes_to_dlq_and_processing_continues(bootstrap: str, redis_url: str, prefix: str) -> None:
    await create_topics(bootstrap, prefix, TOPICS)
    trades = list(synthetic_trades(400, seed=11))
    poison = [(10, b"\xc1 not msgpack"), (200, b"\x81\xa4type\xa7md.nope")]
    await produce_trades(bootstrap, prefix + DEMO_TRADES, trades, extra=poison)

    runner = await run_to_end(settings_for(bootstrap, redis_url, prefix))

    outputs = [decode_as(r.value, TallyUpdated) for r in await read_topic(bootstrap, prefix + DEMO_TALLIES)]
    assert len(outputs) == 400
    assert {o.source_id for o in outputs} == {t.id for t in trades}
    letters = [decode_as(r.value, DeadLettered) for r in await read_topic(bootstrap, prefix + DLQ)]
    assert sorted(letter.payload for letter in letters) == sorted(p for _, p in poison)
    assert {letter.reason for letter in letters} == {"malformed", "invalid"}
    assert all(letter.source_topic == prefix + DEMO_TRADES and letter.service == "tally" for letter in letters)
    assert sample(runner, "hean_dlq_total", reason="malformed") == 1
    assert sample(runner, "hean_dlq_total", reason="invalid") == 1


async def test_restart_resumes_from_snapshot_and_rebuild_duplicates_nothing(
    bootstrap: str, redis_url: str, prefix: str
) -> None:
    await create_topics(bootstrap, prefix, TOPICS)
    trades = list(synthetic_trades(3000, seed=5))
    await produce_trades(bootstrap, prefix + DEMO_TRADES, trades[:2000])
    settings = settings_for(bootstrap, redis_url, prefix)
    first = await run_to_end(settings)
    assert sample(first, "hean_events_in_total", topic=prefix + DEMO_TRADES) == 2000

    # Restart after more input: resumes at the snapshot; re-reads nothing it already folded.
    await produce_trades(bootstrap, prefix + DEMO_TRADES, trades[2000:])
    second = await run_to_end(settings)
    assert sample(second, "hean_events_in_total", topic=prefix + DEMO_TRADES) == 1000
    assert sample(second, "hean_replayed_total") == 0
    with urllib.request.urlopen(f"http://127.0.0.1:{second.metrics_port}/metrics") as response:
        exposition = response.read().decode()
    for metric in ("hean_events_in_total", "hean_events_out_total", "hean_apply_seconds_bucket",
                   "hean_consumer_lag", "hean_snapshot_age_seconds", "hean_dlq_total"):
        assert metric in exposition, metric

    expected, _ = fold(trades)
    assert _tally_state(second) == expected.symbols

    # A rebuild from the beginning re-folds everything and produces no output again.
    rebuilt = await run_to_end(settings, StartFrom("beginning"))
    assert sample(rebuilt, "hean_replayed_total") == 3000
    assert rebuilt.state_hash() == second.state_hash()
    outputs = await read_topic(bootstrap, prefix + DEMO_TALLIES)
    assert len(outputs) == 3000
    assert len({decode_as(r.value, TallyUpdated).id for r in outputs}) == 3000


async def test_replay_from_beginning_offset_and_time(bootstrap: str, redis_url: str, prefix: str) -> None:
    await create_topics(bootstrap, prefix, TOPICS)
    trades = list(synthetic_trades(1200, seed=8))
    await produce_trades(bootstrap, prefix + DEMO_TRADES, trades)
    settings = settings_for(bootstrap, redis_url, prefix)
    live = await run_to_end(settings)

    full = await replay(DEFINITION, settings, StartFrom("beginning"))
    assert full.records == 1200 and full.undecodable == 0
    assert full.hash == live.state_hash()

    mid = await replay(DEFINITION, settings, StartFrom("offset", 100))
    partitions = {r.partition for r in await read_topic(bootstrap, prefix + DEMO_TRADES)}
    assert mid.records == 1200 - 100 * len(partitions)
    assert mid.hash != full.hash

    head = await replay(DEFINITION, settings, StartFrom("beginning"), to_offset=50)
    assert head.records == 50 * len(partitions)

    future = await replay(DEFINITION, settings, StartFrom("time", 4_000_000_000_000))
    assert future.records == 0


def fold(trades: list) -> tuple[core.TallyState, int]:
    state = core.initial_state()
    for trade in trades:
        state, _ = core.step(state, trade)
    return state, len(trades)


def _tally_state(runner: ServiceRunner) -> dict[str, core.SymbolTally]:
    merged: dict[str, core.SymbolTally] = {}
    for state in runner.states.values():
        for symbol, tally in state.symbols.items():
            assert symbol not in merged, "a symbol lives in exactly one partition"
            merged[symbol] = tally
    assert all(isinstance(t.total_qty, Decimal) for t in merged.values())
    return merged
