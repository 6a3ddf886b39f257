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
    ("Code: 60. DB::Exception: Unknown table expression identifier 'nope' in scope SELECT * FROM nope. "
     "(UNKNOWN_TABLE)", "unknown table nope (ClickHouse code 60)"),
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


async def test_a_stock_clickhouse_client_reads_the_live_store(tmp_path: Path) -> None:
    """ClickHouse's HTTP interface on the same endpoint: clickhouse-connect (ClickHouse's own Python
    client, Native format) and plain HTTP as curl sends it read the store while the recorder's
    thread inserts; errors are ClickHouse's text, code header and HTTP status; writes are refused."""
    import clickhouse_connect
    from clickhouse_connect.driver.exceptions import DatabaseError

    path = tmp_path / "chdb"
    store_thread = ThreadPoolExecutor(max_workers=1)
    loop = asyncio.get_running_loop()
    store = await loop.run_in_executor(store_thread, ChdbStore, path)
    trades = list(synthetic_trades(2_000, seed=3))
    await loop.run_in_executor(store_thread, store.insert, BY_TABLE["trades"], rows(trades[:1_000], 0))
    server = QueryServer(path, 0, QueryLimits(timeout_seconds=2, max_result_bytes=1 << 20))
    url = await server.start()
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    try:
        client = await loop.run_in_executor(None, lambda: clickhouse_connect.get_client(
            host="127.0.0.1", port=port, database="hean"))
        count = "SELECT symbol, count(), sum(qty) FROM trades GROUP BY symbol ORDER BY symbol"
        first = (await loop.run_in_executor(None, client.query, count)).result_rows
        expected: dict[str, list] = {}
        for t in trades[:1_000]:
            expected.setdefault(t.symbol, [0, 0])[0] += 1
            expected[t.symbol][1] += t.qty
        assert [(s, n, q) for s, n, q in first] == [(s, n, q) for s, (n, q) in sorted(expected.items())]
        await loop.run_in_executor(store_thread, store.insert, BY_TABLE["trades"], rows(trades[1_000:], 1_000))
        assert await loop.run_in_executor(None, client.command, "SELECT count() FROM trades") == 2_000
        for bad, code in (("SELECT * FROM nope", 60), ("INSERT INTO trades (symbol) VALUES ('X')", 164),
                          ("SELEC 1", 62)):
            with pytest.raises(DatabaseError, match=f"code: {code}"):
                await loop.run_in_executor(None, client.query, bad)
        await loop.run_in_executor(None, client.close)

        async with httpx.AsyncClient(base_url=url.removesuffix("/query"), timeout=10) as http:
            assert (await http.get("/ping")).text == "Ok.\n"
            got = await http.get("/", params={"query": "SELECT count() FROM hean.trades"})
            assert (got.status_code, got.text, got.headers["X-ClickHouse-Format"]) == (200, "2000\n", "TabSeparated")
            posted = await http.post("/", params={"database": "hean"},
                                     content=b"SELECT count() AS n FROM trades FORMAT JSONEachRow")
            assert (posted.json(), posted.headers["X-ClickHouse-Format"]) == ({"n": 2000}, "JSONEachRow")
            for params, status, code in (({"query": "SELECT * FROM hean.nope"}, 404, "60"),
                                         ({"query": "SELECT 1 +"}, 400, "62"),
                                         ({"query": "DROP TABLE hean.trades"}, 500, "164"),
                                         ({"query": "SELECT 1", "default_format": "No Such"}, 404, "73"),
                                         ({"query": "SELECT 1", "database": "x; DROP"}, 404, "81")):
                failed = await http.get("/", params=params)
                assert (failed.status_code, failed.headers["X-ClickHouse-Exception-Code"]) == (status, code), params
                assert failed.text.startswith(f"Code: {code}. DB::Exception: "), failed.text
            assert (await http.get("/", params={"query": "SELECT count() FROM hean.trades"})).text == "2000\n"
    finally:
        await server.stop()
        await loop.run_in_executor(store_thread, store.close)
        store_thread.shutdown()
