"""`hean sql` through the real CLI while a real recorder process records a simulated market:
the count grows between calls, every format parses back, every failure is one line and exit 2,
and every query of docs/ANALYTICS.md gives sane numbers."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import os
import pty
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx
import orjson
import pyarrow.parquet
import pytest

from schemas.topics import DLQ, MD_BOOK, MD_TICKERS, MD_TRADES
from services.exchange_sim.server import SimConfig, Simulator
from services.ingest.shell import Ingest, IngestConfig
from services.recorder.query import discovery_path
from services.runtime.codec import decode
from services.runtime.settings import RuntimeSettings
from tests.conftest import create_topics, read_topic, wait_caught_up
from tests.test_market_data_cli import free_port

pytestmark = pytest.mark.integration
HEAN = [sys.executable, "-m", "services.cli.main"]
DOC = Path(__file__).resolve().parents[3] / "docs" / "ANALYTICS.md"


@dataclass
class Live:
    env: dict[str, str]
    store: Path
    prefix: str
    bootstrap: str
    metrics_port: int
    recorder: subprocess.Popen[bytes]
    feed: asyncio.Task[None]
    release: asyncio.Event
    settled_count: list[int] = field(default_factory=list)

    async def settled(self) -> int:
        """Let the feed end, wait for it and for the recorder to hold all of it; the trade count."""
        self.release.set()
        await self.feed
        for topic in (MD_TRADES, MD_BOOK, MD_TICKERS):
            await wait_caught_up(self.bootstrap, f"{self.prefix}hean.recorder", self.prefix + topic, timeout=30)
        return len({decode(r.value).id for r in await read_topic(self.bootstrap, self.prefix + MD_TRADES)})


async def hean_sql(env: dict[str, str], *args: str) -> tuple[int, bytes, str]:
    proc = await asyncio.create_subprocess_exec(*HEAN, "sql", *args, env=env, stdout=subprocess.PIPE,
                                                stderr=subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode or 0, out, err.decode()


async def count(env: dict[str, str]) -> int:
    """md.trades' rows by `hean sql`, the table unqualified: it runs in the store's database, from
    the recorder's endpoint and from the store opened by hean sql itself alike."""
    code, out, err = await hean_sql(env, "SELECT count() FROM trades", "--format", "TSV")
    assert code == 0, err
    return int(out)


def one_line(code: int, err: str, *words: str) -> None:
    assert code == 2 and err.startswith("hean sql: ") and err.count("\n") == 1 and "Traceback" not in err, err
    assert all(w in err for w in words), err


async def feed_market(bootstrap: str, prefix: str, seconds: float, release: asyncio.Event) -> None:
    """Feed a simulated market for at least `seconds`, then until `release` is set (at most a minute),
    so a test that watches the store grow is not cut short by a loaded machine's slow process starts."""
    sim = Simulator(SimConfig(port=0, rest_port=0, rate=60, symbols=("BTCUSDT", "ETHUSDT"), seed=11))
    port = await sim.start()
    stop = asyncio.Event()
    ingest = Ingest(IngestConfig(url=f"ws://127.0.0.1:{port}/v5/public/linear", symbols=("BTCUSDT", "ETHUSDT")),
                    RuntimeSettings(kafka_bootstrap=bootstrap, topic_prefix=prefix))
    task = asyncio.create_task(ingest.run(stop))
    await asyncio.sleep(seconds)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(release.wait(), 60 - seconds)
    stop.set()
    await task
    await sim.stop()


@pytest.fixture(scope="module")
async def live(bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Live]:
    prefix = f"tsql{os.getpid()}."
    from tests.conftest import _PREFIXES
    _PREFIXES.add(prefix)
    await create_topics(bootstrap, prefix, (MD_TRADES, MD_BOOK, MD_TICKERS, DLQ))
    store = tmp_path_factory.mktemp("sql") / "chdb"
    metrics_port = free_port()
    env = {**os.environ, "HEAN_KAFKA_BOOTSTRAP": bootstrap, "RECORDER_STORE": f"chdb://{store}",
           "RECORDER_FLUSH_SECONDS": "0.1", "RECORDER_QUERY_TIMEOUT_SECONDS": "2",
           "RECORDER_QUERY_MAX_RESULT_BYTES": str(4 << 20), "HEAN_LOG_LEVEL": "WARNING"}
    log = (store.parent / "recorder.log").open("wb")
    recorder = subprocess.Popen([*HEAN, "run", "recorder", "--topic-prefix", prefix, "--metrics-port",
                                 str(metrics_port)], env=env, stdout=log, stderr=log)
    for _ in range(200):
        if discovery_path(store).exists() or recorder.poll() is not None:
            break
        await asyncio.sleep(0.1)
    assert discovery_path(store).exists(), (store.parent / "recorder.log").read_text()
    release = asyncio.Event()
    feed = asyncio.create_task(feed_market(bootstrap, prefix, 9, release))
    yield Live(env, store, prefix, bootstrap, metrics_port, recorder, feed, release)
    release.set()
    if not feed.done():
        await feed
    if recorder.poll() is None:
        recorder.send_signal(signal.SIGTERM)
        recorder.wait(timeout=30)
    log.close()


def rows_inserted(port: int) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    [value] = re.findall(r'^hean_recorder_rows_total\{service="recorder",table="trades"\} (\S+)$', text, re.M)
    return float(value)


async def test_count_grows_while_the_recorder_records(live: Live) -> None:
    seen = [await count(live.env)]
    while seen[-1] == 0 and not live.feed.done():
        seen.append(await count(live.env))
    # A query held at its time limit does not stop the recording.
    before = rows_inserted(live.metrics_port)
    slow = asyncio.create_task(hean_sql(live.env, "SELECT sum(number) FROM numbers(100000000000)"))
    await asyncio.sleep(1.5)
    during = rows_inserted(live.metrics_port)
    one_line(*(await slow)[::2], "time limit", "code 159")
    assert during > before, (before, during)
    # The feed goes on until this test has read the count grow (or its minute is up).
    while len(set(seen)) < 2 and not live.feed.done():
        seen.append(await count(live.env))
    assert seen == sorted(seen) and len(set(seen)) >= 2 and seen[-1] > 0, seen
    expected = await live.settled()
    assert await count(live.env) == expected >= seen[-1]


async def test_each_format_parses_back(live: Live, tmp_path: Path) -> None:
    expected = await live.settled()
    sql = "SELECT id, symbol, side, price, qty FROM hean.trades ORDER BY id"
    code, out, err = await hean_sql(live.env, sql, "--format", "csv")
    assert code == 0, err
    by_csv = list(csv.DictReader(io.StringIO(out.decode())))
    code, out, err = await hean_sql(live.env, sql, "--format", "json")
    assert code == 0, err
    by_json = [orjson.loads(line) for line in out.splitlines()]
    assert len(by_csv) == len(by_json) == expected
    assert [(r["id"], Decimal(r["price"]), Decimal(r["qty"])) for r in by_csv] == \
           [(r["id"], Decimal(r["price"]), Decimal(r["qty"])) for r in by_json]
    assert all(isinstance(r["price"], str) for r in by_json)  # decimals quoted: exact

    parquet = tmp_path / "trades.parquet"
    code, out, err = await hean_sql(live.env, sql, "--format", "parquet", "--output", str(parquet))
    assert (code, out) == (0, b""), err
    table = pyarrow.parquet.read_table(parquet)
    assert table.num_rows == expected and table.column("id").to_pylist() == [r["id"] for r in by_json]

    code, out, err = await hean_sql(live.env, "SELECT symbol, count() AS n FROM hean.trades GROUP BY symbol "
                                    "ORDER BY symbol")
    assert code == 0, err
    lines = out.decode().splitlines()
    assert "symbol" in lines[0] and "BTCUSDT" in lines[1] and "ETHUSDT" in lines[2] and len(lines) == 4, lines

    leader, follower = pty.openpty()  # parquet to a terminal: refused, nothing written
    proc = subprocess.run([*HEAN, "sql", sql, "--format", "parquet"], env=live.env, stdout=follower,
                          stderr=subprocess.PIPE, text=True, timeout=60)
    os.close(follower)
    os.close(leader)
    one_line(proc.returncode, proc.stderr, "--output")


FAILURES = {
    "SELEC count() FROM hean.trades": ("syntax error", "code 62"),
    "SELECT count() FROM hean.nope": ("unknown table hean.nope", "code 60"),
    "SELECT nope FROM hean.trades": ("unknown column nope", "code 47"),
    "INSERT INTO hean.trades (symbol) VALUES ('X')": ("read", "code 164"),
    "DROP TABLE hean.trades": ("read", "code 164"),
    "ALTER TABLE hean.trades DELETE WHERE 1": ("read", "code 164"),
    "SELECT number FROM numbers(10000000)": ("size limit", "code 396"),
}


async def test_failures_are_one_line_and_exit_2(live: Live) -> None:
    expected = await live.settled()
    answers = await asyncio.gather(*(hean_sql(live.env, sql) for sql in FAILURES))
    for (sql, words), (code, _out, err) in zip(FAILURES.items(), answers, strict=True):
        assert code == 2, (sql, err)
        one_line(code, err, *words)
    assert await count(live.env) == expected  # nothing written, and the recorder still answers


def doc_queries() -> dict[str, str]:
    blocks = re.findall(r"```sql\n(.*?)```", DOC.read_text(), re.S)
    return {block.splitlines()[0].removeprefix("-- ").strip(): block for block in blocks}


async def test_the_queries_in_the_analytics_doc(live: Live) -> None:
    await live.settled()
    results = {}
    for name, sql in doc_queries().items():
        code, out, err = await hean_sql(live.env, sql, "--format", "json")
        assert code == 0, (name, err)
        results[name] = [orjson.loads(line) for line in out.splitlines()]
        assert results[name], name
    assert set(results) == {"vwap_per_minute", "spread_statistics", "trade_flow_imbalance", "latest_ticker"}
    for row in results["vwap_per_minute"]:
        assert row["low"] - 1e-9 <= row["vwap"] <= row["high"] + 1e-9 and row["volume"] > 0, row
    for row in results["spread_statistics"]:
        assert 0 < row["mean_spread"] <= row["max_spread"] and 0 < row["median_spread"] <= row["max_spread"], row
        assert 0 < row["mean_spread_bps"] < 100, row
    for row in results["trade_flow_imbalance"]:
        assert -1 <= row["imbalance"] <= 1 and row["buy_volume"] + row["sell_volume"] > 0, row
    trades = {(r["symbol"], r["minute"]): r for r in results["vwap_per_minute"]}
    for row in results["trade_flow_imbalance"]:
        volume = trades[row["symbol"], row["minute"]]["volume"]
        assert abs(row["buy_volume"] + row["sell_volume"] - volume) < 1e-6 * volume, row
    for row in results["latest_ticker"]:
        assert row["last_price"] is not None and Decimal(row["bid1_price"]) < Decimal(row["ask1_price"]), row


async def test_after_a_clean_stop_and_with_a_stale_file(live: Live) -> None:
    expected = await live.settled()
    live.recorder.send_signal(signal.SIGTERM)
    assert live.recorder.wait(timeout=30) == 0
    file = discovery_path(live.store)
    assert not file.exists()
    assert await count(live.env) == expected  # the store opened by hean sql itself

    stale = orjson.dumps({"url": f"http://127.0.0.1:{free_port()}/query", "store": str(live.store.resolve()),
                          "pid": 1})
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from services.recorder.store import "
                               f"ChdbStore; s = ChdbStore({str(live.store)!r}); print('open', flush=True); "
                               "time.sleep(60)"], env=live.env, stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"open\n"
        file.write_bytes(stale)
        one_line(*(await hean_sql(live.env, "SELECT 1"))[::2], "does not answer", "held by another process")
        file.unlink()
        one_line(*(await hean_sql(live.env, "SELECT 1"))[::2], "held by another process")
    finally:
        holder.kill()
        holder.wait()
    file.write_bytes(stale)  # stale, and the store free: hean sql opens it and drops the file
    assert await count(live.env) == expected and not file.exists()

    one_line(*(await hean_sql(live.env, "SELECT 1", "--store", f"chdb://{live.store.parent / 'none'}"))[::2],
             "no chDB store")
    one_line(*(await hean_sql(live.env, "SELECT 1", "--store", f"clickhouse://default:@127.0.0.1:{free_port()}"
                              "/hean"))[::2], "cannot reach the ClickHouse server")
