"""Read-only SQL on the recorder's chDB store while the recorder runs (`hean sql` asks it here).

chDB's store can be opened by one process only, and the running recorder is that process, so it
answers queries itself: an aiohttp server on loopback, `POST /query?format=F` with the SQL as the
body. Queries run on a second chDB connection opened with `readonly=1` and the limits below in
its connection string (the engine refuses INSERT, ALTER, DROP, CREATE, SET and file() there, and
the query cannot lift them), on a thread of their own: ClickHouse runs them beside the store
thread's INSERTs, which a slow query therefore never holds up. The port and the store path go to
`<store>.query.json` so `hean sql` can find the recorder; a clean stop removes the file.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from services.recorder.clickhouse import DEFAULT_DATABASE, ClickHouseHttp

log = logging.getLogger(__name__)

STORE_HEADER = "X-Hean-Store"  # names the store a response came from: a reused port is not a recorder
MAX_QUERY_BYTES = 256 * 1024  # ClickHouse's own max_query_size default; the HTTP body limit too


@dataclass(frozen=True)
class QueryLimits:
    """What one query may cost: it shares the machine (not the thread) with the inserts."""

    timeout_seconds: float = 30.0
    max_result_bytes: int = 256 * 1024 * 1024

    def settings(self) -> dict[str, str]:
        """The ClickHouse settings that enforce read-only and the limits, for every query."""
        return {"readonly": "1", "max_execution_time": f"{self.timeout_seconds:g}",
                "max_result_bytes": str(self.max_result_bytes), "result_overflow_mode": "throw",
                "max_query_size": str(MAX_QUERY_BYTES), "output_format_json_quote_decimals": "1"}


def readonly_chdb_url(path: Path, limits: QueryLimits) -> str:
    """A chDB connection string whose every query is read-only and limited: settings given at
    connect time cannot be changed by the query (readonly=1 refuses SET and SETTINGS)."""
    return f"{path}?" + "&".join(f"{k}={v}" for k, v in limits.settings().items())


def discovery_path(store: Path) -> Path:
    """Where a recorder serving `store` writes its query endpoint: beside the store directory,
    so recorders of different stores (tests, sessions) never overwrite each other's file."""
    store = store.resolve()
    return store.with_name(store.name + ".query.json")


_CODE = re.compile(r"Code: (\d+)\. (?:DB::Exception: )?")
_NAME = re.compile(r"\s*\(([A-Z][A-Z_0-9]+)\)(?: \(version [^)]*\))?\.?\s*$")


def clickhouse_error(text: str) -> tuple[int | None, str, str]:
    """(code, NAME, message) out of a ClickHouse exception text such as
    "Code: 60. DB::Exception: Unknown table expression identifier 'hean.nope'. Maybe you meant
    system.one? In scope SELECT ... (UNKNOWN_TABLE)". Nested "Code: N." prefixes are dropped."""
    code = None
    while match := _CODE.search(text):
        code, text = int(match.group(1)), text[match.end():]
    name = ""
    text = text.strip()
    while match := _NAME.search(text):  # "(READONLY) (version 26.9). (READONLY)" nests too
        name, text = name or match.group(1), text[:match.start()].rstrip()
    return code, name, text


def describe(code: int | None, name: str, message: str) -> str:
    """One line for a person: what was wrong, then ClickHouse's code for looking it up."""
    first = message.splitlines()[0] if message else "no message"
    if code == 60 and (m := re.search(r"identifier '([^']+)'|Table (\S+) does not exist", first)):
        summary = f"unknown table {(m.group(1) or m.group(2)).strip('`')}"
    elif code == 81 and (m := re.search(r"Database (\S+) does not exist", first)):
        summary = f"unknown database {m.group(1).strip('`')}"
    elif code == 47 and (m := re.search(r"identifier [`']([^`']+)[`']", first)):
        summary = f"unknown column {m.group(1)}"
    elif code == 62 and (m := re.search(r"failed at position (\d+)(?: \((.*?)\))?:", first)):
        summary = f"syntax error at position {m.group(1)}" + (f" near {m.group(2)!r}" if m.group(2) else "")
    elif code == 164:
        summary = "refused: hean sql only reads (no INSERT, ALTER, DROP, CREATE, SET or file())"
    elif code == 159:
        summary = f"query stopped at the time limit: {first}"
    elif code == 396:
        summary = f"result over the size limit: {first}; add a LIMIT or aggregate"
    else:
        summary = first.split(" In scope ")[0]
    if len(summary) > 240:
        summary = summary[:237] + "..."
    label = f"ClickHouse code {code}" + (f" {name}" if name and code not in (60, 81, 47, 62, 164) else "")
    return f"{summary} ({label})" if code is not None else summary


class QueryServer:
    """The recorder's loopback query endpoint over its own read-only chDB connection."""

    def __init__(self, store_path: Path, port: int, limits: QueryLimits) -> None:
        self.store_path = store_path.resolve()
        self.port = port
        self.limits = limits
        self.file = discovery_path(self.store_path)
        # One thread owns the read-only connection: a chDB connection is used by one thread.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="recorder-query")
        self.connection: Any = None
        self._errors: tuple[type[Exception], ...] = (RuntimeError,)
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        """Open the connection, listen, then write the discovery file (last: it promises an answer)."""
        import chdb

        self._errors = (chdb.ChdbError, RuntimeError)  # imported here: `hean sql` needs no chDB to ask
        url = readonly_chdb_url(self.store_path, self.limits)
        self.connection = await self._in_thread(chdb.connect, url)
        app = web.Application(client_max_size=MAX_QUERY_BYTES)
        app.router.add_post("/query", self._handle)
        # ClickHouse's own HTTP interface, so a stock client (clickhouse-connect, curl, a SQL IDE's
        # ClickHouse driver) reads the embedded store while the recorder records: clickhouse.py.
        clickhouse = ClickHouseHttp(self._in_thread, self._run, self._errors_now, self.store_path,
                                    self.limits.max_result_bytes, MAX_QUERY_BYTES)
        for route in ("/", "/query/clickhouse"):
            app.router.add_get(route, clickhouse.handle)
            app.router.add_post(route, clickhouse.handle)
        app.router.add_get("/ping", clickhouse.ping)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}/query"
        record = {"url": self.url, "store": str(self.store_path), "pid": os.getpid()}
        temporary = self.file.with_name(self.file.name + f".{os.getpid()}.tmp")
        temporary.write_bytes(orjson.dumps(record))
        os.replace(temporary, self.file)  # atomic: a reader never sees half a file
        log.info("serving read-only queries", extra={"url": self.url, "file": str(self.file)})
        return self.url

    async def stop(self) -> None:
        """Remove the discovery file first (if it is still ours), so no new client comes."""
        try:
            if orjson.loads(self.file.read_bytes()).get("pid") == os.getpid():
                self.file.unlink()
        except (OSError, ValueError):
            pass  # gone already, or another recorder's: not ours to remove
        if self.runner is not None:
            await self.runner.cleanup()
        if self.connection is not None:
            await self._in_thread(self.connection.close)
        self.executor.shutdown(wait=True)

    def _errors_now(self) -> tuple[type[Exception], ...]:
        return self._errors

    async def _in_thread(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def _run(self, sql: str, fmt: str) -> bytes:
        """One query on the query thread. After a failure the connection is opened afresh: chDB
        runs "A; B" as two statements and, when B fails, hands A's output to the next query."""
        try:
            return self.connection.query(sql, fmt).bytes()
        except self._errors:
            import chdb

            self.connection.close()
            self.connection = chdb.connect(readonly_chdb_url(self.store_path, self.limits))
            raise

    def _run_in_store(self, sql: str, fmt: str) -> bytes:
        """`hean sql`'s query in the store's database, so `FROM trades` means hean.trades (the
        connection is shared with the ClickHouse interface, whose requests choose their own)."""
        self._run(f"USE {DEFAULT_DATABASE}", "TabSeparated")
        return self._run(sql, fmt)

    async def _handle(self, request: web.Request) -> web.Response:
        headers = {STORE_HEADER: str(self.store_path)}
        fmt = request.query.get("format", "PrettyCompactMonoBlock")
        if not re.fullmatch(r"[A-Za-z0-9]+", fmt):
            return _error(400, headers, None, "", f"not a ClickHouse format name: {fmt!r}")
        sql = (await request.read()).decode("utf-8", errors="replace")
        try:
            data = await self._in_thread(self._run_in_store, sql, fmt)
        except self._errors as exc:  # ClickHouse's text: the client's answer, not ours
            code, name, message = clickhouse_error(str(exc))
            return _error(400, headers, code, name, message)
        if len(data) > self.limits.max_result_bytes:
            return _error(413, headers, 396, "TOO_MANY_ROWS_OR_BYTES",
                          f"the formatted result is {len(data)} bytes, over {self.limits.max_result_bytes} "
                          "(RECORDER_QUERY_MAX_RESULT_BYTES)")
        return web.Response(body=data, headers=headers, content_type="application/octet-stream")


def _error(status: int, headers: dict[str, str], code: int | None, name: str, message: str) -> web.Response:
    body = orjson.dumps({"code": code, "name": name, "message": message})
    return web.Response(status=status, body=body, headers=headers, content_type="application/json")
