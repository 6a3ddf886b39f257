"""Ingest scaled by symbol set, one instance SIGKILLed mid-stream and restarted, loses no trade.

Two simulators in lockstep with one seed print the same market step for step (the same trades,
ids and books). One is read by two ingest instances (BTCUSDT in-process, ETHUSDT a `hean run
ingest` process, killed and restarted while the market moves on), the other by one instance for
both. md.trades, per symbol in log order, is the same in both runs and equals the simulator's own
record of what it printed; the folded books end equal. The trades printed while the process was
down reach md.trades only through the gap fill from the venue's REST (services/ingest/resume.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from schemas.events import TradeReceived
from schemas.topics import DLQ, MD_BOOK, MD_TICKERS, MD_TRADES
from services.exchange_sim.server import SimConfig, Simulator
from services.ingest.shell import Ingest, IngestConfig
from services.runtime.codec import decode
from services.runtime.settings import RuntimeSettings
from tests.conftest import create_topics, read_topic
from tests.services.ingest.test_ingest_live import fold_books

pytestmark = pytest.mark.integration
SYMBOLS = ("BTCUSDT", "ETHUSDT")
STEPS, KILL_AT = 70, 25
MS = 1_000_000


def lockstep_sim() -> Simulator:
    return Simulator(SimConfig(port=0, rest_port=0, rate=20, symbols=SYMBOLS, seed=11, lockstep=True))


def in_process(sim: Simulator, prefix: str, bootstrap: str, symbols: tuple[str, ...]) -> Ingest:
    return Ingest(IngestConfig(url=f"ws://127.0.0.1:{sim.port}/v5/public/linear", symbols=symbols,
                               backoff_initial=0.05), RuntimeSettings(kafka_bootstrap=bootstrap, topic_prefix=prefix))


def subscribed(sim: Simulator, symbol: str) -> bool:
    return bool(sim.subscribers.get(("linear", f"publicTrade.{symbol}")))


async def until(condition: Any, what: str, timeout: float = 20.0) -> None:
    """Poll `condition` (plain or async) until true; fail naming `what` after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        done = condition()
        if asyncio.iscoroutine(done):
            done = await done
        if done:
            return
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"waited {timeout} s for {what}")
        await asyncio.sleep(0.05)


def trades_by_symbol(records: list) -> dict[str, list[tuple[Any, ...]]]:
    """md.trades per symbol in log order (a symbol sits in one partition), without ingest's own times."""
    out: dict[str, list[tuple[Any, ...]]] = {s: [] for s in SYMBOLS}
    for record in records:
        t = decode(record.value)
        assert isinstance(t, TradeReceived)
        out[t.symbol].append((t.id, t.trade_id, t.ts_event, t.side, t.price, t.qty))
    return out


async def test_a_killed_instance_fills_its_gap_so_md_trades_equal_one_instance(bootstrap: str, prefix: str,
                                                                              tmp_path: Path) -> None:
    scaled, single = prefix, prefix.rstrip(".") + "one."
    for p in (scaled, single):
        await create_topics(bootstrap, p, (MD_TRADES, MD_BOOK, MD_TICKERS, DLQ))
    sims = (lockstep_sim(), lockstep_sim())
    for sim in sims:
        await sim.start()
    live, ref = sims
    env = {**os.environ, "HEAN_KAFKA_BOOTSTRAP": bootstrap, "HEAN_TOPIC_PREFIX": scaled, "HEAN_LOG_LEVEL": "WARNING",
           "INGEST_URL": f"ws://127.0.0.1:{live.port}/v5/public/linear", "INGEST_SYMBOLS": "ETHUSDT",
           "INGEST_BACKOFF_INITIAL": "0.05"}

    def start_eth() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "services.cli.main", "run", "ingest", "--instance", "eth",
                                 "--metrics-port", "0"], env=env, stdout=subprocess.DEVNULL,
                                stderr=(tmp_path / "ingest-eth.log").open("ab"))

    services = (in_process(live, scaled, bootstrap, ("BTCUSDT",)), in_process(ref, single, bootstrap, SYMBOLS))
    stop = asyncio.Event()
    tasks = [asyncio.create_task(s.run(stop)) for s in services]
    eth = start_eth()
    down: list[int] = []  # the venue clock (ms) when the process died and when it subscribed again

    async def step(n: int) -> None:
        for _ in range(n):
            for sim in sims:
                sim.step(list(SYMBOLS))
                sim.release(len(sim.held))
            await asyncio.sleep(0.01)

    async def eth_published() -> bool:
        return any(decode(r.value).symbol == "ETHUSDT" for r in await read_topic(bootstrap, scaled + MD_TRADES))

    try:
        await until(lambda: all(subscribed(s, x) for s in sims for x in SYMBOLS), "every instance subscribed")
        await step(10)
        await until(eth_published, "the process published ETHUSDT trades")  # a history to continue from
        await step(KILL_AT - 10)
        eth.send_signal(signal.SIGKILL)  # mid-stream: frames in its socket, records in flight
        eth.wait()
        down.append(live.venue_ms())
        eth = start_eth()
        while not subscribed(live, "ETHUSDT"):  # the market moves on while it starts
            await step(1)
            await asyncio.sleep(0.04)
        down.append(live.venue_ms())
        await step(STEPS - KILL_AT)

        printed = {s: [(t["execId"], int(t["time"]) * MS) for t in live.trades[s]] for s in SYMBOLS}
        assert printed == {s: [(t["execId"], int(t["time"]) * MS) for t in ref.trades[s]] for s in SYMBOLS}, \
            "the two simulators printed the same market"

        async def all_in(p: str) -> bool:
            got = trades_by_symbol(await read_topic(bootstrap, p + MD_TRADES))
            return all(len(got[s]) >= len(printed[s]) for s in SYMBOLS)

        for p in (scaled, single):
            await until(lambda p=p: all_in(p), f"every trade in {p}md.trades")
    finally:
        stop.set()
        if eth.poll() is None:
            eth.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            eth.wait(timeout=20)
        await asyncio.wait_for(asyncio.gather(*tasks), 20)
        for sim in sims:
            await sim.stop()

    missed = [t for t in live.trades["ETHUSDT"] if down[0] <= int(t["time"]) <= down[1]]
    assert missed, "trades were printed while the process was down: the gap fill had work to do"
    two = trades_by_symbol(await read_topic(bootstrap, scaled + MD_TRADES))
    one = trades_by_symbol(await read_topic(bootstrap, single + MD_TRADES))
    assert two == one, "two instances, one killed, published what one instance did, in the same order"
    for symbol in SYMBOLS:
        assert [(i, ts) for _, i, ts, *_ in two[symbol]] == printed[symbol], f"{symbol}: the venue's own record"
    books_two = fold_books([decode(r.value) for r in await read_topic(bootstrap, scaled + MD_BOOK)])
    books_one = fold_books([decode(r.value) for r in await read_topic(bootstrap, single + MD_BOOK)])
    assert {s: b[1:] for s, b in books_two.items()} == {s: b[1:] for s, b in books_one.items()}, "final books"

