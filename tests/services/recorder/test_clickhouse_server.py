"""The ClickHouse-server backend (clickhouse-connect) on a real server in a container.

Runs where a Docker engine answers (testcontainers); skipped elsewhere with the reason. The same
DDL and the same rows as the chDB tests: exact decimals, NULLs, and the resume offsets.
"""

from __future__ import annotations

import shutil
import subprocess
from decimal import Decimal

import pytest

from schemas.events import TickerUpdated, TradeReceived
from services.recorder.core import BY_TABLE, ticker_row, trade_row
from services.recorder.store import ClickHouseStore, max_offsets
from tests.samples import SAMPLES


def docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0


pytestmark = pytest.mark.skipif(not docker_available(), reason="no Docker engine on this machine: the ClickHouse "
                                "server backend is tested here only where testcontainers can start a container")


def test_same_ddl_and_rows_on_a_clickhouse_server() -> None:
    from testcontainers.community.clickhouse import ClickHouseContainer

    with ClickHouseContainer("clickhouse/clickhouse-server:24.8") as server:
        store = ClickHouseStore(server.get_container_host_ip(), int(server.get_exposed_port(8123)),
                                server.username, server.password)
        try:
            trade = SAMPLES[TradeReceived]
            store.insert(BY_TABLE["trades"], [(*trade_row(trade), "md.trades", 3, 41),
                                              (*trade_row(trade), "md.trades", 3, 42)])
            store.insert(BY_TABLE["tickers"], [(*ticker_row(SAMPLES[TickerUpdated]), "md.tickers", 0, 7)])
            [[count, price]] = store.query("SELECT count(), toString(any(price)) FROM hean.trades")
            assert count == 2 and Decimal(price) == trade.price
            assert max_offsets(store, BY_TABLE["trades"], "md.trades") == {3: 42}
            [[mark, index]] = store.query("SELECT mark_price, index_price FROM hean.tickers")
            assert Decimal(mark) == Decimal("66666.60") and index is None
        finally:
            store.close()


def test_hean_sql_reads_a_clickhouse_server_and_refuses_writes() -> None:
    """`hean sql --store clickhouse://…` (the real CLI) on a server the recorder filled: formats
    parse back, writes are refused by readonly=1, and failures are one line with exit code 2."""
    import csv
    import io
    import os
    import sys

    import orjson
    from testcontainers.community.clickhouse import ClickHouseContainer

    with ClickHouseContainer("clickhouse/clickhouse-server:24.8") as server:
        host, port = server.get_container_host_ip(), int(server.get_exposed_port(8123))
        store = ClickHouseStore(host, port, server.username, server.password)
        trade = SAMPLES[TradeReceived]
        try:
            store.insert(BY_TABLE["trades"], [(*trade_row(trade), "md.trades", 0, i) for i in range(3)])
        finally:
            store.close()
        url = f"clickhouse://{server.username}:{server.password}@{host}:{port}/hean"

        def hean_sql(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "services.cli.main", "sql", *args, "--store", url],
                                  env=os.environ, capture_output=True, text=True, timeout=60)

        by_csv = list(csv.DictReader(io.StringIO(hean_sql("SELECT price FROM hean.trades", "--format", "csv").stdout)))
        by_json = [orjson.loads(line) for line in hean_sql("SELECT price FROM hean.trades", "--format",
                                                           "json").stdout.splitlines()]
        assert [Decimal(r["price"]) for r in by_csv] == [Decimal(r["price"]) for r in by_json] == [trade.price] * 3
        for sql, words in (("DROP TABLE hean.trades", "code 164"), ("SELECT * FROM hean.nope", "unknown table"),
                           ("SELEC 1", "syntax error")):
            failed = hean_sql(sql)
            assert failed.returncode == 2 and failed.stderr.count("\n") == 1 and words in failed.stderr, failed.stderr
        assert hean_sql("SELECT count() FROM hean.trades", "--format", "TSV").stdout == "3\n"
