"""The Binance dialect's market data REST, read with binance-futures-connector (UMFutures) and
httpx: klines, the 24 h ticker, recent trades, price and book tickers, premiumIndex and funding
history are what the dialect's aggTrade and bookTicker streams printed, and a bad request gets
Binance's error JSON and HTTP 400, never a 500. The venue clock runs 60x, so minute candles close
every second."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import orjson
import pytest
import websockets
from binance.error import ClientError
from binance.um_futures import UMFutures

from services.exchange_sim.server import STOP_GRACE_S, SimConfig, Simulator

pytestmark = pytest.mark.integration

START_MS = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)
KLINE_KEYS = ("open", "high", "low", "close", "volume", "quote", "count", "buy_volume", "buy_quote")


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    started = time.time()
    simulator = Simulator(SimConfig(port=0, rest_port=0, rate=50, symbols=("BTCUSDT", "ETHUSDT"), seed=4,
                                    binance=True),
                          clock=lambda: START_MS / 1000 + (time.time() - started) * 60)
    await simulator.start()
    yield simulator
    await simulator.stop()


def own_candles(aggs: list[dict]) -> dict[int, dict[str, Decimal]]:
    """Minute candles made here from aggregate trades: the figures /fapi/v1/klines must give."""
    candles: dict[int, dict[str, Decimal]] = {}
    for agg in aggs:
        price, qty, start = Decimal(agg["p"]), Decimal(agg["q"]), agg["T"] - agg["T"] % 60_000
        c = candles.setdefault(start, {"open": price, "high": price, "low": price, **dict.fromkeys(
            ("volume", "quote", "count", "buy_volume", "buy_quote"), Decimal(0))})
        c["high"], c["low"], c["close"] = max(c["high"], price), min(c["low"], price), price
        c["volume"] += qty
        c["quote"] += price * qty
        c["count"] += agg["l"] - agg["f"] + 1
        if not agg["m"]:  # the buyer took: a taker buy
            c["buy_volume"] += qty
            c["buy_quote"] += price * qty
    return candles


async def test_market_reads_agree_with_what_the_streams_printed(sim: Simulator) -> None:
    streamed: dict[str, list[dict]] = defaultdict(list)
    async with websockets.connect(f"ws://127.0.0.1:{sim.port}/market/stream?streams=btcusdt@aggTrade") as trades, \
            websockets.connect(f"ws://127.0.0.1:{sim.port}/public/stream?streams=btcusdt@bookTicker") as tops:

        async def read(ws: websockets.ClientConnection, until: float) -> None:
            while time.monotonic() < until:
                try:
                    message = orjson.loads(await asyncio.wait_for(ws.recv(), max(0.01, until - time.monotonic())))
                except TimeoutError:
                    return
                streamed[message["stream"]].append(message["data"])

        deadline = time.monotonic() + 2.5  # 150 venue seconds: two minute candles at least close
        await asyncio.gather(read(trades, deadline), read(tops, deadline))
        sim.stalled_until = float("inf")  # the market stands still while REST is read

        async def drain(ws: websockets.ClientConnection) -> None:  # what was sent before the stall
            while True:
                try:
                    message = orjson.loads(await asyncio.wait_for(ws.recv(), 0.3))
                except TimeoutError:
                    return
                streamed[message["stream"]].append(message["data"])

        await asyncio.gather(drain(trades), drain(tops))
    aggs, tops = streamed["btcusdt@aggTrade"], streamed["btcusdt@bookTicker"]
    assert [a["a"] for a in aggs] == list(range(aggs[0]["a"], aggs[-1]["a"] + 1)), "no aggregate missed"
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{sim.port}") as plain:
        if aggs[0]["a"] > 1:  # printed before the stream was connected: the venue's record of them
            early = await plain.get("/fapi/v1/aggTrades", params={"symbol": "BTCUSDT", "fromId": 1,
                                                                  "limit": aggs[0]["a"] - 1})
            aggs[:0] = [{"e": "aggTrade", **row} for row in early.json()]
        assert aggs[0]["a"] == 1 and len(aggs) == aggs[-1]["a"]
        for _ in range(2):
            (await plain.get("/sim/funding")).raise_for_status()
            await asyncio.sleep(0.05)

    client = UMFutures(base_url=f"http://127.0.0.1:{sim.rest_port}")

    def reads() -> dict[str, object]:
        return {"klines": client.klines("BTCUSDT", "1m", limit=1500), "day": client.ticker_24hr_price_change("BTCUSDT"),
                "all_days": client.ticker_24hr_price_change(), "trades": client.trades("BTCUSDT", limit=60),
                "price": client.ticker_price("BTCUSDT"), "book": client.book_ticker("BTCUSDT"),
                "premium": client.mark_price("BTCUSDT"), "depth": client.depth("BTCUSDT", limit=5),
                "funding": client.funding_rate("BTCUSDT"), "newest_funding": client.funding_rate("BTCUSDT", limit=1),
                "continuous": client.continuous_klines("BTCUSDT", "PERPETUAL", "1m", limit=1500),
                "quarterly": client.continuous_klines("BTCUSDT", "CURRENT_QUARTER", "1m"),
                "three_minutes": client.klines("BTCUSDT", "3m"), "time": client.time()}

    got = await asyncio.to_thread(reads)

    klines = got["klines"]
    assert isinstance(klines, list) and len(klines) >= 3
    ours = own_candles(aggs)
    assert [k[0] for k in klines] == sorted(ours), "one candle per minute that traded, oldest first"
    for row in klines:
        assert len(row) == 12 and row[6] == row[0] + 59_999 and row[11] == "0"
        theirs = dict(zip(KLINE_KEYS, [Decimal(v) for v in (*row[1:6], row[7], row[8], row[9], row[10])],
                          strict=True))
        assert theirs == ours[row[0]], f"kline {row[0]}"
    assert got["continuous"] == klines and got["quarterly"] == []
    three = got["three_minutes"]
    assert isinstance(three, list) and sum(Decimal(r[5]) for r in three) == sum(Decimal(a["q"]) for a in aggs)

    day = got["day"]
    assert isinstance(day, dict) and day["openTime"] % 60_000 == 0
    window = [a for a in aggs if a["T"] >= day["openTime"]]
    assert window == aggs, "a 24 h window holds every trade of a run this short"
    assert Decimal(day["volume"]) == sum(Decimal(a["q"]) for a in aggs)
    assert Decimal(day["quoteVolume"]) == sum(Decimal(a["q"]) * Decimal(a["p"]) for a in aggs)
    assert (day["firstId"], day["lastId"], day["count"]) == (aggs[0]["f"], aggs[-1]["l"],
                                                            aggs[-1]["l"] - aggs[0]["f"] + 1)
    assert (day["openPrice"], day["lastPrice"], day["closeTime"]) == (aggs[0]["p"], aggs[-1]["p"], aggs[-1]["T"])
    assert day["highPrice"] == max(aggs, key=lambda a: Decimal(a["p"]))["p"]
    assert Decimal(day["priceChange"]) == Decimal(aggs[-1]["p"]) - Decimal(aggs[0]["p"])
    assert [d["symbol"] for d in got["all_days"]] == ["BTCUSDT", "ETHUSDT"]  # type: ignore[union-attr]

    trades = got["trades"]
    assert isinstance(trades, list) and len(trades) == 60
    assert [t["id"] for t in trades] == list(range(aggs[-1]["l"] - 59, aggs[-1]["l"] + 1))
    by_agg = {a["a"]: a for a in aggs}
    for agg in (a for a in by_agg.values() if a["f"] >= trades[0]["id"]):
        inside = [t for t in trades if agg["f"] <= t["id"] <= agg["l"]]
        assert sum(Decimal(t["qty"]) for t in inside) == Decimal(agg["q"]), "an aggregate's trades make its qty"
        assert all(Decimal(t["qty"]) > 0 and t["price"] == agg["p"] and t["time"] == agg["T"]
                   and t["isBuyerMaker"] == agg["m"] for t in inside)
    assert got["day"]["lastQty"] == trades[-1]["qty"]  # type: ignore[index]

    assert got["price"] == {"symbol": "BTCUSDT", "price": aggs[-1]["p"], "time": aggs[-1]["T"]}
    last_top = tops[-1]
    assert got["book"] == {"symbol": "BTCUSDT", "bidPrice": last_top["b"], "bidQty": last_top["B"],
                           "askPrice": last_top["a"], "askQty": last_top["A"], "time": last_top["E"],
                           "lastUpdateId": last_top["u"]}
    depth, premium = got["depth"], got["premium"]
    assert isinstance(depth, dict) and isinstance(premium, dict)
    mid = (Decimal(depth["bids"][0][0]) + Decimal(depth["asks"][0][0])) / 2
    assert Decimal(premium["markPrice"]) == mid == Decimal(premium["indexPrice"])
    assert premium["lastFundingRate"] == "0.00010000" and premium["nextFundingTime"] % 28_800_000 == 0

    funding = got["funding"]
    assert isinstance(funding, list) and len(funding) == 2
    assert [f["fundingTime"] for f in funding] == sorted(f["fundingTime"] for f in funding)
    assert all(f["fundingRate"] == "0.00010000" and Decimal(f["markPrice"]) == mid for f in funding)
    assert got["newest_funding"] == funding[-1:]
    assert got["time"]["serverTime"] >= aggs[-1]["T"]  # type: ignore[index]


BAD = [
    ("/fapi/v1/klines", {"interval": "1m"}, -1102), ("/fapi/v1/klines", {"symbol": "BTCUSDT"}, -1102),
    ("/fapi/v1/klines", {"symbol": "DOGEUSDT", "interval": "1m"}, -1121),
    ("/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "2m"}, -1120),
    ("/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": "1501"}, -1130),
    ("/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": "0"}, -1130),
    ("/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1m", "startTime": "9", "endTime": "8"}, -1023),
    ("/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1m", "startTime": "²"}, -1100),
    ("/fapi/v1/continuousKlines", {"pair": "BTCUSDT", "contractType": "SOMETIME", "interval": "1m"}, -1130),
    ("/fapi/v1/continuousKlines", {"pair": "BTCUSDT", "interval": "1m"}, -1102),
    ("/fapi/v1/continuousKlines", {"symbol": "BTCUSDT", "contractType": "PERPETUAL", "interval": "1m"}, -1102),
    ("/fapi/v1/trades", {}, -1102), ("/fapi/v1/trades", {"symbol": "BTCUSDT", "limit": "1001"}, -1130),
    ("/fapi/v1/trades", {"symbol": "BTCUSDT", "limit": "-1"}, -1100),
    ("/fapi/v1/ticker/24hr", {"symbol": "btcusdt"}, -1121), ("/fapi/v1/ticker/price", {"symbol": "-"}, -1121),
    ("/fapi/v2/ticker/price", {"symbol": "DOGEUSDT"}, -1121),
    ("/fapi/v1/ticker/bookTicker", {"symbol": "DOGEUSDT"}, -1121),
    ("/fapi/v1/premiumIndex", {"symbol": "DOGEUSDT"}, -1121), ("/fapi/v1/fundingRate", {"symbol": "X"}, -1121),
    ("/fapi/v1/fundingRate", {"limit": "1001"}, -1130),
    ("/fapi/v1/fundingRate", {"startTime": "2", "endTime": "1"}, -1023),
    ("/fapi/v1/depth", {"symbol": "BTCUSDT", "limit": "²"}, -1130),
    ("/fapi/v1/depth", {"symbol": "BTCUSDT", "limit": "1" * 5000}, -1130),  # past Python's int-digit limit
    ("/fapi/v1/aggTrades", {"symbol": "BTCUSDT", "fromId": "9999999999999999999"}, -1100),  # past int64
    ("/fapi/v1/aggTrades", {"symbol": "BTCUSDT", "startTime": "9223372036854775808"}, -1100),
]


async def test_bad_requests_get_binance_errors_never_a_500(sim: Simulator) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{sim.rest_port}") as http:
        for path, params, code in BAD:
            response = await http.get(path, params=params)
            assert (response.status_code, response.json()["code"]) == (400, code), (path, params, response.text)
            assert response.json()["msg"]
        unknown = await http.get("/fapi/v1/markPriceKlines", params={"symbol": "BTCUSDT", "interval": "1m"})
        assert (unknown.status_code, unknown.json()["code"]) == (404, -5000)
    paths = ["/fapi/v1/klines", "/fapi/v1/continuousKlines", "/fapi/v1/trades", "/fapi/v1/ticker/24hr",
             "/fapi/v1/ticker/price", "/fapi/v2/ticker/price", "/fapi/v1/ticker/bookTicker",
             "/fapi/v1/premiumIndex", "/fapi/v1/fundingRate", "/fapi/v1/aggTrades", "/fapi/v1/depth"]
    values = ["", "BTCUSDT", "1m", "PERPETUAL", "0", "99999999999999999999999", "-5", "1e3", "٣", "%00", "x" * 300]
    names = ["symbol", "pair", "interval", "contractType", "limit", "startTime", "endTime", "fromId"]
    assert sim.binance is not None
    for path, name, value in itertools.product(paths, names, values):  # the handlers themselves: fast
        result = sim.binance.rest(path, {"symbol": "BTCUSDT", "interval": "1m", name: value})
        assert result.status in (200, 400), (path, name, value, result.status)
        assert result.status == 200 or set(result.body) == {"code", "msg"}, (path, name, value)

    client = UMFutures(base_url=f"http://127.0.0.1:{sim.rest_port}")
    for call, code in [(lambda: client.klines("DOGEUSDT", "1m"), -1121),
                       (lambda: client.klines("BTCUSDT", "7m"), -1120),
                       (lambda: client.trades("BTCUSDT", limit=5000), -1130)]:
        with pytest.raises(ClientError) as refused:
            await asyncio.to_thread(call)
        assert (refused.value.status_code, refused.value.error_code) == (400, code)


async def test_a_stock_client_kline_stream_closes_the_candles_klines_answers(sim: Simulator) -> None:
    """binance-futures-connector's UMFuturesWebsocketClient connects to /market/ws (Binance's
    route for klines) and SUBSCRIBEs btcusdt@kline_1m: the open candle every 250 ms of steps,
    then once closed (x true) the row /fapi/v1/klines answers for it."""
    from binance.websocket.um_futures.websocket_client import UMFuturesWebsocketClient

    messages: list[dict] = []
    client = await asyncio.to_thread(  # it connects in its constructor: off the simulator's loop
        UMFuturesWebsocketClient, stream_url=f"ws://127.0.0.1:{sim.port}/market",
        on_message=lambda _, raw: messages.append(orjson.loads(raw)))
    try:
        await asyncio.to_thread(client.kline, symbol="btcusdt", interval="1m", id=7)
        deadline = time.monotonic() + 10
        while sum(1 for m in messages if m.get("e") == "kline" and m["k"]["x"]) < 2:
            assert time.monotonic() < deadline, f"{len(messages)} messages, fewer than two closed candles"
            await asyncio.sleep(0.1)
        sim.stalled_until = float("inf")
        await asyncio.sleep(0.2)
        rows = await asyncio.to_thread(UMFutures(base_url=f"http://127.0.0.1:{sim.rest_port}").klines,
                                       "BTCUSDT", "1m", limit=1500)
    finally:
        await asyncio.to_thread(client.stop)  # leaves its socket open: the next test's case
    assert {"result": None, "id": 7} in messages
    events = [m for m in messages if m.get("e") == "kline"]
    assert all(e["s"] == "BTCUSDT" and e["k"]["i"] == "1m" and e["k"]["T"] == e["k"]["t"] + 59_999 for e in events)
    closed = [e for e in events if e["k"]["x"]]
    assert len({e["k"]["t"] for e in closed}) == len(closed), "a candle closes once"
    by_start = {row[0]: row for row in rows}
    for event in closed:
        k = event["k"]
        assert event["E"] > k["T"], "closed once the venue clock is past its end"
        assert [k["t"], k["o"], k["h"], k["l"], k["c"], k["v"], k["T"], k["q"], k["n"], k["V"], k["Q"]] == \
            by_start[k["t"]][:11]
        assert k["L"] - k["f"] + 1 == k["n"]
        opened = [e["k"] for e in events if e["k"]["t"] == k["t"] and not e["k"]["x"]]
        assert opened and [o["n"] for o in opened] == sorted({o["n"] for o in opened}), "pushed as it grew"
    steps_per_push = sim.binance.kline_every if sim.binance is not None else 0
    per_candle = sim.config.rate  # steps in a venue minute at 60x
    assert steps_per_push > 1 and len(events) < len(rows) * per_candle / steps_per_push * 2, "not one push per step"


async def test_routed_endpoints_carry_their_own_streams(sim: Simulator) -> None:
    """/public carries the book (depth, bookTicker), /market the trades and klines; a stream asked
    for on the other route is acknowledged and never sent. ccxt's /market/ws/0 (a connection
    number, no stream) is taken."""
    public = f"ws://127.0.0.1:{sim.port}/public/stream?streams=btcusdt@bookTicker/btcusdt@aggTrade/btcusdt@trade"
    got: dict[str, list[dict]] = defaultdict(list)
    async with websockets.connect(public) as ws:
        deadline = time.monotonic() + 5
        while len(got["btcusdt@trade"]) < 150 and time.monotonic() < deadline:
            message = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
            got[message["stream"]].append(message["data"])
    assert set(got) == {"btcusdt@bookTicker", "btcusdt@trade"}, "no aggTrade on /public"
    trades = got["btcusdt@trade"]
    assert [t["t"] for t in trades] == list(range(trades[0]["t"], trades[0]["t"] + len(trades))), "ids one by one"
    rest = await asyncio.to_thread(UMFutures(base_url=f"http://127.0.0.1:{sim.rest_port}").trades, "BTCUSDT",
                                   limit=1000)
    listed = {t["id"]: t for t in rest}
    assert all((listed[t["t"]]["price"], listed[t["t"]]["qty"], listed[t["t"]]["time"], listed[t["t"]]["isBuyerMaker"])
               == (t["p"], t["q"], t["T"], t["m"]) and t["e"] == "trade" for t in trades)
    async with websockets.connect(f"ws://127.0.0.1:{sim.port}/market/ws/0") as ws:
        await ws.send('{"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade", "btcusdt@kline_1m", '
                      '"btcusdt@depth@100ms"], "id": 1}')
        assert orjson.loads(await asyncio.wait_for(ws.recv(), 5)) == {"result": None, "id": 1}
        kinds: set[str] = set()
        deadline = time.monotonic() + 5
        while not {"aggTrade", "kline"} <= kinds and time.monotonic() < deadline:
            kinds.add(orjson.loads(await asyncio.wait_for(ws.recv(), 5))["e"])
        await asyncio.sleep(0.3)  # depth events (every 100 ms) would be among what comes meanwhile
        await ws.send('{"method": "LIST_SUBSCRIPTIONS", "id": 2}')
        while (reply := orjson.loads(await asyncio.wait_for(ws.recv(), 5))).get("id") != 2:
            kinds.add(reply["e"])
    assert kinds == {"aggTrade", "kline"}, "no depth on /market"
    assert reply["result"] == ["btcusdt@aggTrade", "btcusdt@depth@100ms", "btcusdt@kline_1m"]


async def test_the_simulator_stops_and_saves_with_a_client_that_left_its_socket_open(tmp_path: Path) -> None:
    """The connector's stop() sends its close frame and never closes the socket; the simulator
    must still stop (cutting it after STOP_GRACE_S) and save its state, not wait for ever."""
    from binance.websocket.um_futures.websocket_client import UMFuturesWebsocketClient

    simulator = Simulator(SimConfig(port=0, rest_port=0, symbols=("BTCUSDT",), binance=True,
                                    state_file=str(tmp_path / "venue.state")))
    await simulator.start()
    client = await asyncio.to_thread(UMFuturesWebsocketClient, stream_url=f"ws://127.0.0.1:{simulator.port}/market")
    await asyncio.to_thread(client.agg_trade, symbol="btcusdt", id=1)
    await asyncio.sleep(0.3)
    await asyncio.to_thread(client.stop)
    started = time.monotonic()
    await asyncio.wait_for(simulator.stop(), STOP_GRACE_S + 5)
    assert time.monotonic() - started < STOP_GRACE_S + 5 and (tmp_path / "venue.state").exists()


async def test_the_mark_with_one_side_of_the_book_eaten_is_the_last_price() -> None:
    """premiumIndex while an order has just taken one side whole: the last price, as the engine
    values positions then, not an error (the mid of an empty side does not exist)."""
    lockstep = Simulator(SimConfig(port=0, rest_port=0, rate=20, symbols=("BTCUSDT",), seed=1, binance=True,
                                   lockstep=True))
    await lockstep.start()
    try:
        assert lockstep.binance is not None
        market = lockstep.binance.markets["BTCUSDT"]
        market.asks.clear()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{lockstep.rest_port}") as http:
            answer = await http.get("/fapi/v1/premiumIndex", params={"symbol": "BTCUSDT"})
        assert answer.status_code == 200, answer.text
        assert Decimal(answer.json()["markPrice"]) == market.instrument.tick_size * market.last_price
    finally:
        await lockstep.stop()
