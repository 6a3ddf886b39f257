"""hean backtest on a real chDB store: the store gives back the recorded events, a run prints its
table and stores itself, a grid ranks its runs, and every bad input is one line with exit 2."""

from __future__ import annotations

from pathlib import Path

import msgspec
import orjson
import pytest

from schemas.events import BookDeltaReceived, BookSnapshotReceived
from services.backtest.sources import Query, from_store
from services.cli.main import main
from services.recorder.core import BY_TABLE
from services.recorder.store import ChdbStore
from services.recorder.synthetic import T0, session

SYMBOLS = ("BTCUSDT", "ETHUSDT")
FROM, TO = str(T0 // 10**6), str(T0 // 10**6 + 3_600_000)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    """A chDB store holding a synthetic session's md topics, as the recorder writes them."""
    path = tmp_path_factory.mktemp("backtest") / "chdb"
    events = session(200)
    store = ChdbStore(path)
    try:
        for topic, tables in (("md.trades", ("trades",)), ("md.book", ("book_top", "book_levels")),
                              ("md.tickers", ("tickers",))):
            for table in tables:
                spec = BY_TABLE[table]
                rows = [(*row, topic, 0, offset) for offset, (_, e) in enumerate(events[topic]) for row in spec.rows(e)]
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
