"""An independent client: the official pybit SDK subscribes to the simulator over a real socket
and maintains its own orderbook, which must equal the simulator's published book."""

from __future__ import annotations

import asyncio
import threading
import time

import pybit.unified_trading
import pytest

from services.exchange_sim.server import SimConfig, Simulator

pytestmark = pytest.mark.integration


async def test_pybit_keeps_the_same_book(monkeypatch: pytest.MonkeyPatch) -> None:
    sim = Simulator(SimConfig(port=0, rest_port=0, rate=50, symbols=("BTCUSDT",), seed=9))
    port = await sim.start()
    monkeypatch.setattr(pybit.unified_trading, "PUBLIC_WSS", f"ws://127.0.0.1:{port}/v5/public/{{CHANNEL_TYPE}}")
    books: list[dict] = []
    trades: list[dict] = []
    seen = threading.Event()

    def on_book(message: dict) -> None:
        books.append(message)
        if len(books) > 30:
            seen.set()

    ws = await asyncio.to_thread(pybit.unified_trading.WebSocket, testnet=False, channel_type="linear")
    try:
        ws.orderbook_stream(50, "BTCUSDT", on_book)
        ws.trade_stream("BTCUSDT", trades.append)
        assert await asyncio.to_thread(seen.wait, 15), "pybit received no book updates"
        sim.stalled_until = float("inf")  # freeze the market, then let pybit apply what is in flight
        await asyncio.sleep(0.5)
        stream = sim.books[("linear", "BTCUSDT", 50)]
        inst = stream.market.instrument
        theirs = ws.data["orderbook.50.BTCUSDT"]
        ours_bids = [[inst.price_text(p), inst.qty_text(q)] for p, q in sorted(stream.bids.items(), reverse=True)]
        ours_asks = [[inst.price_text(p), inst.qty_text(q)] for p, q in sorted(stream.asks.items())]
        assert theirs["u"] == stream.update_id
        assert sorted(theirs["b"], key=lambda lv: -float(lv[0])) == ours_bids
        assert sorted(theirs["a"], key=lambda lv: float(lv[0])) == ours_asks
        assert trades and trades[0]["topic"] == "publicTrade.BTCUSDT"
    finally:
        await asyncio.to_thread(ws.exit)
        time.sleep(0.1)
        await sim.stop()
