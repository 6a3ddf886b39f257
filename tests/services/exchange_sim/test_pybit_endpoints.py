"""What a stock client asks, the simulator answers: pybit's HTTP calls beyond orders (market data,
account, wallet, fees, key info, coins, order history, leverage) and its private WebSocket streams,
including the categorised and fast topics, with Bybit's shapes and codes."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal

import httpx
import pybit.exceptions
import pybit.unified_trading
import pytest

from services.exchange_sim.server import SimConfig, Simulator

pytestmark = pytest.mark.integration

KEY, SECRET = "pk", "pk-secret"
# Keys of Bybit's documented rows (docs/v5/position/position.mdx, order/order-list.mdx, wallet-balance.mdx)
POSITION_KEYS = {"positionIdx", "riskId", "riskLimitValue", "symbol", "side", "size", "avgPrice", "positionValue",
                 "tradeMode", "positionStatus", "autoAddMargin", "adlRankIndicator", "leverage", "breakEvenPrice",
                 "positionBalance", "markPrice", "liqPrice", "bustPrice", "positionMM", "positionMMByMp",
                 "positionIM", "positionIMByMp", "tpslMode", "takeProfit", "stopLoss", "trailingStop",
                 "unrealisedPnl", "curRealisedPnl", "cumRealisedPnl", "seq", "isReduceOnly", "sessionAvgPrice",
                 "createdTime", "updatedTime"}
ORDER_KEYS = {"orderId", "orderLinkId", "blockTradeId", "symbol", "price", "qty", "side", "isLeverage", "positionIdx",
              "orderStatus", "cancelType", "rejectReason", "avgPrice", "leavesQty", "leavesValue", "cumExecQty",
              "cumExecValue", "cumExecFee", "timeInForce", "orderType", "stopOrderType", "orderIv", "triggerPrice",
              "takeProfit", "stopLoss", "tpTriggerBy", "slTriggerBy", "triggerDirection", "triggerBy",
              "lastPriceOnCreated", "reduceOnly", "closeOnTrigger", "smpType", "smpGroup", "smpOrderId", "tpslMode",
              "tpLimitPrice", "slLimitPrice", "placeType", "createdTime", "updatedTime", "cumFeeDetail"}
WALLET_KEYS = {"totalEquity", "accountIMRate", "totalMarginBalance", "totalInitialMargin", "accountType",
               "totalAvailableBalance", "accountMMRate", "totalPerpUPL", "totalWalletBalance", "accountLTV",
               "totalMaintenanceMargin", "coin"}


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    # 25 ms before each private WS answer, as a real venue's round trip: pybit stores a subscribe's
    # req_id only after sending it, and an answer faster than that made it fail with a KeyError.
    simulator = Simulator(SimConfig(port=0, rest_port=0, rate=50, symbols=("BTCUSDT", "ETHUSDT"), seed=11,
                                    api_keys=(f"{KEY}:{SECRET}",), ws_reply_delay_ms=25))
    await simulator.start()
    yield simulator
    await simulator.stop()


def session(sim: Simulator) -> pybit.unified_trading.HTTP:
    http = pybit.unified_trading.HTTP(testnet=False, api_key=KEY, api_secret=SECRET, max_retries=1)
    http.endpoint = f"http://127.0.0.1:{sim.rest_port}"
    return http



async def in_thread(run: Callable[[], None], done: threading.Event, timeout_s: float = 30.0) -> None:
    """Run a blocking pybit session in a daemon thread with a bounded wait: a client stuck in its
    connect loop fails the test instead of holding the event loop (and every later test)."""
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    for _ in range(int(timeout_s * 10)):
        if not thread.is_alive():
            break
        await asyncio.sleep(0.1)
    assert done.is_set(), f"pybit's private WebSocket did not finish within {timeout_s:g} s"

async def test_market_data_calls(sim: Simulator) -> None:
    await asyncio.sleep(0.5)  # let the market print some trades

    def calls() -> dict[str, dict]:
        http = session(sim)
        return {"tickers": http.get_tickers(category="linear", symbol="BTCUSDT"),
                "spot_tickers": http.get_tickers(category="spot"),
                "trades": http.get_public_trade_history(category="linear", symbol="BTCUSDT", limit=5),
                "kline": http.get_kline(category="linear", symbol="BTCUSDT", interval="1"),
                "spot": http.get_instruments_info(category="spot"),
                "inverse": http.get_instruments_info(category="inverse"),
                "option": http.get_instruments_info(category="option"),
                "book": http.get_orderbook(category="linear", symbol="BTCUSDT", limit=500)}

    got = await asyncio.to_thread(calls)
    [ticker] = got["tickers"]["result"]["list"]
    assert {"lastPrice", "bid1Price", "ask1Price", "markPrice", "fundingRate", "volume24h"} <= set(ticker)
    assert {t["symbol"] for t in got["spot_tickers"]["result"]["list"]} == {"BTCUSDT", "ETHUSDT"}
    trades = got["trades"]["result"]["list"]
    assert 1 <= len(trades) <= 5 and {"execId", "price", "size", "side", "time", "isBlockTrade"} <= set(trades[0])
    assert int(trades[0]["time"]) >= int(trades[-1]["time"])  # newest first
    candle = got["kline"]["result"]["list"][0]
    assert len(candle) == 7 and int(candle[0]) % 60_000 == 0
    assert float(candle[2]) >= max(float(candle[1]), float(candle[4])) >= float(candle[3])  # high ≥ open, close ≥ low
    assert "basePrecision" in got["spot"]["result"]["list"][0]["lotSizeFilter"]
    assert got["inverse"]["result"] == {"category": "inverse", "list": [], "nextPageCursor": ""}
    assert got["option"]["result"]["list"] == []
    assert len(got["book"]["result"]["b"]) == 200  # limit 500 is allowed; the simulated book is 200 deep


async def test_account_calls_and_errors(sim: Simulator) -> None:
    def calls() -> dict[str, dict]:
        http = session(sim)
        out = {"wallet": http.get_wallet_balance(accountType="UNIFIED"), "info": http.get_account_info(),
               "fees": http.get_fee_rates(category="linear", symbol="BTCUSDT"),
               "key": http.get_api_key_information(), "coins": http.get_coin_info(coin="USDT"),
               "leverage": http.set_leverage(category="linear", symbol="BTCUSDT", buyLeverage="5", sellLeverage="5"),
               "positions": http.get_positions(category="linear", symbol="BTCUSDT")}
        with pytest.raises(pybit.exceptions.InvalidRequestError, match="110043"):
            http.set_leverage(category="linear", symbol="BTCUSDT", buyLeverage="5", sellLeverage="5")
        with pytest.raises(pybit.exceptions.InvalidRequestError, match=r"accountType.*10001"):
            http.get_wallet_balance(accountType="SAVINGS")
        with pytest.raises(pybit.exceptions.InvalidRequestError, match=r"\$\.qty.*10001"):
            http.place_order(category="linear", symbol="BTCUSDT", side="Buy", orderType="Limit", qty="Infinity",
                             price="60000.0")
        return out

    got = await asyncio.to_thread(calls)
    [wallet] = got["wallet"]["result"]["list"]
    assert set(wallet) >= WALLET_KEYS and wallet["coin"][0]["coin"] == "USDT"
    assert wallet["totalWalletBalance"] == "100000"
    assert got["info"]["result"]["marginMode"] == "REGULAR_MARGIN"
    assert got["fees"]["result"]["list"] == [{"symbol": "BTCUSDT", "takerFeeRate": "0.00055",
                                              "makerFeeRate": "0.0002", "baseCoin": "BTC"}]
    assert got["key"]["result"]["apiKey"] == KEY and got["key"]["result"]["readOnly"] == 0
    assert [row["coin"] for row in got["coins"]["result"]["rows"]] == ["USDT"]
    assert got["leverage"]["retCode"] == 0
    [position] = got["positions"]["result"]["list"]
    assert set(position) >= POSITION_KEYS and position["leverage"] == "5" and position["tpslMode"] == "Full"


async def test_order_history_and_bybit_cancel_types(sim: Simulator) -> None:
    def calls() -> tuple[dict, dict, dict]:
        http = session(sim)
        book = http.get_orderbook(category="linear", symbol="BTCUSDT", limit=1)["result"]
        ask = book["a"][0][0]
        http.place_order(category="linear", symbol="BTCUSDT", side="Buy", orderType="Limit", qty="0.010",
                         price=ask, timeInForce="PostOnly", orderLinkId="po-cross")
        http.place_order(category="linear", symbol="BTCUSDT", side="Buy", orderType="Limit", qty="0.010",
                         price="50000.0", orderLinkId="resting")
        http.cancel_order(category="linear", symbol="BTCUSDT", orderLinkId="resting")
        return (http.get_order_history(category="linear", orderLinkId="po-cross"),
                http.get_order_history(category="linear", orderLinkId="resting"),
                http.get_order_history(category="linear", limit=1))

    crossed, cancelled, page = await asyncio.to_thread(calls)
    [post_only] = crossed["result"]["list"]
    assert set(post_only) >= ORDER_KEYS
    assert (post_only["orderStatus"], post_only["cancelType"], post_only["rejectReason"]) == (
        "Cancelled", "UNKNOWN", "EC_PostOnlyWillTakeLiquidity")
    assert cancelled["result"]["list"][0]["cancelType"] == "CancelByUser"
    assert len(page["result"]["list"]) == 1 and page["result"]["nextPageCursor"] == "1"


async def test_pybit_private_streams_get_order_messages(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """pybit subscribes `order` and the categorised `execution.fast.linear` and `position.linear`;
    each gets its messages under the topic it subscribed, which is how pybit finds the callback."""
    monkeypatch.setattr(pybit.unified_trading, "PRIVATE_WSS", f"ws://127.0.0.1:{sim.port}/v5/private")
    orders: list[dict] = []
    fast: list[dict] = []
    positions: list[dict] = []
    done = threading.Event()

    def run() -> None:
        # pybit's auth message expires 1 s after it is signed by default; a loaded machine can take
        # longer to send it, the venue then refuses it, and pybit's subscribe waits for ever.
        ws = pybit.unified_trading.WebSocket(testnet=False, channel_type="private", api_key=KEY, api_secret=SECRET,
                                             private_auth_expire=10)
        try:
            ws.order_stream(orders.append)
            ws.fast_execution_stream(fast.append, categorised_topic="linear")
            ws.subscribe("position.linear", positions.append, "")
            deadline = time.monotonic() + 5
            while len(sim.private_sessions) == 0 or not any(
                    len(s["topics"]) == 3 for s in sim.private_sessions.values()):
                assert time.monotonic() < deadline, "pybit's subscriptions did not arrive"
                time.sleep(0.05)
            time.sleep(0.5)  # pybit registers a topic's callback only after sending its subscribe
            session(sim).place_order(category="linear", symbol="BTCUSDT", side="Buy", orderType="Market",
                                     qty="0.010", orderLinkId="ws-pybit")
            deadline = time.monotonic() + 10
            while not (orders and fast and positions) and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            ws.exit()
            done.set()

    await in_thread(run, done)
    assert orders, "pybit's order stream got no message"
    assert orders[0]["topic"] == "order" and orders[0]["data"][0]["orderLinkId"] == "ws-pybit"
    assert fast and fast[0]["topic"] == "execution.fast.linear"
    assert set(fast[0]["data"][0]) == {"category", "symbol", "execId", "execPrice", "execQty", "orderId", "isMaker",
                                       "orderLinkId", "side", "execTime", "seq"}
    assert positions and positions[0]["topic"] == "position.linear"


async def test_pybit_wallet_stream_follows_fills_and_funding(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """pybit's wallet_stream: nothing on subscribe (Bybit sends no wallet snapshot, so a client that
    waits for one, as ccxt's watch_balance does, waits until the balance changes), then a message
    after each fill (fee, realised PnL) and after a funding settlement, each the account that
    GET /v5/account/wallet-balance answers at that moment."""
    monkeypatch.setattr(pybit.unified_trading, "PRIVATE_WSS", f"ws://127.0.0.1:{sim.port}/v5/private")
    wallets: list[dict] = []
    seen: dict[str, object] = {}
    done = threading.Event()

    def wait_for(count: int) -> None:
        deadline = time.monotonic() + 10
        while len(wallets) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # a fill across levels pushes one message per level: let the rest arrive

    def run() -> None:
        ws = pybit.unified_trading.WebSocket(testnet=False, channel_type="private", api_key=KEY, api_secret=SECRET,
                                             private_auth_expire=10)
        http = session(sim)
        try:
            ws.wallet_stream(wallets.append)
            deadline = time.monotonic() + 5
            while not any("wallet" in s["topics"] for s in sim.private_sessions.values()):
                assert time.monotonic() < deadline, "pybit's wallet subscription did not arrive"
                time.sleep(0.05)
            time.sleep(0.5)  # pybit registers the callback after sending; and no snapshot comes meanwhile
            seen["on_subscribe"] = len(wallets)
            http.place_order(category="linear", symbol="BTCUSDT", side="Buy", orderType="Market", qty="0.010",
                             orderLinkId="wallet-fill")
            wait_for(1)
            seen["after_fill"] = list(wallets)
            seen["rest_after_fill"] = http.get_wallet_balance(accountType="UNIFIED")["result"]["list"][0]
            with httpx.Client() as plain:
                plain.get(f"http://127.0.0.1:{sim.port}/sim/funding").raise_for_status()
            wait_for(len(seen["after_fill"]) + 1)  # type: ignore[arg-type]
            seen["after_funding"] = list(wallets)
            seen["rest_after_funding"] = http.get_wallet_balance(accountType="UNIFIED")["result"]["list"][0]
        finally:
            ws.exit()
            done.set()

    await in_thread(run, done)
    assert seen["on_subscribe"] == 0, "Bybit pushes no wallet snapshot on subscribe"
    after_fill, after_funding = seen["after_fill"], seen["after_funding"]
    assert isinstance(after_fill, list) and isinstance(after_funding, list)
    assert after_fill, "no wallet message after a fill"
    message = after_fill[-1]
    assert message["topic"] == "wallet" and set(message) == {"id", "topic", "creationTime", "data"}
    [pushed] = message["data"]
    rest: dict = seen["rest_after_fill"]  # type: ignore[assignment]
    assert set(pushed) == set(rest) >= WALLET_KEYS and pushed["accountType"] == "UNIFIED"
    money = ("walletBalance", "availableToWithdraw", "cumRealisedPnl", "totalFee")
    assert pushed["totalWalletBalance"] == rest["totalWalletBalance"]
    assert [pushed["coin"][0][k] for k in money] == [rest["coin"][0][k] for k in money]
    assert Decimal(pushed["totalWalletBalance"]) < 100_000, "the fill's fee left the wallet"
    assert len(after_funding) > len(after_fill), "no wallet message after the funding settlement"
    [funded] = after_funding[-1]["data"]
    rest_funded: dict = seen["rest_after_funding"]  # type: ignore[assignment]
    assert funded["totalWalletBalance"] == rest_funded["totalWalletBalance"] != pushed["totalWalletBalance"]
    assert [funded["coin"][0][k] for k in money] == [rest_funded["coin"][0][k] for k in money]
