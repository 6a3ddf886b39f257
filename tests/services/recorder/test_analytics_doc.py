"""Every query of docs/ANALYTICS.md (market and trading) on a recorded synthetic trading session,
with its answer checked against what the session is known to contain."""

from __future__ import annotations

import re
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from schemas.events import BookSnapshotReceived
from services.recorder.core import TOPIC_TABLES
from services.recorder.store import ChdbStore
from services.recorder.synthetic import FEE_RATE, NEW_TAKER_FEE, RULES, T0, session

DOC = Path(__file__).resolve().parents[3] / "docs" / "ANALYTICS.md"
STEPS = 1500


def doc_queries() -> dict[str, str]:
    blocks = re.findall(r"```sql(?: trading)?\n(.*?)```", DOC.read_text(), re.S)
    return {b.splitlines()[0].removeprefix("-- ").strip(): b for b in blocks if b.startswith("-- ")}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    store = ChdbStore(tmp_path_factory.mktemp("analytics") / "chdb")
    try:
        for topic, keyed in session(STEPS).items():
            for spec in TOPIC_TABLES[topic]:
                rows = [(*row, topic, 0, offset) for offset, (_, e) in enumerate(keyed) for row in spec.rows(e)]
                store.insert(spec, rows)
        answers = {}
        for name, sql in doc_queries().items():
            text = store.query_text(sql, "JSONEachRow")
            answers[name] = [orjson.loads(line) for line in text.splitlines() if line]
            assert answers[name], name
        return answers
    finally:
        store.close()


def test_every_query_ran(results: dict[str, list[dict[str, Any]]]) -> None:
    assert set(results) == {"vwap_per_minute", "spread_statistics", "trade_flow_imbalance", "latest_ticker",
                            "order_fill_latency", "fill_slippage", "pnl_by_strategy_and_symbol", "rejections_by_rule",
                            "book_at_time", "last_hour_of_candles", "instrument_rules_as_of",
                            "bars_vs_candles"}
    assert all(float(r["low"]) <= r["vwap"] <= float(r["high"]) and int(r["trades"]) > 0
               for r in results["last_hour_of_candles"])


def test_fill_ratio_and_latency(results: dict[str, list[dict[str, Any]]]) -> None:
    rows = results["order_fill_latency"]
    assert any(r["fill_ratio"] == 1 for r in rows) and any(0 < r["fill_ratio"] < 1 for r in rows)  # cancels
    for r in rows:
        assert 0 <= r["fill_ratio"] <= 1 and 0.5 <= r["decision_to_ack_ms"] <= 3, r
        assert r["decision_to_last_fill_ms"] is None or r["decision_to_last_fill_ms"] > r["decision_to_ack_ms"], r


def test_slippage_is_never_negative_for_marketable_fills(results: dict[str, list[dict[str, Any]]]) -> None:
    rows = results["fill_slippage"]
    assert len(rows) == sum(1 for _, e in session(STEPS)["orders.events"] if "fill" in type(e).__name__.lower())
    assert all(0 < r["slippage_bps"] < 50 for r in rows), [r for r in rows if not 0 < r["slippage_bps"] < 50][:3]


def test_pnl_fees_agree_with_accounting(results: dict[str, list[dict[str, Any]]]) -> None:
    last_fees: dict[tuple[str, str], Decimal] = {}
    for _, e in session(STEPS)["accounting.positions"]:
        if type(e).__name__ == "PositionUpdated":
            last_fees[e.account, e.symbol] = e.fees
    accounts = {"ema": "acc1", "meanrev": "acc2"}
    for r in results["pnl_by_strategy_and_symbol"]:
        assert Decimal(r["fees"]) == last_fees[accounts[r["strategy"]], r["symbol"]], r
        assert abs(float(r["fees"]) - r["notional"] * float(FEE_RATE)) < 1e-6 * r["notional"] + 1e-6, r
        assert abs(r["pnl"]) < r["notional"], r


def test_rejections_by_rule(results: dict[str, list[dict[str, Any]]]) -> None:
    rows = results["rejections_by_rule"]
    assert {r["rule"] for r in rows} <= set(RULES) and all(r["example"].startswith(r["rule"]) for r in rows)
    assert 10 < sum(r["percent_of_decisions"] for r in rows) < 30  # the session rejects 20 %


def test_book_at_time_equals_the_folded_book(results: dict[str, list[dict[str, Any]]]) -> None:
    t = T0 + 7_500_000_000
    book: dict[str, dict[Decimal, Decimal]] = defaultdict(dict)
    for _, e in session(STEPS)["md.book"]:
        if e.symbol != "BTCUSDT" or e.ts_event > t:
            continue
        if isinstance(e, BookSnapshotReceived):
            book.clear()
        for side, levels in (("bid", e.bids), ("ask", e.asks)):
            for price, size in levels:
                if size:
                    book[side][price] = size
                else:
                    book[side].pop(price, None)
    rebuilt = {(r["side"], Decimal(r["price"])): Decimal(r["size"]) for r in results["book_at_time"]}
    assert rebuilt == {(side, p): s for side, levels in book.items() for p, s in levels.items()}
    assert len(rebuilt) == 20


def test_instrument_rules_as_of_t(results: dict[str, list[dict[str, Any]]]) -> None:
    """At 5 s, BTCUSDT still has its first version (its fee changes at STEPS // 2, 7.5 s)."""
    rows = {r["symbol"]: r for r in results["instrument_rules_as_of"]}
    assert set(rows) == {"BTCUSDT", "ETHUSDT"}
    assert Decimal(rows["BTCUSDT"]["taker_fee"]) == FEE_RATE != NEW_TAKER_FEE
    assert [Decimal(rows[s]["tick_size"]) for s in ("BTCUSDT", "ETHUSDT")] == [Decimal("0.1"), Decimal("0.01")]
    latest = [e for _, e in session(STEPS)["ref.instruments"] if e.symbol == "BTCUSDT"][-1]
    assert latest.taker_fee == NEW_TAKER_FEE and latest.ts_event > T0 + 5 * 10**9


def test_bars_equal_the_candles(results: dict[str, list[dict[str, Any]]]) -> None:
    rows = results["bars_vs_candles"]
    assert len(rows) == len(session(STEPS)["md.bars"]) > 0
    for r in rows:
        assert r["bar_trades"] == r["candle_trades"] > 0 and r["volume_diff"] == r["close_diff"] == 0, r
        assert abs(r["vwap_diff"]) < 1e-6, r
