"""Recorded-frame files for the simulator's replay mode, generated from the seeded market.

A file holds one JSON object per line: {"t": ms since start, "category": c, "frame": raw text}.
`hean run ingest` with INGEST_RECORD_FRAMES writes the same format from a live feed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson

from services.exchange_sim.feeds import BookStream, TickerStream, trade_frame
from services.exchange_sim.market import Market


def synthetic_frames(steps: int, symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT", "SOLUSDT"), depth: int = 50,
                     seed: int = 7, step_ms: int = 10) -> Iterator[tuple[int, str]]:
    """(t_ms, frame) of `steps` market steps: book snapshots first, then deltas, trades, tickers."""
    market = Market(seed=seed, levels=max(depth, 50))
    books = {s: BookStream(market.symbols[s], depth) for s in symbols}
    tickers = {s: TickerStream(market.symbols[s]) for s in symbols}
    ts0 = 1_767_225_600_000
    for s in symbols:
        yield 0, books[s].snapshot(ts0, 1).decode()
        yield 0, tickers[s].snapshot(ts0, 1).decode()
    trades = 0
    for i in range(1, steps + 1):
        ts = ts0 + i * step_ms
        for s in symbols:
            m = market.symbols[s]
            fills = m.step()
            frame = books[s].advance(m.top(depth), ts, i)
            if frame is not None:
                yield i * step_ms, frame.decode()
            if fills:
                yield i * step_ms, trade_frame(m, fills, ts, i, trades).decode()
                trades += len(fills)
            ticker = tickers[s].advance(ts, i)
            if ticker is not None:
                yield i * step_ms, ticker.decode()


def write_replay_file(path: Path, steps: int, **kwargs: object) -> int:
    """Write a replay file; returns the number of frames."""
    n = 0
    with path.open("wb") as out:
        for t, frame in synthetic_frames(steps, **kwargs):  # type: ignore[arg-type]
            out.write(orjson.dumps({"t": t, "category": "linear", "frame": frame}) + b"\n")
            n += 1
    return n
