"""`hean up --binance`: a second ingest reads Binance market data (the simulator's dialect, or
Binance itself beside a real venue), and the live view puts both venues' books side by side."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from services.supervisor.observe import parse
from services.supervisor.stack import BINANCE_STREAM, Stack, StackConfig, plan
from services.supervisor.view import View
from tests.services.venues.test_real_venue import KEY, SECRET


def test_binance_ingest_joins_the_plan_on_the_simulator_and_beside_a_real_venue(tmp_path: Path) -> None:
    services = plan(StackConfig(home=tmp_path, binance=True))
    sim, binance = services["exchange-sim"].child.env, services["ingest-binance"].child.env
    assert sim["EXCHANGE_SIM_BINANCE"] == "true"
    assert binance["INGEST_VENUE"] == "binance"
    assert binance["INGEST_URL"] == f"ws://127.0.0.1:{sim['EXCHANGE_SIM_PORT']}"
    assert "ingest-binance" not in plan(StackConfig(home=tmp_path))
    real = plan(StackConfig(home=tmp_path, binance=True, venue="bybit-testnet",
                            extra_env={"EXECUTION_API_KEY": KEY, "EXECUTION_API_SECRET": SECRET}))
    assert real["ingest-binance"].child.env["INGEST_URL"] == BINANCE_STREAM


async def test_the_view_shows_each_venues_top_of_book_and_the_gap_between_mids(tmp_path: Path) -> None:
    stack = Stack(StackConfig(home=tmp_path, binance=True))  # not started: only its plan and samples are read
    stack.services["ingest"].samples = parse(
        'hean_book_best_bid{service="ingest",venue="bybit",symbol="BTCUSDT"} 100.0\n'
        'hean_book_best_ask{service="ingest",venue="bybit",symbol="BTCUSDT"} 101.0\n')
    stack.services["ingest-binance"].samples = parse(
        'hean_book_best_bid{service="ingest",venue="binance",symbol="BTCUSDT"} 102.0\n'
        'hean_book_best_ask{service="ingest",venue="binance",symbol="BTCUSDT"} 103.0\n')
    table = View().books(stack)
    assert table is not None
    console = Console(width=120, record=True)
    console.print(table)
    text = console.export_text()
    assert "102.00 / 103.00" in text and "100.00 / 101.00" in text and "+2.00" in text
    stack.services["ingest-binance"].samples = parse("")
    assert View().books(stack) is None, "one venue: no side-by-side table"
    await stack.http.aclose()
