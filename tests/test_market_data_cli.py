"""Done-when of issue 3, through the real commands: exchange-sim, ingest and recorder as processes,
then `hean sql` counts trades equal to the unique trades in the topic."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from schemas.topics import DLQ, MD_BOOK, MD_TICKERS, MD_TRADES
from services.runtime.codec import decode
from tests.conftest import create_topics, read_topic, wait_caught_up

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_three_processes_and_sql(bootstrap: str, prefix: str, tmp_path: Path) -> None:
    await create_topics(bootstrap, prefix, (MD_TRADES, MD_BOOK, MD_TICKERS, DLQ))
    port = free_port()
    env = {**os.environ, "HEAN_KAFKA_BOOTSTRAP": bootstrap, "EXCHANGE_SIM_PORT": str(port),
           "EXCHANGE_SIM_REST_PORT": "0", "EXCHANGE_SIM_RATE": "50", "INGEST_URL": f"ws://127.0.0.1:{port}/v5/public/linear",
           "INGEST_SYMBOLS": "BTCUSDT,ETHUSDT", "RECORDER_STORE": f"chdb://{tmp_path / 'chdb'}",
           "HEAN_LOG_LEVEL": "WARNING"}
    hean = [sys.executable, "-m", "services.cli.main"]
    log = (tmp_path / "processes.log").open("wb")
    procs = {name: subprocess.Popen([*hean, "run", name, "--topic-prefix", prefix], env=env, stdout=log, stderr=log)
             for name in ("exchange-sim", "ingest", "recorder")}
    try:
        await asyncio.sleep(6)
        for name in ("ingest", "exchange-sim"):
            procs[name].send_signal(signal.SIGTERM)
            assert procs[name].wait(timeout=30) == 0, name
        await wait_caught_up(bootstrap, f"{prefix}hean.recorder", prefix + MD_TRADES, timeout=60)
        procs["recorder"].send_signal(signal.SIGTERM)
        assert procs["recorder"].wait(timeout=60) == 0
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
        log.close()
    trades = {decode(r.value).id for r in await read_topic(bootstrap, prefix + MD_TRADES)}
    assert len(trades) > 50
    started = time.monotonic()
    result = subprocess.run([*hean, "sql", "SELECT count(), uniqExact(id) FROM hean.trades", "--format", "TSV"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(len(trades)), str(len(trades))], (result.stdout, time.monotonic() - started)
