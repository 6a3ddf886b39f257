"""`hean sql "SELECT …"`: read-only SQL on the market-data store, while the stack runs or not.

Where the answer comes from, in order: a clickhouse:// store is asked directly (the server takes
any number of clients); a chDB store is asked through the running recorder's query endpoint
(services/recorder/query.py) when `<store>.query.json` names one that answers; otherwise the
store is opened here, read-only. Every failure is one line on stderr and exit code 2.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import orjson

from services.recorder.clickhouse import DEFAULT_DATABASE
from services.recorder.query import STORE_HEADER, QueryLimits, clickhouse_error, describe, discovery_path

FORMATS = {"table": "PrettyCompactMonoBlock", "csv": "CSVWithNames", "json": "JSONEachRow", "parquet": "Parquet"}
BINARY = {"Parquet", "Arrow", "ArrowStream", "ORC", "Avro", "Native", "RowBinary", "RowBinaryWithNames",
          "RowBinaryWithNamesAndTypes", "MsgPack", "BSONEachRow", "Npy", "CapnProto", "Protobuf"}
CONNECT_SECONDS = 2.0


class QueryFailed(Exception):
    """A query that produced no result; the message is the one line `hean sql` prints."""


def run_sql(sql: str, store_url: str, fmt: str, output: Path | None, default_path: Path,
            limits: QueryLimits | None = None) -> int:
    """Run `sql` and write its result (bytes exactly as ClickHouse formatted them); 2 on failure."""
    clickhouse_format = FORMATS.get(fmt, fmt)
    binary = clickhouse_format in BINARY
    if binary and output is None and sys.stdout.isatty():
        return _fail(f"{fmt} is binary: give --output FILE (or redirect stdout)")
    try:
        data = fetch(sql, store_url, clickhouse_format, default_path, limits or QueryLimits())
    except QueryFailed as exc:
        return _fail(str(exc))
    if output is not None:
        try:
            output.write_bytes(data)
        except OSError as exc:
            return _fail(f"cannot write {output}: {exc.strerror}")
    else:
        stream: BinaryIO = sys.stdout.buffer
        stream.write(data)
        stream.flush()
    return 0


def _fail(line: str) -> int:
    print(f"hean sql: {line}", file=sys.stderr)
    return 2


def fetch(sql: str, store_url: str, fmt: str, default_path: Path, limits: QueryLimits) -> bytes:
    """The formatted result from whichever of server, recorder or store can answer now."""
    if store_url and not store_url.startswith("chdb://"):
        return _from_server(sql, store_url, fmt, limits)
    path = (Path(store_url[len("chdb://"):]) if store_url[len("chdb://"):] else default_path).resolve()
    stale = ""
    file = discovery_path(path)
    if file.exists():
        answer = _from_recorder(file, path, sql, fmt, limits)
        if answer is not None:
            return answer
        stale = f"the recorder's query file {file} names an endpoint that does not answer"
    data = _from_store(path, sql, fmt, limits, stale)
    if stale:
        file.unlink(missing_ok=True)  # the store opened here, so no recorder holds it: the file was stale
    return data


def _from_recorder(file: Path, path: Path, sql: str, fmt: str, limits: QueryLimits) -> bytes | None:
    """The running recorder's answer, or None when nothing (or not that recorder) answers."""
    import httpx

    try:
        record = orjson.loads(file.read_bytes())
        url, store = str(record["url"]), str(record["store"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # half-written or foreign: as good as no recorder
    if Path(store) != path:
        return None
    timeout = httpx.Timeout(limits.timeout_seconds + 10, connect=CONNECT_SECONDS)
    try:
        response = httpx.post(url, params={"format": fmt}, content=sql.encode(), timeout=timeout)
    except httpx.ConnectError:
        return None
    except httpx.HTTPError as exc:
        raise QueryFailed(f"the recorder at {url} did not answer: {type(exc).__name__} {exc}".rstrip()) from None
    if response.headers.get(STORE_HEADER) != str(path):
        return None  # the port now belongs to something else: the file is stale
    if response.status_code == 200:
        return response.content
    if response.status_code == 413 and not response.headers.get("content-type", "").startswith("application/json"):
        raise QueryFailed(f"query text over the recorder's limit ({len(sql.encode())} bytes)")
    try:
        error = orjson.loads(response.content)
        raise QueryFailed(describe(error["code"], error["name"], error["message"]))
    except (ValueError, KeyError, TypeError):
        raise QueryFailed(f"the recorder answered HTTP {response.status_code}: {response.text[:200]}") from None


def _from_store(path: Path, sql: str, fmt: str, limits: QueryLimits, stale: str) -> bytes:
    """Open the chDB store read-only in this process: possible only when no recorder holds it."""
    import chdb

    from services.recorder.query import readonly_chdb_url

    if not (path / "metadata").is_dir():
        raise QueryFailed(f"no chDB store at {path} yet; run the recorder (hean run recorder) first")
    with _captured_stderr() as captured:  # the engine writes its lock failure straight to fd 2
        try:
            connection = chdb.connect(readonly_chdb_url(path, limits))
        except RuntimeError:
            held = "Cannot lock" in captured.read()
            if stale:
                raise QueryFailed(f"{stale}, and the chDB store {path} is held by another process "
                                  "(a recorder starting or hung?)") from None
            if held:
                raise QueryFailed(f"the chDB store {path} is held by another process without a query "
                                  "endpoint (a recorder with RECORDER_QUERY_PORT=-1, or a script)") from None
            raise QueryFailed(f"cannot open the chDB store {path}") from None
    try:
        with contextlib.suppress(chdb.ChdbError, RuntimeError):  # a store the recorder has not filled yet
            connection.query(f"USE {DEFAULT_DATABASE}")  # `FROM trades` means hean.trades
        return connection.query(sql, fmt).bytes()
    except (chdb.ChdbError, RuntimeError) as exc:
        raise QueryFailed(describe(*clickhouse_error(str(exc)))) from None
    finally:
        connection.close()


class _captured_stderr:
    """Sends fd 2 to a temporary file for the block (C++ writes there, not to sys.stderr)."""

    def __enter__(self) -> Any:
        sys.stderr.flush()
        self.saved = os.dup(2)
        self.file = tempfile.TemporaryFile(mode="w+")
        os.dup2(self.file.fileno(), 2)
        return self

    def read(self) -> str:
        self.file.seek(0)
        return self.file.read()

    def __exit__(self, *exc: object) -> None:
        os.dup2(self.saved, 2)
        os.close(self.saved)
        self.file.close()


def _from_server(sql: str, store_url: str, fmt: str, limits: QueryLimits) -> bytes:
    """A ClickHouse server serves every client itself, so it is asked directly, read-only."""
    import clickhouse_connect
    from clickhouse_connect.driver.exceptions import ClickHouseError, DatabaseError, OperationalError

    driver_log = logging.getLogger("clickhouse_connect")  # it logs what the one line below says
    driver_log.addHandler(logging.NullHandler())
    driver_log.propagate = False
    parts = urlsplit(store_url)
    if parts.scheme not in ("clickhouse", "http"):
        raise QueryFailed(f"--store must be chdb://PATH or clickhouse://user:pass@host:port/db, was {store_url!r}")
    host, port = parts.hostname or "localhost", parts.port or 8123
    settings = {k: v for k, v in limits.settings().items() if k != "max_query_size"}
    try:
        client = clickhouse_connect.get_client(host=host, port=port, username=parts.username or "default",
                                               password=parts.password or "", connect_timeout=CONNECT_SECONDS,
                                               send_receive_timeout=limits.timeout_seconds + 10)
    except OperationalError:
        raise QueryFailed(f"cannot reach the ClickHouse server at {host}:{port}") from None
    except DatabaseError as exc:
        raise QueryFailed(describe(*clickhouse_error(str(exc)))) from None
    try:
        return client.raw_query(sql, fmt=fmt, settings=settings)
    except OperationalError:
        raise QueryFailed(f"lost the ClickHouse server at {host}:{port} during the query") from None
    except ClickHouseError as exc:
        raise QueryFailed(describe(*clickhouse_error(str(exc)))) from None
    finally:
        client.close()
