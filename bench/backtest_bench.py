"""Backtest speed against the reference: HEAN's backtester and NautilusTrader on the same trades.

One synthetic ETHUSDT tape (a seeded random walk on the 0.01 grid, 1 ms apart, sizes on the 0.01
lot) is written once as CSV for Nautilus and built once as HEAN events; each side is timed over
data it already holds (HEAN: `services.backtest.loop.run`, the live strategy, risk, fill model and
accounting cores; Nautilus: `engine.run()`), so the figure is the engine's, not the reader's.

Like for like, as far as the two designs allow: Nautilus's own example (bench/nautilus/ema_cross.py)
trades EMA 10/20 over 250-tick bars, so HEAN's EMA, which steps on every trade, takes periods of
10 x 250 and 20 x 250 trades (the same horizons); both trade 0.10 ETH at market. Nautilus fills on
trades (L1 book, trade_execution); HEAN's fill model walks a recorded book, so HEAN's tape also
holds a top-of-book snapshot every 10 trades (10% more events for HEAN, not counted as ticks).
Ticks/s = trades / seconds on each side; the goal is HEAN >= 2 x Nautilus in the same run.
"""

from __future__ import annotations

import json
import random
import subprocess
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from schemas.events import BookSnapshotReceived, TradeReceived
from services.backtest import loop
from services.backtest.instruments import definition
from services.backtest.setup import build
from services.domain.ids import derive_id

ROOT = Path(__file__).resolve().parents[1]
NAUTILUS_VENV = ROOT / "bench" / ".venv-nautilus"
NAUTILUS_SCRIPT = ROOT / "bench" / "nautilus" / "ema_cross.py"
START_NS = 1_767_225_600_000_000_000
CENT = Decimal("0.01")
BOOK_EVERY = 10


def tape(n: int, seed: int = 3) -> list[tuple[int, int, int, str]]:
    """(ts_ns, price in cents, qty in lots of 0.01, taker side) for n trades."""
    rng = random.Random(seed)
    price, rows = 320_000, []
    for i in range(n):
        price = max(1, price + rng.randint(-3, 3))
        rows.append((START_NS + i * 1_000_000, price, rng.randint(1, 200), "Buy" if rng.random() < 0.5 else "Sell"))
    return rows


def write_csv(rows: list[tuple[int, int, int, str]], path: Path) -> None:
    with path.open("w") as out:
        out.write("timestamp,trade_id,price,quantity,side\n")
        for i, (ts, price, qty, side) in enumerate(rows):
            out.write(f"{ts},{i},{price // 100}.{price % 100:02d},{qty // 100}.{qty % 100:02d},{side.upper()}\n")


def events(rows: list[tuple[int, int, int, str]]) -> list[Any]:
    out: list[Any] = []
    for i, (ts, price, qty, side) in enumerate(rows):
        p = CENT * price
        if i % BOOK_EVERY == 0:
            bid, ask = (p - CENT, Decimal(50)), (p + CENT, Decimal(50))
            out.append(BookSnapshotReceived(id=derive_id("bench-book", i), ts_event=ts, ts_ingest=ts, origin_ts=ts,
                                            symbol="ETHUSDT", depth=1, update_id=i + 1, seq=i + 1, bids=[bid],
                                            asks=[ask], best_bid=bid, best_ask=ask))
        out.append(TradeReceived(id=derive_id("bench-trade", i), ts_event=ts, ts_ingest=ts, origin_ts=ts,
                                 symbol="ETHUSDT", trade_id=str(i), side=side, price=p, qty=CENT * qty))
    return out


def hean(rows: list[tuple[int, int, int, str]]) -> dict[str, float]:
    tape_events = events(rows)
    setup = build("ema", {"ema_fast": "2500", "ema_slow": "5000"}, ["ETHUSDT"])
    instrument = definition("ETHUSDT", START_NS)
    started = time.perf_counter()
    outcome = loop.run(setup, tape_events, instruments=[instrument] if instrument else [])
    seconds = time.perf_counter() - started
    fills = sum(type(e).__name__ in ("OrderFilled", "OrderPartiallyFilled") for e in outcome.of("orders.events"))
    return {"ticks": len(rows), "events": len(tape_events), "seconds": seconds,
            "ticks_per_second": len(rows) / seconds, "fills": fills}


def nautilus(csv: Path) -> dict[str, float] | str:
    python = NAUTILUS_VENV / "bin" / "python"
    if not python.exists():
        return f"not installed: bash bench/nautilus/install.sh creates {NAUTILUS_VENV.relative_to(ROOT)}"
    done = subprocess.run([str(python), str(NAUTILUS_SCRIPT), str(csv)], capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        return f"failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(n: int = 1_000_000) -> dict[str, Any]:
    """Both engines over the same n trades (Nautilus first, so neither runs beside the other)."""
    rows = tape(n)
    figures: dict[str, Any] = {"trades": n}
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "trades.csv"
        write_csv(rows, csv)
        reference = nautilus(csv)
    ours = hean(rows)
    figures.update({f"hean_{k}": v for k, v in ours.items()})
    if isinstance(reference, str):
        figures["nautilus"] = reference
        return figures
    figures.update({f"nautilus_{k}": v for k, v in reference.items()})
    figures["ratio_hean_to_nautilus"] = ours["ticks_per_second"] / reference["ticks_per_second"]
    figures["goal_ratio"] = 2.0
    return figures


if __name__ == "__main__":
    import sys

    print(json.dumps(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000), indent=2))
