"""The ingest connection's housekeeping: pings, backoff and the circuit breaker (real sockets)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from schemas.topics import DLQ, MD_BOOK, MD_TICKERS, MD_TRADES
from services.exchange_sim.server import SimConfig, Simulator
from services.ingest.shell import Ingest, IngestConfig
from services.runtime.settings import RuntimeSettings
from tests.conftest import create_topics

pytestmark = pytest.mark.integration


async def test_pings_at_the_configured_interval(bootstrap: str, prefix: str) -> None:
    await create_topics(bootstrap, prefix, (MD_TRADES, MD_BOOK, MD_TICKERS, DLQ))
    sim = Simulator(SimConfig(port=0, rest_port=0, rate=5, symbols=("BTCUSDT",)))
    port = await sim.start()
    ingest = Ingest(IngestConfig(url=f"ws://127.0.0.1:{port}/v5/public/linear", symbols=("BTCUSDT",),
                                 ping_interval=0.2), RuntimeSettings(kafka_bootstrap=bootstrap, topic_prefix=prefix))
    stop = asyncio.Event()
    task = asyncio.create_task(ingest.run(stop))
    await asyncio.sleep(1.3)
    stop.set()
    await task
    await sim.stop()
    assert 4 <= sim.stats["pings"] <= 7


async def test_circuit_opens_after_repeated_connect_failures(bootstrap: str, prefix: str) -> None:
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ingest = Ingest(IngestConfig(url=f"ws://127.0.0.1:{port}/v5/public/linear", backoff_initial=0.01,
                                 breaker_failures=3, breaker_open_seconds=30),
                    RuntimeSettings(kafka_bootstrap=bootstrap, topic_prefix=prefix))
    stop = asyncio.Event()
    task = asyncio.create_task(ingest.run(stop))
    registry = ingest.metrics.base.registry
    for _ in range(100):
        await asyncio.sleep(0.05)
        if registry.get_sample_value("hean_ws_breaker_open", {"service": "ingest"}) == 1:
            break
    failures = registry.get_sample_value("hean_ws_reconnects_total", {"service": "ingest", "cause": "connect_failed"})
    assert registry.get_sample_value("hean_ws_breaker_open", {"service": "ingest"}) == 1
    assert failures == 3
    await asyncio.sleep(0.3)  # open: no more attempts
    assert registry.get_sample_value("hean_ws_reconnects_total",
                                     {"service": "ingest", "cause": "connect_failed"}) == failures
    stop.set()
    await asyncio.wait_for(task, 5)
