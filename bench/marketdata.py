"""Market-data figures for `make bench` (issue 3): L2 book, ingest, recorder.

  book      level updates/s of services.venues.bybit.book.BybitBook on a recorded delta stream, against a
            reference book on sortedcontainers.SortedDict with Decimal keys
  ingest    events/s published by one ingest process fed at full speed (simulator replay mode in
            its own process), and the ratio to raw aiokafka produce measured in the same run
  recorder  rows/s into chDB from a pre-filled topic, and end-to-end lag (ingest time → row
            visible) while a producer feeds it live
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path

import orjson
from sortedcontainers import SortedDict

from schemas.events import TradeReceived
from schemas.topics import DLQ, MD_BOOK, MD_TICKERS, MD_TRADES, spec
from services.exchange_sim.record import synthetic_frames, write_replay_file
from services.ingest.shell import Ingest, IngestConfig
from services.recorder.shell import Recorder, RecorderConfig
from services.runtime.bus import ensure_topics, make_producer, send_keyed
from services.runtime.codec import encode
from services.runtime.settings import RuntimeSettings
from services.tally.feed import synthetic_trades
from services.venues.bybit.book import BybitBook

ROOT = Path(__file__).resolve().parents[1]


def _rate(n: float, seconds: float) -> float:
    return round(n / seconds) if seconds > 0 else 0.0


class SortedDictBook:
    """The reference: a sorted map per side with exact Decimal prices."""

    def __init__(self) -> None:
        self.bids: SortedDict = SortedDict()
        self.asks: SortedDict = SortedDict()

    def apply(self, bids: list[list[str]], asks: list[list[str]]) -> int:
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for price, size in levels:
                key = Decimal(price)
                if size == "0":
                    side.pop(key, None)
                else:
                    side[key] = size
        return len(bids) + len(asks)


def bench_book() -> dict[str, float]:
    deltas = []
    for _, frame in synthetic_frames(30_000, symbols=("BTCUSDT",), depth=200):
        message = orjson.loads(frame)
        if message["topic"].startswith("orderbook") and message["type"] == "delta":
            deltas.append((message["data"]["b"], message["data"]["a"], message["data"]["u"]))
    levels = sum(len(b) + len(a) for b, a, _ in deltas)
    results: dict[str, float] = {"delta_messages": len(deltas), "levels": levels}
    best: dict[str, float] = {}
    for _ in range(3):
        book = BybitBook("BTCUSDT", 200)
        book.apply_snapshot([], [], deltas[0][2] - 1)
        t0 = time.perf_counter()
        for bids, asks, u in deltas:
            book.apply_delta(bids, asks, u)
        best["l2book"] = max(best.get("l2book", 0), _rate(levels, time.perf_counter() - t0))
        reference = SortedDictBook()
        t0 = time.perf_counter()
        for bids, asks, _ in deltas:
            reference.apply(bids, asks)
        best["sorteddict"] = max(best.get("sorteddict", 0), _rate(levels, time.perf_counter() - t0))
    results["l2book_level_updates_per_s"] = best["l2book"]
    results["sorteddict_decimal_level_updates_per_s"] = best["sorteddict"]
    return results


async def bench_ingest(settings: RuntimeSettings, raw_produce_per_s: float) -> dict[str, float]:
    prefix = f"benchmd{uuid.uuid4().hex[:6]}."
    await ensure_topics(settings.kafka_bootstrap, [spec(t) for t in (MD_TRADES, MD_BOOK, MD_TICKERS, DLQ)],
                        prefix=prefix)
    with tempfile.TemporaryDirectory() as tmp:
        replay = Path(tmp) / "frames.jsonl"
        frames = write_replay_file(replay, 20_000)
        port = 18801
        env = {**os.environ, "EXCHANGE_SIM_PORT": str(port), "EXCHANGE_SIM_REST_PORT": "0",
               "EXCHANGE_SIM_REPLAY_FILE": str(replay),
               "EXCHANGE_SIM_REPLAY_SPEED": "1000000", "HEAN_LOG_LEVEL": "WARNING"}
        sim = subprocess.Popen([sys.executable, "-m", "services.cli.main", "run", "exchange-sim"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        try:
            await asyncio.sleep(1.5)
            ingest = Ingest(IngestConfig(url=f"ws://127.0.0.1:{port}/v5/public/linear", stale_after=3.0),
                            RuntimeSettings(kafka_bootstrap=settings.kafka_bootstrap, topic_prefix=prefix))
            stop = asyncio.Event()
            task = asyncio.create_task(ingest.run(stop))
            await asyncio.wait_for(ingest.connected.wait(), 10)
            frames_seen = ingest.metrics.frames.labels("ingest")
            while frames_seen._value.get() == 0:
                await asyncio.sleep(0.001)
            t0 = time.perf_counter()
            last, last_change = 0.0, time.perf_counter()
            while time.perf_counter() - last_change < 1.0:
                await asyncio.sleep(0.05)
                now = frames_seen._value.get()
                if now != last:
                    last, last_change = now, time.perf_counter()
            elapsed = last_change - t0
            published = ingest.published
            stop.set()
            await task
        finally:
            sim.terminate()
            sim.wait(timeout=10)
    per_s = _rate(published, elapsed)
    return {"replayed_frames": frames, "frames_processed": int(last), "events_published": published,
            "ingest_events_per_s": per_s, "ingest_frames_per_s": _rate(last, elapsed),
            "ingest_to_raw_produce_ratio": round(per_s / raw_produce_per_s, 3) if raw_produce_per_s else 0.0}


async def bench_recorder(settings: RuntimeSettings) -> dict[str, float]:
    prefix = f"benchrec{uuid.uuid4().hex[:6]}."
    await ensure_topics(settings.kafka_bootstrap, [spec(t) for t in (MD_TRADES, MD_BOOK, MD_TICKERS, DLQ)],
                        prefix=prefix)
    n = 200_000
    producer = make_producer(settings.kafka_bootstrap)
    await producer.start()
    await send_keyed(producer, ((prefix + MD_TRADES, t.symbol.encode(), encode(t)) for t in synthetic_trades(n)))
    await producer.flush()
    with tempfile.TemporaryDirectory() as tmp:
        recorder = Recorder(RecorderConfig(store=f"chdb://{tmp}/chdb", flush_rows=100_000),
                            RuntimeSettings(kafka_bootstrap=settings.kafka_bootstrap, topic_prefix=prefix))
        stop = asyncio.Event()
        task = asyncio.create_task(recorder.run(stop))
        rows = recorder.metrics.rows.labels("recorder", "trades")
        while rows._value.get() == 0:
            await asyncio.sleep(0.001)
        t0 = time.perf_counter()
        first = rows._value.get()
        while rows._value.get() < n:
            await asyncio.sleep(0.005)
        bulk = _rate(n - first, time.perf_counter() - t0)

        # Live: 2,000 trades/s, each stamped when sent; lag = row visible - ts_ingest.
        lag_metric = recorder.metrics.lag.labels("recorder")
        lags: list[float] = []
        observe = lag_metric.observe

        def capture(value: float) -> None:
            lags.append(value)
            observe(value)

        lag_metric.observe = capture  # type: ignore[method-assign]
        for chunk in range(100):
            stamp = time.time_ns()
            live = (TradeReceived(id=f"live-{chunk}-{i}", ts_event=stamp, ts_ingest=stamp, origin_ts=stamp,
                                  symbol="BTCUSDT", trade_id=f"{chunk}-{i}", side="Buy", price=Decimal("65000.1"),
                                  qty=Decimal("0.001")) for i in range(100))
            await send_keyed(producer, ((prefix + MD_TRADES, b"BTCUSDT", encode(t)) for t in live))
            await producer.flush()
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        stop.set()
        await task
    await producer.stop()
    lags.sort()

    def pct(q: float) -> float:
        return round(lags[min(len(lags) - 1, int(q * len(lags)))] * 1000, 1) if lags else 0.0

    return {"recorder_rows_per_s": bulk, "live_lag_p50_ms": pct(0.5), "live_lag_p99_ms": pct(0.99),
            "live_lag_samples": len(lags)}

