"""The recorder's query endpoint on a real chDB store in this process, as the recorder runs it:
the store's session inserts on one thread while the endpoint answers over HTTP on another."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
import pytest

from schemas.events import TradeReceived
from services.recorder.core import BY_TABLE, trade_row
from services.recorder.query import STORE_HEADER, QueryLimits, QueryServer, clickhouse_error, describe, discovery_path
from services.recorder.store import ChdbStore
from services.tally.feed import synthetic_trades


def rows(trades: list[TradeReceived], first_offset: int) -> list[tuple[object, ...]]:
    return [(*trade_row(t), "md.trades", 0, first_offset + i) for i, t in enumerate(trades)]


@pytest.mark.parametrize(("text", "line"), [
    ("Code: 60. DB::Exception: Unknown table expression identifier 'hean.nope'. Maybe you meant system.one? "
     "In scope SELECT count() FROM hean.nope. (UNKNOWN_TABLE)", "unknown table hean.nope (ClickHouse code 60)"),
    ("Code: 62. DB::Exception: Syntax error: failed at position 7 (1): 1. Expected one of: token sequence, Dot",
     "syntax error at position 7 near '1' (ClickHouse code 62)"),
    ("Code: 164. DB::Exception: Code: 164. DB::Exception: Cannot modify 'readonly' setting in readonly mode. "
     "(READONLY) (version 26.9.2.1). (READONLY)",
     "refused: hean sql only reads (no INSERT, ALTER, DROP, CREATE, SET or file()) (ClickHouse code 164)"),
    ("Code: 999. DB::Exception: Something new\nsecond line. (NEW_THING)",
     "Something new (ClickHouse code 999 NEW_THING)"),
])
def test_clickhouse_errors_become_one_line(text: str, line: str) -> None:
    assert describe(*clickhouse_error(text)) == line


async def test_endpoint_reads_beside_inserts_and_refuses_writes(tmp_path: Path) -> None:
    path = tmp_path / "chdb"
    store_thread = ThreadPoolExecutor(max_workers=1)
    loop = asyncio.get_running_loop()
    store = await loop.run_in_executor(store_thread, ChdbStore, path)
    trades = list(synthetic_trades(2_000, seed=3))
    await loop.run_in_executor(store_thread, store.insert, BY_TABLE["trades"], rows(trades[:1_000], 0))
    server = QueryServer(path, 0, QueryLimits(timeout_seconds=2, max_result_bytes=1 << 20))
    url = await server.start()
    try:
        record = orjson.loads(discovery_path(path).read_bytes())
        assert record["url"] == url and record["store"] == str(path.resolve())
        async with httpx.AsyncClient(timeout=10) as client:
            async def ask(sql: str, fmt: str = "CSV") -> httpx.Response:
                return await client.post(url, params={"format": fmt}, content=sql.encode())

            answer = await ask("SELECT count() FROM hean.trades")
            assert (answer.status_code, answer.text, answer.headers[STORE_HEADER]) == (200, "1000\n",
                                                                                        str(path.resolve()))
            for write in ("INSERT INTO hean.trades (symbol) VALUES ('X')", "DROP TABLE hean.trades",
                          "ALTER TABLE hean.trades DELETE WHERE 1", "SELECT 1; INSERT INTO hean.trades (symbol) "
                          "VALUES ('X')", "SELECT 1 SETTINGS readonly=0", "SET readonly = 0"):
                refused = await ask(write)
                assert refused.status_code == 400 and refused.json()["code"] in (62, 164), (write, refused.text)
            assert (await ask("SELECT count() FROM hean.trades")).text == "1000\n"

            # A query at its time limit runs beside an INSERT on the store thread, not before it.
            slow = asyncio.create_task(ask("SELECT sum(number) FROM numbers(100000000000)"))
            await asyncio.sleep(0.3)
            started = time.monotonic()
            await loop.run_in_executor(store_thread, store.insert, BY_TABLE["trades"], rows(trades[1_000:], 1_000))
            insert_seconds = time.monotonic() - started
            stopped = await slow
            assert stopped.status_code == 400 and stopped.json()["code"] == 159, stopped.text
            assert insert_seconds < 1.0, insert_seconds
            assert (await ask("SELECT count() FROM hean.trades")).text == "2000\n"

            big = await ask("SELECT number FROM numbers(10000000)")
            assert big.status_code in (400, 413) and big.json()["code"] == 396, big.text
    finally:
        await server.stop()
        await loop.run_in_executor(store_thread, store.close)
        store_thread.shutdown()
    assert not discovery_path(path).exists()  # a clean stop leaves no file to find
