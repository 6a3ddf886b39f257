"""Chaos runs: the whole trading loop in lockstep, with SIGKILLs, compared with a run without.

`lockstep_run` starts the local stack (simulator in lockstep mode, ingest, strategy, risk,
execution, accounting) under one topic prefix, drives the market `steps` steps per symbol
(services/supervisor/lockstep.py), and SIGKILLs trading-loop services at seeded random frames,
each after a random delay, so the kill lands anywhere in the work that frame starts; every second
kill of a folded service (and of execution) is at the kill point instead (HEAN_CHAOS_CRASH_DIR):
after its next batch's outputs are acknowledged (execution: its effects performed and logged),
before its offsets are committed. The supervisor restarts a
killed service at once (with its backoff); it recovers from its snapshot and the log. At the end
the stack is stopped, and what the run produced is collected:

- the venue's books (/sim/ledger): every order and fill with its id, positions and wallet;
- intents, decisions and order events as read from the log (without local receive times);
- per topic, how many records repeat an id (a duplicate intent, decision or report);
- `hean state` hashes of strategy, risk, accounting and execution, and `hean replay
  --from-beginning` hashes.

Two runs with the same seed must produce equal records (`differences`): that is the crash-safety
claim, proven from outside, through the CLI and the venue's own books.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec

from schemas.events import Event
from schemas.topics import ALGOS_REPORTS, ORDERS_DECISIONS, ORDERS_EVENTS, ORDERS_INTENTS
from services.runtime.bus import make_consumer, make_producer, partitions_of, read_to_end, send_and_wait
from services.runtime.codec import decode, encode
from services.supervisor.lockstep import Settle, drive
from services.supervisor.stack import Stack, StackConfig

SERVICES = ("strategy", "risk", "accounting")  # folded on the runtime (its kill point applies)
# Whose `hean state` and `hean replay` are compared: the runtime's, and execution's core state
# (services/execution/core.py, snapshotted by the executor itself).
FOLDED = (*SERVICES, "execution")
# Who has the kill point "outputs acknowledged, offsets not committed" (execution: after acting
# on a batch and logging its refusals, services/execution/shell.py `_chaos_crash`).
KILL_POINT = (*SERVICES, "algos", "execution")
KILLABLE = ("strategy", "risk", "execution", "accounting")
LOCAL_TIMES = frozenset({"ts_ingest", "origin_ts"})  # when HEAN received something: differs per run
SUBSCRIPTIONS_PER_SYMBOL = 3  # ingest's book, trades and tickers streams

LOCKSTEP_ENV = {
    "EXCHANGE_SIM_LOCKSTEP": "true",
    "HEAN_LOG_LEVEL": "WARNING",
    "HEAN_SESSION_TIMEOUT_MS": "3000",
    "HEAN_SNAPSHOT_EVERY_SECONDS": "1",
    "HEAN_COMMIT_INTERVAL_MS": "0",  # settled = committed: commit each batch at once
    # Fast parameters, so a short run trades: EMA crosses every few trades, quotes move often.
    "STRATEGY_EMA_FAST": "3",
    "STRATEGY_EMA_SLOW": "8",
    "STRATEGY_MAKER_MIN_REQUOTE_MS": "250",
}


@dataclass
class RunRecord:
    """What one lockstep run produced (see the module docstring)."""

    ledger: dict[str, Any]
    records: dict[str, list[Any]]
    duplicates: dict[str, int]
    state_hashes: dict[str, str]
    replay_hashes: dict[str, str]
    frames: int = 0
    kills: list[tuple[int, str]] = field(default_factory=list)
    sent_kills: list[tuple[int, str]] = field(default_factory=list)  # those at "outputs sent, offsets not committed"
    differing: dict[str, int] = field(default_factory=dict)  # per topic, ids whose repeats differ from the first
    restarts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    prefix: str = ""  # the run's topics (a backtest of its recorded ticks reads them)

    def counts(self) -> dict[str, int]:
        """Headline figures: orders and fills at the venue, records per topic."""
        venue = next(iter(self.ledger.values()), {"orders": [], "executions": []})
        return {"orders": len(venue["orders"]), "fills": len(venue["executions"]),
                **{topic: len(records) for topic, records in self.records.items()}}


Fault = Callable[["Stack"], Awaitable[str]]  # does something to the run (its infrastructure, its venue); returns
# a label for the record


def kill_plan(rng: random.Random, frames_estimate: int, kills_per_service: int,
              killable: tuple[str, ...] = KILLABLE) -> dict[int, str]:
    """Frame number → service to kill there: each killable service `kills_per_service` times, at
    random frames spread over the run (none in the first few, while groups are still forming)."""
    victims = [s for s in killable for _ in range(kills_per_service)]
    rng.shuffle(victims)
    frames = sorted(rng.sample(range(8, max(9 + len(victims), frames_estimate)), len(victims)))
    return dict(zip(frames, victims, strict=True))


async def lockstep_run(home: Path, prefix: str, steps: int, seed: int = 7, kills_per_service: int = 0,
                       chaos_seed: int = 1, symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT", "SOLUSDT"),
                       bootstrap: str = "127.0.0.1:9092", redis_url: str = "redis://127.0.0.1:6379/0",
                       faults: Mapping[int, Fault] | None = None, parents: Sequence[Event] = (),
                       killable: tuple[str, ...] = KILLABLE, env: Mapping[str, str] | None = None,
                       folded: tuple[str, ...] | None = None) -> RunRecord:
    """One run (see the module docstring); `kills_per_service` = 0 is the crash-free run.

    `parents` (SubmitAlgo) go to orders.intents before the first frame; the run then also waits for
    the algos service at every frame and compares its state, its children and algos.reports.
    `killable` names the services the kills pick from; `env` adds to the services' settings;
    `folded` the services whose `hean state` and `hean replay` are compared (default: all).

    `faults` maps a frame number to a fault done right after that frame's release (a broker
    SIGKILL and restart, a Redis wipe: services/supervisor/faults.py); the driver waits for it,
    then for the platform to settle again."""
    started = time.monotonic()
    crash_dir = home / "chaos-crash"  # the runtime's kill point "outputs sent, offsets not committed"
    crash_dir.mkdir(parents=True, exist_ok=True)
    env = {**LOCKSTEP_ENV, "EXCHANGE_SIM_SEED": str(seed), "HEAN_CHAOS_CRASH_DIR": str(crash_dir), **(env or {})}
    config = StackConfig(home=home, bootstrap=bootstrap, redis_url=redis_url, prefix=prefix, symbols=symbols,
                         recorder=False, extra_env=env)
    stack = Stack(config)
    rng = random.Random(chaos_seed)
    plan = kill_plan(rng, steps * len(symbols) * 2, kills_per_service, killable) if kills_per_service else {}
    folded = folded or ((*FOLDED, "algos") if parents else FOLDED)
    kills: list[tuple[int, str]] = []
    sent_kills: list[tuple[int, str]] = []
    pending: set[asyncio.Task[None]] = set()

    async def kill_later(frame: int) -> None:
        fault = (faults or {}).get(frame)
        if fault is not None:
            kills.append((frame, await fault(stack)))
        victim = plan.get(frame)
        if victim is None:
            return

        nth = sum(1 for f, v in plan.items() if v == victim and f < frame)  # this victim's kills before

        async def kill() -> None:
            child = stack.services[victim].child
            while not child.running:  # still down from its last kill: wait for the restart
                await asyncio.sleep(0.05)
            await asyncio.sleep(rng.uniform(0.0, 0.15))  # somewhere in the work this frame started
            if victim in KILL_POINT and nth % 2 == 1 and await _crash_after_send(crash_dir / victim, child):
                kills.append((frame, victim))
                sent_kills.append((frame, victim))
                return
            child.kill()
            kills.append((frame, victim))

        task = asyncio.create_task(kill())
        pending.add(task)
        task.add_done_callback(pending.discard)

    sim_port = int(stack.services["exchange-sim"].child.env["EXCHANGE_SIM_PORT"])
    ingest_port = stack.services["ingest"].metrics_port
    assert ingest_port is not None
    settle = Settle(bootstrap, prefix, sim_port, ingest_port, (*KILLABLE, "algos") if parents else KILLABLE)
    try:
        await stack.start()
        await _wait_subscribed(sim_port, SUBSCRIPTIONS_PER_SYMBOL * len(symbols))
        await settle.start()
        if parents:
            await _send_intents(bootstrap, prefix, parents)
        frames = await drive(settle, sim_port, symbols, steps, kill_later)
        await asyncio.gather(*pending)
        await _restarted(stack, Counter(victim for _, victim in kills if victim in stack.services))
        await settle.wait()
        async with httpx.AsyncClient() as client:
            ledger = (await client.get(f"http://127.0.0.1:{sim_port}/sim/ledger")).json()
        restarts = {name: s.child.restarts for name, s in stack.services.items()}
    finally:
        await settle.close()
        await stack.stop()
    records, duplicates, differing = await _read_outputs(bootstrap, prefix)
    # The services' own settings: a replay folds with the parameters the live service had.
    cli_env = {**env, "HEAN_KAFKA_BOOTSTRAP": bootstrap, "HEAN_REDIS_URL": redis_url, "HEAN_HOME": str(home)}
    states = {s: _cli_hash(["state", s, "--json", "--topic-prefix", prefix], cli_env) for s in folded}
    replays = {s: _cli_hash(["replay", s, "--from-beginning", "--json", "--topic-prefix", prefix], cli_env)
               for s in folded}
    return RunRecord(ledger=ledger, records=records, duplicates=duplicates, state_hashes=states,
                     replay_hashes=replays, frames=frames, kills=kills, sent_kills=sent_kills, differing=differing,
                     restarts=restarts, seconds=time.monotonic() - started, prefix=prefix)


def differences(clean: RunRecord, chaos: RunRecord, repeats_ok: Collection[str] = ()) -> list[str]:
    """What differs between two runs with the same seed (empty: the runs agree).

    `repeats_ok`: topics whose writers commit without a transaction (docs/COMMITS.md), where a
    record may repeat after a crash; a repeat must then equal the first record of its id."""
    found = []
    if clean.ledger != chaos.ledger:
        found.append("the venue's books (orders, fills, positions, wallet) differ")
    for topic in clean.records.keys() | chaos.records.keys():
        a, b = clean.records.get(topic, []), chaos.records.get(topic, [])
        if a != b:
            found.append(f"{topic}: {len(a)} vs {len(b)} records; {len([x for x in b if x not in a])} new in chaos")
    folded = sorted(clean.state_hashes.keys() | chaos.state_hashes.keys())
    for name in folded:
        if clean.state_hashes.get(name) != chaos.state_hashes.get(name):
            found.append(f"{name}: state hash {clean.state_hashes.get(name)} vs {chaos.state_hashes.get(name)}")
    for run, label in ((clean, "clean"), (chaos, "chaos")):
        for name in folded:
            if run.state_hashes.get(name) != run.replay_hashes.get(name):
                found.append(f"{label} {name}: hean state {run.state_hashes.get(name)} != hean replay "
                             f"{run.replay_hashes.get(name)}")
        found += [f"{label} {topic}: {n} duplicated records" for topic, n in run.duplicates.items()
                  if n and topic not in repeats_ok]
        found += [f"{label} {topic}: {n} ids repeated with other content" for topic, n in run.differing.items() if n]
    return found


async def _crash_after_send(armed: Path, child: Any, timeout: float = 3.0) -> bool:
    """Arm the runtime's kill point for one service (HEAN_CHAOS_CRASH_DIR): its next batch with
    outputs kills it after they are acknowledged, before its offsets are committed. True once it
    died there; False (disarmed) when no batch with outputs came within `timeout`."""
    armed.touch()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not armed.exists():
            while child.running:  # removed just before the SIGKILL: wait for the death
                await asyncio.sleep(0.01)
            return True
        await asyncio.sleep(0.02)
    with contextlib.suppress(FileNotFoundError):
        armed.unlink()
        return False
    while child.running:  # fired as the timeout ran out
        await asyncio.sleep(0.01)
    return True


async def _send_intents(bootstrap: str, prefix: str, intents: Sequence[Event]) -> None:
    """Operator intents (parent orders) into the run's orders.intents, keyed by symbol."""
    producer = make_producer(bootstrap)
    await producer.start()
    try:
        await send_and_wait(producer, [(prefix + ORDERS_INTENTS, e.symbol.encode(), encode(e))  # type: ignore[attr-defined]
                                       for e in intents])
    finally:
        await producer.stop()


async def _restarted(stack: Stack, kills: Mapping[str, int], timeout: float = 60.0) -> None:
    """Until every service killed in the run was restarted once per kill and runs: a kill near the
    end (a kill point that waited for outputs) must be recovered from, and counted, before the
    run is read."""
    def down() -> list[str]:
        return sorted(name for name, n in kills.items()
                      if stack.services[name].child.restarts < n or not stack.services[name].child.running)

    deadline = time.monotonic() + timeout
    while down():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not restarted within {timeout} s: {down()}")
        await asyncio.sleep(0.05)


async def _wait_subscribed(sim_port: int, subscriptions: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                stats = (await client.get(f"http://127.0.0.1:{sim_port}/sim/stats")).json()
                if stats.get("subscriptions", 0) >= subscriptions:
                    return
            await asyncio.sleep(0.1)
    raise TimeoutError(f"ingest did not subscribe to {subscriptions} streams in {timeout} s")


async def _read_outputs(bootstrap: str, prefix: str,
                        ) -> tuple[dict[str, list[Any]], dict[str, int], dict[str, int]]:
    """Intents, decisions and order events, sorted by id, without local times (the first record
    of an id); per topic how many records repeat an id, and how many ids repeat with other content."""
    consumer = make_consumer(bootstrap, None)
    await consumer.start()
    records: dict[str, list[Any]] = {}
    duplicates: dict[str, int] = {}
    differing: dict[str, int] = {}
    try:
        topics = (ORDERS_INTENTS, ORDERS_DECISIONS, ORDERS_EVENTS, ALGOS_REPORTS)
        every = await partitions_of(consumer, [prefix + t for t in topics])  # before any assign narrows it
        for topic in topics:
            tps = [tp for tp in every if tp.topic == prefix + topic]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            events = [decode(r.value) async for _tp, batch in read_to_end(consumer, tps) for r in batch]
            ids = Counter(e.id for e in events)
            duplicates[topic] = sum(n - 1 for n in ids.values())
            unique: dict[str, Any] = {}
            other: set[str] = set()
            for e in events:
                body = _without_local_times(msgspec.to_builtins(e))
                first = unique.setdefault(e.id, body)
                if first != body:
                    other.add(e.id)
            differing[topic] = len(other)
            records[topic] = [unique[i] for i in sorted(unique)]
    finally:
        await consumer.stop()
    return records, duplicates, differing


def as_recorded(events: Iterable[Any]) -> list[Any]:
    """Events as a RunRecord holds them: builtins without local times, one per id (the first in the
    log), sorted by id; so another source of the same events (a backtest) compares with a run."""
    unique: dict[str, Any] = {}
    for e in events:
        unique.setdefault(e.id, _without_local_times(msgspec.to_builtins(e)))
    return [unique[i] for i in sorted(unique)]


def _without_local_times(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_local_times(v) for k, v in value.items() if k not in LOCAL_TIMES}
    return value


def _cli_hash(args: list[str], env: dict[str, str]) -> str:
    """The hash `hean ARGS` prints (--json); the CLI an operator would use."""
    result = subprocess.run([sys.executable, "-m", "services.cli.main", *args], capture_output=True, text=True,
                            env={**os.environ, **env}, timeout=300, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"hean {' '.join(args)} failed: {result.stderr.strip()[-500:]}")
    return str(msgspec.json.decode(result.stdout.strip().splitlines()[-1])["hash"])
