"""A Binance ingest SIGKILLed mid-stream, and later cut off by the venue, loses no aggregate trade.

The simulator's Binance dialect (lockstep: trades only when the test steps it) is read by a `hean
run ingest` process (INGEST_VENUE=binance). The process is SIGKILLed while the market moves — frames
in its socket, records in flight — and stays down for well over one aggTrades page (the fill reads
forward from the last published id + 1, page by page); then the venue drops every connection and
the market moves on while ingest reconnects. md.trades per symbol, in log order, equals the
dialect's own record of the aggregate trades it printed: every id once, in order, nothing on
control (no gap). With INGEST_TRADE_GAP_FILL=false the trades printed while down never arrive and
the test fails (checked by hand when this was written).
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
from schemas.topics import CONTROL, DLQ, MD_BOOK, MD_TICKERS, MD_TRADES
from services.exchange_sim.server import SimConfig, Simulator
from services.runtime.codec import decode
from tests.conftest import create_topics, read_topic
from tests.services.ingest.test_trade_continuity import until

pytestmark = pytest.mark.integration
SYMBOLS = ("BTCUSDT", "ETHUSDT")
MS = 1_000_000
DOWN_TRADES = 1_500  # aggregate trades per symbol printed while the process is dead: two pages forward


ROUTES = 2  # an ingest term opens one connection per routed endpoint: /public (books), /market (trades)


def subscribed(sim: Simulator, term: int) -> bool:
    """The `term`-th term's connections are open and subscribed (a killed one can look subscribed
    until the venue notices its socket is gone, so the count tells them apart)."""
    return sim.binance.stats["connections"] >= term * ROUTES and len(sim.binance.combined) == ROUTES and all(
        sim.binance.subscribers.get(f"{s.lower()}@aggTrade") for s in SYMBOLS)


def by_symbol(records: list) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = {s: [] for s in SYMBOLS}
    for record in records:
        t = decode(record.value)
        assert isinstance(t, TradeReceived) and t.venue == "binance"
        out[t.symbol].append((int(t.trade_id), t.ts_event, t.side, str(t.price), str(t.qty)))
    return out


def printed(sim: Simulator) -> dict[str, list[tuple[Any, ...]]]:
    """The dialect's record, as the events ingest should have made of it."""
    return {s: [(a, ts * MS, "Sell" if maker_buyer else "Buy", p, q)
                for a, p, q, _f, _l, ts, maker_buyer in sim.binance.agg_trades[s]] for s in SYMBOLS}


async def test_a_killed_and_a_cut_off_binance_ingest_loses_no_agg_trade(bootstrap: str, prefix: str,
                                                                       tmp_path: Path) -> None:
    await create_topics(bootstrap, prefix, (MD_TRADES, MD_BOOK, MD_TICKERS, DLQ, CONTROL))
    sim = Simulator(SimConfig(port=0, rest_port=0, rate=20, symbols=SYMBOLS, seed=17, lockstep=True, binance=True))
    await sim.start()
    env = {**os.environ, "HEAN_KAFKA_BOOTSTRAP": bootstrap, "HEAN_TOPIC_PREFIX": prefix, "HEAN_LOG_LEVEL": "WARNING",
           "INGEST_VENUE": "binance", "INGEST_URL": f"ws://127.0.0.1:{sim.port}/stream",
           "INGEST_SYMBOLS": ",".join(SYMBOLS), "INGEST_BACKOFF_INITIAL": "0.05"}
    log = tmp_path / "ingest-binance.log"

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "services.cli.main", "run", "ingest", "--instance", "bn",
                                 "--metrics-port", "0"], env=env, stdout=subprocess.DEVNULL, stderr=log.open("ab"))

    async def step(n: int) -> None:
        for _ in range(n):
            sim.step(list(SYMBOLS))
            await asyncio.sleep(0.01)

    async def in_log(p: str, want: dict[str, int]) -> bool:
        got = by_symbol(await read_topic(bootstrap, p + MD_TRADES))
        return all(len(got[s]) >= want[s] for s in SYMBOLS)

    process = start()
    try:
        await until(lambda: subscribed(sim, 1), "the process subscribed", timeout=30)
        await step(10)
        await until(lambda: in_log(prefix, {s: 1 for s in SYMBOLS}), "its first trades in md.trades")
        await step(10)
        process.send_signal(signal.SIGKILL)  # mid-stream: frames in its socket, records in flight
        process.wait()
        down_from = dict(sim.binance.agg_id)
        while min(sim.binance.agg_id[s] - down_from[s] for s in SYMBOLS) < DOWN_TRADES:
            sim.step(list(SYMBOLS))  # nobody listens: cheap
        process = start()
        while not subscribed(sim, 2):  # the market moves on while it starts
            await step(1)
        await step(20)
        sim.inject("disconnect")  # the venue cuts it off; it reconnects and fills again
        await step(30)  # printed while it reconnects (its backoff is 0.05 s: some may come live)
        await until(lambda: subscribed(sim, 3), "resubscribed after the disconnect", timeout=30)
        await step(20)
        want = {s: len(sim.binance.agg_trades[s]) for s in SYMBOLS}
        await until(lambda: in_log(prefix, want), "every printed trade in md.trades", timeout=30)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=20)
        await sim.stop()

    got = by_symbol(await read_topic(bootstrap, prefix + MD_TRADES))
    record = printed(sim)
    for symbol in SYMBOLS:
        ids = [t[0] for t in got[symbol]]
        assert len(ids) == len(set(ids)), f"{symbol}: a trade published twice"
        assert got[symbol] == record[symbol], f"{symbol}: md.trades is the venue's record, in order"
    assert record["BTCUSDT"][-1][0] - down_from["BTCUSDT"] > DOWN_TRADES, "trades were printed while it was down"
    assert await read_topic(bootstrap, prefix + CONTROL) == [], "no gap: every missed id was filled"
    assert sim.binance.stats["connections"] >= 3, "killed once, cut off once: three connections"
