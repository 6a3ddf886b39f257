"""Bybit's kline topic and GET /v5/market/kline on the simulator, read by pybit over real sockets:
each candle the stream confirms is the one the trade stream's own trades make, and the one REST
answers for the same start. The venue clock runs 60x (a one-minute candle closes every second)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import orjson
import pybit.unified_trading
import pytest
import websockets

from services.exchange_sim import persist
from services.exchange_sim.klines import BINANCE_SPANS, BYBIT_SPANS, Candles
from services.exchange_sim.server import SimConfig, Simulator

pytestmark = pytest.mark.integration

SPEED = 60.0
KLINE_KEYS = {"start", "end", "interval", "open", "close", "high", "low", "volume", "turnover", "confirm",
              "timestamp"}


def ms(*when: int) -> int:
    return int(datetime(*when, tzinfo=UTC).timestamp() * 1000)  # type: ignore[misc]


def test_weeks_start_on_monday_and_months_on_the_first() -> None:
    thursday = ms(2026, 12, 3, 16, 45)
    week = BYBIT_SPANS["W"]
    assert week.start(thursday) == ms(2026, 11, 30) and week.end(ms(2026, 11, 30)) == ms(2026, 12, 7) - 1
    assert BINANCE_SPANS["1w"].start(ms(2026, 11, 30)) == ms(2026, 11, 30)  # Monday 00:00 is its own week
    month = BYBIT_SPANS["M"]
    assert month.start(thursday) == ms(2026, 12, 1) and month.end(ms(2026, 12, 1)) == ms(2027, 1, 1) - 1
    assert month.end(ms(2027, 2, 1)) == ms(2027, 3, 1) - 1
    assert BYBIT_SPANS["240"].start(thursday) == ms(2026, 12, 3, 16)
    assert BINANCE_SPANS["3d"].start(thursday) % (3 * 86_400_000) == 0


def test_a_candle_counts_each_trade_once_in_every_interval() -> None:
    candles = Candles({"1": BYBIT_SPANS["1"], "5": BYBIT_SPANS["5"]})
    t = ms(2026, 1, 1, 0, 4, 59)
    for at, price, qty, buy in [(t, 100, 2, True), (t + 500, 103, 1, False), (t + 999, 99, 4, True),
                                (t + 1000, 101, 3, False)]:  # the last one opens minute 5 and the next 5m candle
        candles.add(at, price, qty, buy)
    [m4, m5] = candles.series["1"]
    assert (m4.open, m4.high, m4.low, m4.close, m4.volume, m4.turnover) == (100, 103, 99, 99, 7, 200 + 103 + 396)
    assert (m4.buy_volume, m4.trades, m4.end - m4.start) == (6, 3, 59_999)
    assert (m5.start, m5.open, m5.volume) == (t + 1000, 101, 3)
    assert [c.volume for c in candles.series["5"]] == [7, 3]


def test_candles_are_kept_across_a_restart_of_the_venue(tmp_path: Path) -> None:
    config = SimConfig(symbols=("BTCUSDT",), lockstep=True, state_file=str(tmp_path / "venue.state"))
    first = Simulator(config)
    for _ in range(200):
        first.step(["BTCUSDT"])
    persist.save(first, tmp_path / "venue.state")
    kept = first.candles["BTCUSDT"].series["1"]
    assert kept and list(Simulator(config).candles["BTCUSDT"].series["1"]) == list(kept)


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    started, base = time.time(), ms(2026, 1, 1) / 1000 - 0.5  # half a venue second before a minute
    simulator = Simulator(SimConfig(port=0, rest_port=0, rate=50, symbols=("BTCUSDT",), seed=5),
                          clock=lambda: base + (time.time() - started) * SPEED)
    await simulator.start()
    yield simulator
    await simulator.stop()


async def test_pybit_kline_stream_confirms_the_candles_of_the_trade_stream_and_rest(
        sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pybit.unified_trading, "PUBLIC_WSS", f"ws://127.0.0.1:{sim.port}/v5/public/{{CHANNEL_TYPE}}")
    klines: list[dict] = []
    trades: list[dict] = []
    lock = threading.Lock()

    def on_kline(message: dict) -> None:
        with lock:
            klines.append(message)

    def on_trade(message: dict) -> None:
        with lock:
            trades.extend(message["data"])

    ws = await asyncio.to_thread(pybit.unified_trading.WebSocket, testnet=False, channel_type="linear")
    try:
        ws.trade_stream("BTCUSDT", on_trade)
        ws.kline_stream(1, "BTCUSDT", on_kline)
        deadline = time.monotonic() + 10
        while sum(m["data"][0]["confirm"] for m in klines) < 3:  # about 3 s: three candles closed
            assert time.monotonic() < deadline, f"only {len(klines)} kline messages, none or few confirmed"
            await asyncio.sleep(0.1)
        sim.stalled_until = float("inf")  # the market stands still while REST is read
        await asyncio.sleep(0.2)
        http = pybit.unified_trading.HTTP(testnet=False)
        http.endpoint = f"http://127.0.0.1:{sim.rest_port}"
        rest = await asyncio.to_thread(http.get_kline, category="linear", symbol="BTCUSDT", interval="1", limit=10)
    finally:
        await asyncio.to_thread(ws.exit)

    with lock:
        messages, tape = list(klines), list(trades)
    assert all(m["topic"] == "kline.1.BTCUSDT" and m["type"] == "snapshot" and set(m["data"][0]) == KLINE_KEYS
               for m in messages)
    pushed = [m["data"][0] for m in messages]
    assert all(k["end"] == k["start"] + 59_999 and k["start"] % 60_000 == 0 and k["interval"] == "1" for k in pushed)
    confirmed = [k for k in pushed if k["confirm"]]
    assert len({k["start"] for k in confirmed}) == len(confirmed), "a candle is confirmed once"
    assert all(k["timestamp"] > k["end"] for k in confirmed), "confirmed once the venue clock is past its end"
    starts = [k["start"] for k in pushed]
    assert starts == sorted(starts), "candles are pushed in time order"

    by_minute: dict[int, list[dict]] = defaultdict(list)
    for trade in tape:
        by_minute[trade["T"] - trade["T"] % 60_000].append(trade)
    first_seen = min(t["T"] for t in tape)
    rows = {int(r[0]): r for r in rest["result"]["list"]}
    checked = 0
    for candle in confirmed:
        if candle["start"] <= first_seen:
            continue  # the trade stream began inside this candle: not all its trades were seen
        own = by_minute[candle["start"]]
        prices = [Decimal(t["p"]) for t in own]
        expected = [prices[0], max(prices), min(prices), prices[-1], sum(Decimal(t["v"]) for t in own),
                    sum(Decimal(t["p"]) * Decimal(t["v"]) for t in own)]
        fields = [Decimal(candle[k]) for k in ("open", "high", "low", "close", "volume", "turnover")]
        assert fields == expected, f"candle {candle['start']}: stream {fields}, its trades {expected}"
        assert rows[candle["start"]] == [str(candle["start"]), *(candle[k] for k in ("open", "high", "low", "close",
                                                                                    "volume", "turnover"))]
        before = [k for k in pushed if k["start"] == candle["start"] and not k["confirm"]]
        assert before and {**before[-1], "confirm": True, "timestamp": 0} == {**candle, "timestamp": 0}
        checked += 1
    assert checked >= 1, "no candle both began and closed while the trade stream was read"


async def test_kline_topics_by_interval_and_the_refusal_of_others(sim: Simulator) -> None:
    async with websockets.connect(f"ws://127.0.0.1:{sim.port}/v5/public/linear") as ws:
        await asyncio.sleep(0.3)  # let the market trade into today's candle
        await ws.send('{"op": "subscribe", "args": ["kline.2.BTCUSDT"], "req_id": "bad"}')
        refused = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
        assert (refused["success"], refused["ret_msg"]) == (False, "Invalid topic(s): kline.2.BTCUSDT")
        await ws.send('{"op": "subscribe", "args": ["kline.D.BTCUSDT", "kline.M.BTCUSDT"], "req_id": "ok"}')
        assert orjson.loads(await asyncio.wait_for(ws.recv(), 5))["success"] is True
        got: dict[str, dict] = {}
        while len(got) < 2:
            message = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
            got[message["topic"]] = message["data"][0]
    day, month = got["kline.D.BTCUSDT"], got["kline.M.BTCUSDT"]
    assert (day["interval"], day["start"], day["end"]) == ("D", ms(2026, 1, 1), ms(2026, 1, 2) - 1)
    assert (month["interval"], month["start"], month["end"]) == ("M", ms(2026, 1, 1), ms(2026, 2, 1) - 1)
    assert day["confirm"] is False and Decimal(day["volume"]) > 0
