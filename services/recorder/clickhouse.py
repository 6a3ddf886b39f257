"""ClickHouse's HTTP interface on the recorder's query endpoint, so stock clients read the live store.

The embedded store can only be read through the recorder that holds it (query.py). `hean sql`
asks `POST /query`; a stock ClickHouse client (clickhouse-connect, `curl`, a SQL IDE's ClickHouse
driver) speaks ClickHouse's HTTP protocol instead, which this module answers on the same port:

    GET|POST /?query=SQL            the SQL in `query`, in the POST body, or both (query + "\\n" + body)
    default_format=F                the output format when the SQL names none (TabSeparated)
    database=D                      the database unqualified tables are in (default: the store's, hean)
    query_id=ID                     echoed in X-ClickHouse-Query-Id (one is made when absent)
    GET /ping, GET / with no query  "Ok.\\n", as a server answers

Answers carry X-ClickHouse-Format, X-ClickHouse-Timezone and X-ClickHouse-Query-Id; a failure is
ClickHouse's own text ("Code: 60. DB::Exception: …") with X-ClickHouse-Exception-Code and the HTTP
status a server gives that code (exceptionCodeToHTTPStatus in ClickHouse's source). Every query
runs on the endpoint's read-only, limited connection: settings a client sends in the URL (other
than the ones above) are not applied, since the connection's `readonly=1` lets no query change a
setting, and the limits (RECORDER_QUERY_*) are the recorder's, not the client's.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

HTTP_STATUS_BY_NAME: dict[str, int] = {
    **dict.fromkeys(("UNKNOWN_USER", "WRONG_PASSWORD", "AUTHENTICATION_FAILED", "SET_NON_GRANTED_ROLE",
                     "ACCESS_DENIED"), 403),
    **dict.fromkeys(("BAD_ARGUMENTS", "CANNOT_COMPILE_REGEXP", "CANNOT_PARSE_TEXT", "CANNOT_PARSE_ESCAPE_SEQUENCE",
                     "CANNOT_PARSE_QUOTED_STRING", "CANNOT_PARSE_DATE", "CANNOT_PARSE_DATETIME",
                     "CANNOT_PARSE_NUMBER", "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING", "CANNOT_PARSE_IPV4",
                     "CANNOT_PARSE_IPV6", "CANNOT_PARSE_INPUT_ASSERTION_FAILED", "CANNOT_PARSE_UUID",
                     "DUPLICATE_COLUMN", "ILLEGAL_COLUMN", "UNKNOWN_ELEMENT_IN_AST", "UNKNOWN_TYPE_OF_AST_NODE",
                     "THERE_IS_NO_COLUMN", "TOO_DEEP_AST", "TOO_BIG_AST", "UNEXPECTED_AST_STRUCTURE",
                     "SYNTAX_ERROR", "INCORRECT_DATA", "TYPE_MISMATCH", "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE"), 400),
    **dict.fromkeys(("UNKNOWN_TABLE", "UNKNOWN_FUNCTION", "UNKNOWN_IDENTIFIER", "UNKNOWN_TYPE", "UNKNOWN_STORAGE",
                     "UNKNOWN_DATABASE", "UNKNOWN_SETTING", "UNKNOWN_DIRECTION_OF_SORTING",
                     "UNKNOWN_AGGREGATE_FUNCTION", "UNKNOWN_FORMAT", "UNKNOWN_DATABASE_ENGINE",
                     "UNKNOWN_TYPE_OF_QUERY", "UNKNOWN_ROLE"), 404),
    "QUERY_IS_TOO_LARGE": 413, "NOT_IMPLEMENTED": 501, "SOCKET_TIMEOUT": 503, "CANNOT_OPEN_FILE": 503,
    "TIMEOUT_EXCEEDED": 408, "CANNOT_SCHEDULE_TASK": 503,
}
_FORMAT = re.compile(r"[A-Za-z0-9]+")
_DATABASE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
DEFAULT_FORMAT = "TabSeparated"  # a server's default for the HTTP interface
DEFAULT_DATABASE = "hean"  # the store's database: unqualified names mean its tables

Runner = Callable[[Callable[..., bytes], str, str], Awaitable[bytes]]


class ClickHouseHttp:
    """Routes a ClickHouse HTTP request onto the endpoint's read-only connection (`run` on its thread)."""

    def __init__(self, in_thread: Callable[..., Awaitable[Any]], run: Callable[[str, str], bytes],
                 errors: Callable[[], tuple[type[Exception], ...]], store: Path, max_result_bytes: int,
                 max_query_bytes: int) -> None:
        self.in_thread, self.run, self.errors = in_thread, run, errors
        self.store = store
        self.max_result_bytes, self.max_query_bytes = max_result_bytes, max_query_bytes

    async def ping(self, _request: web.Request) -> web.Response:
        return web.Response(text="Ok.\n")

    async def handle(self, request: web.Request) -> web.Response:
        query_id = request.query.get("query_id") or str(uuid.uuid4())
        headers = {"X-ClickHouse-Query-Id": query_id, "X-ClickHouse-Timezone": "UTC",
                   "X-ClickHouse-Server-Display-Name": "hean-recorder"}
        sql = request.query.get("query", "")
        if request.method == "POST":
            body = (await request.read()).decode("utf-8", errors="replace")
            sql = f"{sql}\n{body}" if sql and body else sql or body
        if not sql.strip():
            if request.method == "GET" and not request.query:
                return web.Response(text="Ok.\n", headers=headers)
            return _failure(headers, 62, "SYNTAX_ERROR", "Empty query")
        if len(sql.encode()) > self.max_query_bytes:
            return _failure(headers, 202, "QUERY_IS_TOO_LARGE",
                            f"Query is too large ({len(sql.encode())}). max_query_size = {self.max_query_bytes}")
        fmt = request.query.get("default_format", DEFAULT_FORMAT)
        database = request.query.get("database", DEFAULT_DATABASE)
        if not _FORMAT.fullmatch(fmt):
            return _failure(headers, 73, "UNKNOWN_FORMAT", f"Unknown format {fmt}")
        if not _DATABASE.fullmatch(database):
            return _failure(headers, 81, "UNKNOWN_DATABASE", f"Database {database} does not exist")
        from services.recorder.query import clickhouse_error

        try:
            data = await self.in_thread(self.run_in, database, sql, fmt)
        except self.errors() as exc:
            code, name, message = clickhouse_error(str(exc))
            return _failure(headers, code or 1000, name or "UNKNOWN_EXCEPTION", message)
        if len(data) > self.max_result_bytes:
            return _failure(headers, 396, "TOO_MANY_ROWS_OR_BYTES",
                            f"Limit for result exceeded: {len(data)} bytes, maximum {self.max_result_bytes} "
                            "(the recorder's RECORDER_QUERY_MAX_RESULT_BYTES)")
        headers["X-ClickHouse-Format"] = _named_format(sql) or fmt
        return web.Response(body=data, headers=headers, content_type=_content_type(headers["X-ClickHouse-Format"]))

    def run_in(self, database: str, sql: str, fmt: str) -> bytes:
        """`USE database` then the query, on the query thread: the connection keeps the current
        database, so each request sets its own before its query runs."""
        self.run(f"USE {database}", "TabSeparated")
        return self.run(sql, fmt)


def _named_format(sql: str) -> str | None:
    """The FORMAT clause at the end of the SQL, which wins over default_format."""
    match = re.search(r"\bFORMAT\s+([A-Za-z0-9]+)\s*;?\s*$", sql, flags=re.IGNORECASE)
    return match.group(1) if match else None


def _content_type(fmt: str) -> str:
    lowered = fmt.lower()
    if lowered.startswith("json"):
        return "application/json"
    if lowered.startswith(("tabseparated", "tsv", "csv", "pretty", "values", "vertical", "markdown")):
        return "text/plain"
    return "application/octet-stream"


def _failure(headers: dict[str, str], code: int, name: str, message: str) -> web.Response:
    text = f"Code: {code}. DB::Exception: {message.rstrip('.')}. ({name})\n"
    return web.Response(status=HTTP_STATUS_BY_NAME.get(name, 500), text=text,
                        headers={**headers, "X-ClickHouse-Exception-Code": str(code)})
