"""hean backtest on a real chDB store: the store gives back the recorded events, a run prints its
table and stores itself, a grid ranks its runs, and every bad input is one line with exit 2."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import msgspec
import orjson
import pytest

from schemas.events import BookDeltaReceived, BookSnapshotReceived, TradeReceived
from services.backtest.sources import Query, from_store
from services.cli.main import main
from services.cli.sql import fetch
from services.recorder.core import BY_TABLE
from services.recorder.query import QueryLimits
from services.recorder.store import ChdbStore
from services.recorder.synthetic import T0, session

SYMBOLS = ("BTCUSDT", "ETHUSDT")
FROM, TO = str(T0 // 10**6), str(T0 // 10**6 + 3_600_000)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    """A chDB store holding a synthetic session's md topics, as the recorder writes them, and the
    same market again as another venue's (a `hean up --binance` session records both): a backtest
    trades one venue and must read only its events."""
    path = tmp_path_factory.mktemp("backtest") / "chdb"
    events = session(200)
    store = ChdbStore(path)
    try:
        for topic, tables in (("md.trades", ("trades",)), ("md.book", ("book_top", "book_levels")),
                              ("md.tickers", ("tickers",))):
            binance = [msgspec.structs.replace(e, venue="binance", id=f"{e.id}-binance") for _, e in events[topic]]
            both = [e for _, e in events[topic]] + binance
            for table in tables:
                spec = BY_TABLE[table]
                rows = [(*row, topic, 0, offset) for offset, e in enumerate(both) for row in spec.rows(e)]
                store.insert(spec, rows)
    finally:
        store.close()
    md = [e for topic in ("md.book", "md.trades", "md.tickers") for _, e in events[topic]]
    return path, md


def test_the_store_gives_back_the_recorded_events_in_ingest_order(recorded: tuple[Path, list]) -> None:
    path, md = recorded
    recorded = from_store(f"chdb://{path}", path, Query(SYMBOLS, 0, 2**62, ""))
    assert [d.symbol for d in recorded.instruments] == list(SYMBOLS)  # not recorded: from instrument_rules
    back = recorded.events
    expected = sorted(md, key=lambda e: e.ts_ingest)
    unrecorded = {"origin_ts": None, "seq": 0}  # not in the tables (sources.py)
    assert len(back) == len(expected)
    for got, want in zip(back, expected, strict=True):
        fields = {"origin_ts": got.ts_ingest, **({"seq": 0} if isinstance(want, BookSnapshotReceived |
                                                                             BookDeltaReceived) else {})}
        assert got == msgspec.structs.replace(want, **fields), (got, want, unrecorded)


def test_the_store_gives_back_the_recorded_rules_of_the_traded_venue(tmp_path: Path) -> None:
    """Rules recorded from ref.instruments are the backtest's, every version in time order and only
    the traded venue's; a symbol with none recorded takes the built-in table's."""
    defined = [e for _, e in session(200)["ref.instruments"] if e.symbol == "BTCUSDT"]
    assert len(defined) == 2 and defined[0].taker_fee != defined[1].taker_fee  # the session's mid-run change
    binance = msgspec.structs.replace(defined[0], venue="binance", id="binance-rules", tick_size=Decimal("1"))
    spec = BY_TABLE["instruments"]
    store = ChdbStore(tmp_path / "chdb")
    try:
        store.insert(spec, [(*row, "ref.instruments", 0, offset)
                            for offset, e in enumerate([*defined, binance]) for row in spec.rows(e)])
    finally:
        store.close()
    got = from_store(f"chdb://{tmp_path / 'chdb'}", tmp_path / "chdb", Query(SYMBOLS, 0, 2**62, "")).instruments
    assert got[:2] == defined, "the recorded versions, exact, in time order"
    assert [(d.venue, d.symbol) for d in got[2:]] == [("bybit", "ETHUSDT")]  # none recorded: the table's


def test_a_run_prints_its_figures_and_writes_its_report(recorded: tuple[Path, list], tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = recorded
    args = ["backtest", "--strategy", "ema", "--param", "ema_fast=3", "--param", "ema_slow=8", "--symbols",
            ",".join(SYMBOLS), "--from", FROM, "--to", TO, "--store", f"chdb://{path}", "--topic-prefix", "",
            "--out", str(tmp_path), "--no-store", "--json"]
    assert main(args) == 0
    out = capsys.readouterr().out
    printed = orjson.loads(out.strip().splitlines()[-1])
    assert printed["intents"] > 0 and printed["trades"] > 0 and printed["fees"] != "0"
    assert (tmp_path / "report.html").exists() and (tmp_path / "report.png").exists()


def test_a_twap_over_the_recorded_data_reports_sane_figures(recorded: tuple[Path, list], tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """`--algo` on recorded data: the parent's report (printed and stored) is the algos core's, and its
    figures agree with the market it traded in and with each other."""
    path, md = recorded
    start = T0 + 200_000_000  # 0.2 s in: the TWAP's 4 slots fall within the 2 s of data
    args = ["backtest", "--strategy", "none", "--symbols", "BTCUSDT", "--from", FROM, "--to", TO,
            "--store", f"chdb://{path}", "--topic-prefix", "", "--out", str(tmp_path), "--json",
            "--algo", f"twap:side=Buy,qty=0.02,duration=1,slices=4,start={start // 10**6}"]
    assert main(args) == 0
    printed = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
    [row] = printed["algos"]
    assert row["status"] == "completed" and row["children"] >= 4 and Decimal(row["filled"]) == Decimal("0.02"), row
    assert printed["trades"] >= row["children"] and Decimal(printed["fees"]) == Decimal(row["fees"])  # its only trades
    end = T0 + 1_300_000_000  # past the last slot (start + 1 s) and its step
    window = [e for e in md if e.symbol == "BTCUSDT" and start <= e.ts_event <= end]
    prices = [e.price for e in window if isinstance(e, TradeReceived)]
    asks = [p for e in window if isinstance(e, BookSnapshotReceived | BookDeltaReceived) for p, _ in e.asks]
    avg, arrival, vwap = Decimal(row["avg_fill"]), Decimal(row["arrival"]), Decimal(row["market_vwap"])
    assert min(asks) <= avg <= max(asks), (avg, min(asks), max(asks))  # a buy takes the asks
    assert min(prices) <= vwap <= max(prices)
    fees, shortfall = Decimal(row["fees"]), Decimal(row["shortfall"])
    assert fees > 0
    # All filled, so no opportunity cost: what the buys paid over the arrival mid, plus fees.
    assert abs(shortfall - ((avg - arrival) * Decimal("0.02") + fees)) < Decimal("1e-6")
    assert (shortfall > fees) == (avg > arrival)

    # Stored: backtest_algo_reports holds every report of the run, as algo_reports does live.
    answer = fetch(f"SELECT type, status, children, filled_qty, shortfall FROM hean.backtest_algo_reports FINAL "
                   f"WHERE run_id = '{printed['run_id']}' ORDER BY ts_event, type = 'algo.completed'", f"chdb://{path}",
                   "JSONEachRow", tmp_path, QueryLimits())
    stored = [orjson.loads(line) for line in answer.splitlines() if line]
    assert [r["type"] for r in stored] == ["algo.progress"] * row["children"] + ["algo.completed"], stored
    assert stored[-1]["status"] == "completed" and Decimal(stored[-1]["shortfall"]) == shortfall


def test_a_grid_ranks_its_runs(recorded: tuple[Path, list], capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = recorded
    args = ["backtest", "--strategy", "ema", "--symbols", "BTCUSDT", "--from", FROM, "--to", TO, "--store",
            f"chdb://{path}", "--topic-prefix", "", "--grid", "ema_fast=2,4", "--param", "ema_slow=8",
            "--no-store", "--workers", "2"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "ranked by sharpe" in out and out.count("│") > 0


@pytest.mark.parametrize(("extra", "message"), [
    (["--strategy", "nope"], "unknown strategy 'nope'"),
    (["--param", "no_such=1"], "unknown parameter 'no_such'"),
    (["--param", "ema_fast=x"], "bad parameter value"),
    (["--from", TO, "--to", FROM], "--from must be before --to"),
    (["--from", "2020-01-01", "--to", "2020-01-02"], "no market data"),
    (["--grid", "ema_fast"], "--grid takes NAME=A,B,C"),
    (["--store", "clickhouse://default:@127.0.0.1:1/hean"], "127.0.0.1"),
    (["--from", "yesterday"], "expected ms since the epoch or ISO 8601"),
    (["--algo", "nope:side=Buy,qty=1"], "invalid choice: 'nope'"),
    (["--algo", "twap:side=Buy,qty=1,duration=60"], "--slices is required"),
    (["--algo", "twap:side=Buy,qty=x,duration=60,slices=4"], "--qty must be a decimal number"),
    (["--algo", "twap:side=Up,qty=1,duration=60,slices=4"], "--side must be Buy or Sell"),
    (["--algo", "twap:colour=red"], "unknown parameter 'colour'"),
    (["--algo", "iceberg:side=Buy,qty=1,price=100,display=2"], "--display 2 is more than --qty 1"),
    (["--algo", "twap:side=Buy,qty=1,duration=60,slices=4,start=2020-01-01"], "start must lie in [--from, --to)"),
    (["--algo", "twap:side=Buy,qty=1,duration=60,slices=4,symbol=ETHUSDT"], "ETHUSDT is not among --symbols"),
    (["--param", "algos_slippage=2"], "ALGOS_SLIPPAGE must be a fraction"),
])
def test_bad_input_is_one_line_and_exit_2(recorded: tuple[Path, list], extra: list[str], message: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = recorded
    base = {"--strategy": "ema", "--symbols": "BTCUSDT", "--from": FROM, "--to": TO, "--store": f"chdb://{path}",
            "--topic-prefix": ""}
    for i in range(0, len(extra), 2):
        if extra[i] in base:
            base[extra[i]] = extra[i + 1]
    args = ["backtest", *(x for kv in base.items() for x in kv), "--no-store",
            *(x for i in range(0, len(extra), 2) if extra[i] not in base for x in extra[i:i + 2])]
    try:
        code = main(args)
    except SystemExit as exit_:  # argparse's own refusals
        code = exit_.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and message in err, err
