"""Any input gets a Bybit answer: the simulator under a fuzzer never answers 5xx and keeps serving.

Every endpoint is fed random input: public GETs with random query parameters, signed POSTs with
random JSON bodies (Infinity, NaN, 1E+400, nested lists and objects, non-object batch items) and
raw garbage bodies, signed GETs with random queries, oversized bodies, headers and URLs, and random
WebSocket op messages. A REST answer must be JSON with retCode and retMsg (404 only with 10017),
or the transport limit's own 4xx; a WebSocket answer must be an ack with success and ret_msg. The
handlers' last-resort catch (10016) must never have fired, and a valid request afterwards works.
The simulator runs on its own loop in a thread, so hypothesis drives it with plain sync clients.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import connect

from services.exchange_sim import private
from services.exchange_sim.binance_rest import ROUTES as BINANCE_ROUTES
from services.exchange_sim.rest import ROUTES as PUBLIC_ROUTES
from services.exchange_sim.server import SimConfig, Simulator
from services.venues.bybit.signing import rest_signature, ws_auth_signature

KEY, SECRET = "fuzz-key", "fuzz-secret"
BIG = "__1E+400__"  # replaced by a bare 1E+400 in the JSON text (no float serializes to it)
FIELDS = ["category", "symbol", "side", "orderType", "qty", "price", "timeInForce", "orderLinkId", "reduceOnly",
          "positionIdx", "orderId", "request", "limit", "cursor", "openOnly", "accountType", "coin", "interval",
          "buyLeverage", "sellLeverage", "start", "end", "baseCoin", "settleCoin", "status", "takeProfit"]
WORDS = ["linear", "spot", "inverse", "option", "BTCUSDT", "ETHUSDT", "Buy", "Sell", "Limit", "Market", "GTC",
         "PostOnly", "FOK", "IOC", "0.010", "60000.0", "65000.00", "Infinity", "-Infinity", "NaN", "1E+400",
         "1e-400", "-1", "0", "", "UNIFIED", "1", "D", "500", "1001", "99999999999999999999999", " ", "\u0000",
         "é", "%00", "a" * 300]
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))

scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([*WORDS, BIG]) | st.text(max_size=12))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), inner, max_size=4),
                      max_leaves=12)
# Valid requests with one or two fields replaced: random dicts almost never get past the required
# fields, so without these the fuzzer would not reach a handler with a bad qty or limit.
ORDER = {"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit", "qty": "0.010",
         "price": "60000.0", "timeInForce": "GTC", "orderLinkId": "fuzz", "buyLeverage": "5", "sellLeverage": "5"}
QUERY = {"category": "linear", "symbol": "BTCUSDT", "interval": "1", "accountType": "UNIFIED", "limit": "5"}
NASTY = ["Infinity", "-Infinity", "NaN", "1E+400", "1e-400", "-1", "0", "", " 1", "1_000", "٣", "0x10",
         "1" * 30, BIG, 1.5, 10, None, True, [], {}]
nasty = st.sampled_from(NASTY) | values
order_like = (st.dictionaries(st.sampled_from(FIELDS), values, max_size=10)
              | st.dictionaries(st.sampled_from([*ORDER, "reduceOnly", "positionIdx", "takeProfit", "orderId"]),
                                nasty, min_size=1, max_size=2).map(lambda changed: {**ORDER, **changed}))
batches = st.lists(order_like | values, max_size=4).map(lambda items: {"category": "linear", "request": items})
bodies = order_like | batches | values
texts = st.sampled_from(WORDS) | st.sampled_from([n for n in NASTY if isinstance(n, str)]) | st.text(max_size=20)
queries = (st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), texts, max_size=6)
           | st.dictionaries(st.sampled_from([*QUERY, "cursor", "openOnly", "start", "end", "orderLinkId", "coin"]),
                             texts, min_size=1, max_size=2).map(lambda changed: {**QUERY, **changed}))
public_paths = st.sampled_from([*PUBLIC_ROUTES, "/v5/market/time", "/v5/market/nope", "/v5/other", "/"])
post_paths = st.sampled_from([p for p, r in private.ROUTES.items() if r.method == "POST"])
# Binance's dialect: its parameters, with numbers past int64, past Python's int-digit limit, and words.
BINANCE = {"symbol": "BTCUSDT", "limit": "5", "fromId": "1", "startTime": "1", "endTime": "2", "interval": "1m",
           "pair": "BTCUSDT", "contractType": "PERPETUAL"}
binance_texts = texts | st.sampled_from(["9" * 19, "9223372036854775808", "1" * 5000, "18446744073709551616"])
binance_queries = st.dictionaries(st.sampled_from([*BINANCE, "symbols"]), binance_texts, min_size=1, max_size=3).map(
    lambda changed: {**BINANCE, **changed}) | st.dictionaries(st.text(max_size=8), binance_texts, max_size=4)
binance_paths = st.sampled_from([*BINANCE_ROUTES, "/fapi/v1/nope"])
get_paths = st.sampled_from([p for p, r in private.ROUTES.items() if r.method == "GET"])


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    """A simulator on its own loop and thread, with the rate limits lifted (a 10006 answered
    before validation would hide the very inputs the fuzzer is after)."""
    saved = dict(private.LIMITS)
    private.LIMITS.update(dict.fromkeys(private.LIMITS, 10**9))
    simulator = Simulator(SimConfig(port=0, rest_port=0, symbols=("BTCUSDT", "ETHUSDT"), seed=3, rate=20,
                                    api_keys=(f"{KEY}:{SECRET}",), rest_read_timeout=1.0, binance=True))
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(simulator.start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert started.wait(10)
    yield simulator
    async def stop() -> None:
        await simulator.stop()
        await asyncio.sleep(0.2)  # let aiohttp's connection tasks see their sockets closed

    asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    private.LIMITS.update(saved)


@pytest.fixture(scope="module")
def http(sim: Simulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://127.0.0.1:{sim.rest_port}", timeout=5) as client:
        yield client


def to_json(body: Any) -> bytes:
    return json.dumps(body, allow_nan=True).replace(f'"{BIG}"', "1E+400").encode()


def sign(payload: str) -> dict[str, str]:
    ts = str(int(time.time() * 1000))
    return {"X-BAPI-API-KEY": KEY, "X-BAPI-TIMESTAMP": ts, "X-BAPI-RECV-WINDOW": "5000", "X-BAPI-SIGN-TYPE": "2",
            "X-BAPI-SIGN": rest_signature(SECRET, ts, KEY, "5000", payload), "Content-Type": "application/json"}


def assert_bybit(response: httpx.Response) -> dict[str, Any]:
    """A well-formed Bybit answer: not 5xx, JSON with an integer retCode and a string retMsg."""
    assert response.status_code < 500, (response.status_code, response.text[:300])
    body = response.json()
    assert isinstance(body["retCode"], int) and isinstance(body["retMsg"], str), body
    assert body["retCode"] != 10016, body  # the last-resort catch: a handler raised
    if response.status_code == 404:
        assert body["retCode"] == 10017
    return body


def query_text(query: dict[str, str]) -> str:
    return "&".join(f"{k}={v}" for k, v in query.items())  # raw, as pybit sends it (not URL-encoded)


@SETTINGS
@given(path=public_paths, query=queries)
def test_public_gets(http: httpx.Client, path: str, query: dict[str, str]) -> None:
    assert_bybit(http.get(path, params=query))


@SETTINGS
@given(path=binance_paths, query=binance_queries)
def test_binance_gets(http: httpx.Client, path: str, query: dict[str, str]) -> None:
    """Binance's dialect answers anything with its data or Binance's error JSON (an int code, a
    message), never a 5xx."""
    response = http.get(path, params=query)
    assert response.status_code < 500, (path, query, response.status_code, response.text[:300])
    if response.status_code in (413, 414, 431):
        return  # the server's request limits, answered before any route (test_server covers them)
    body = response.json()
    if response.status_code >= 400:
        assert isinstance(body["code"], int) and isinstance(body["msg"], str), body


@SETTINGS
@given(path=post_paths, body=bodies)
def test_signed_posts_with_random_json(http: httpx.Client, path: str, body: Any) -> None:
    content = to_json(body)
    assert_bybit(http.post(path, content=content, headers=sign(content.decode())))


@SETTINGS
@given(path=post_paths, content=st.binary(max_size=200) | st.sampled_from(
    [b"", b"{", b"[]", b"null", b'{"category": NaN}', b'{"qty": Infinity}', b'{"qty": 1E+400}', b"\xff\xfe"]))
def test_signed_posts_with_garbage(http: httpx.Client, path: str, content: bytes) -> None:
    assert_bybit(http.post(path, content=content, headers=sign(content.decode("utf-8", "replace"))))


@SETTINGS
@given(path=get_paths, query=queries)
def test_signed_gets(http: httpx.Client, path: str, query: dict[str, str]) -> None:
    text = httpx.QueryParams(query).__str__()  # encoded, so the target is valid HTTP and signs as sent
    assert_bybit(http.get(f"{path}?{text}" if text else path, headers=sign(text)))


@SETTINGS
@given(message=bodies | st.text(max_size=50), private_socket=st.booleans())
def test_websocket_op_messages(sim: Simulator, message: Any, private_socket: bool) -> None:
    path = "/v5/private" if private_socket else "/v5/public/linear"
    raw = message if isinstance(message, str) else to_json(message).decode()
    with connect(f"ws://127.0.0.1:{sim.port}{path}", open_timeout=5) as ws:
        if private_socket:
            expires = int(time.time() * 1000) + 5000
            ws.send(orjson.dumps({"op": "auth", "args": [KEY, expires, ws_auth_signature(SECRET, expires)]}).decode())
            assert orjson.loads(ws.recv(timeout=5))["success"] is True
        ws.send(raw)
        reply = orjson.loads(ws.recv(timeout=5))
        assert "op" in reply and ("success" in reply or reply["op"] == "pong"), reply
        assert reply.get("ret_msg") != "Server error", reply
        ws.send('{"op": "ping"}')  # still serving on the same socket (a fuzzed subscribe may stream first)
        for _ in range(50):
            answer = orjson.loads(ws.recv(timeout=5))
            if answer.get("ret_msg") == "pong" or answer.get("op") == "pong":
                break
        else:
            pytest.fail("no pong after the fuzzed message")


BASES = {"/v5/order/create": ORDER, "/v5/order/cancel": {"category": "linear", "symbol": "BTCUSDT", "orderId": "x"},
         "/v5/position/set-leverage": {"category": "linear", "symbol": "BTCUSDT", "buyLeverage": "5",
                                       "sellLeverage": "5"}}


def test_every_field_with_every_bad_value(http: httpx.Client) -> None:
    """The sweep hypothesis is unlikely to hit by chance: each field of a valid request (each
    signed POST, a batch item, each GET query) replaced by each NASTY value."""
    amend = {"symbol": "BTCUSDT", "orderLinkId": "x", "price": "50000.0", "qty": "0.010"}
    bases = {**BASES, "/v5/order/create-batch": {"category": "linear", "request": [ORDER]},
             "/v5/order/amend": {"category": "linear", **amend},
             "/v5/order/amend-batch": {"category": "linear", "request": [amend]},
             "/v5/order/cancel-batch": {"category": "linear", "request": [{"symbol": "BTCUSDT", "orderId": "x"}]},
             "/v5/order/cancel-all": {"category": "linear", "symbol": "BTCUSDT", "settleCoin": "USDT"}}
    assert set(bases) == {p for p, r in private.ROUTES.items() if r.method == "POST"}
    for path, base in bases.items():
        item = base["request"][0] if path.endswith("batch") else {}
        for field in [*base, *item]:
            for bad in NASTY:
                # a field of the request, or of the batch's item (next to a bad item)
                body = {**base, field: bad} if field in base else {**base, "request": [{**item, field: bad}, bad]}
                content = to_json(body)
                assert_bybit(http.post(path, content=content, headers=sign(content.decode())))
    for path in [*PUBLIC_ROUTES, *(p for p, r in private.ROUTES.items() if r.method == "GET")]:
        for field in [*QUERY, "cursor", "openOnly", "start", "end"]:
            for bad in (n for n in NASTY if isinstance(n, str)):
                text = httpx.QueryParams({**QUERY, field: bad}).__str__()
                assert_bybit(http.get(f"{path}?{text}", headers=sign(text)))


def raw_exchange(sim: Simulator, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", sim.rest_port), timeout=5) as conn:
        conn.sendall(data)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks):
                break
        return b"".join(chunks)


def test_transport_limits(sim: Simulator, http: httpx.Client) -> None:
    big = b"{" + b'"qty": "1",' * 200_000 + b"}"
    assert http.post("/v5/order/create", content=big, headers=sign(big.decode())).status_code == 413
    assert http.get("/v5/market/time?x=" + "a" * 10_000).status_code == 414
    assert http.get("/v5/market/time", headers={"X-Big": "a" * 10_000}).status_code == 431
    assert http.get("/v5/market/time", headers={f"X-{i}": "1" for i in range(100)}).status_code == 431
    assert raw_exchange(sim, b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.0 400")


def test_still_serving_with_no_handler_error(sim: Simulator, http: httpx.Client) -> None:
    """Runs after the fuzz tests (file order): nothing reached the last-resort catch."""
    body = to_json({"category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit", "qty": "0.001",
                    "price": "50000.0", "orderLinkId": "after-fuzz"})
    placed = assert_bybit(http.post("/v5/order/create", content=body, headers=sign(body.decode())))
    assert placed["retCode"] == 0 and placed["result"]["orderLinkId"] == "after-fuzz"
    assert assert_bybit(http.get("/v5/market/time"))["retCode"] == 0
    assert sim.http.unhandled == 0 and sim.stats["server_errors"] == 0


def test_slow_clients_are_disconnected(sim: Simulator) -> None:
    """Headers sent byte by byte, or nothing at all, hold a socket only until the read timeout
    (1 s here); a body that does not arrive in time is answered 408."""
    request = b"GET /v5/market/time HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
    with socket.create_connection(("127.0.0.1", sim.rest_port), timeout=5) as conn:
        started = time.monotonic()
        with pytest.raises(OSError):
            for byte in request:  # one byte every 50 ms: 5.6 s if the server waited for all
                conn.send(bytes([byte]))
                time.sleep(0.05)
            conn.recv(1)  # never answered: the server closed the connection
        assert time.monotonic() - started < 3
    with socket.create_connection(("127.0.0.1", sim.rest_port), timeout=5) as idle:
        started = time.monotonic()
        assert idle.recv(1) == b""  # closed without a byte sent
        assert 0.5 < time.monotonic() - started < 3
    late = raw_exchange(sim, b"POST /v5/order/create HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{")
    assert late.startswith(b"HTTP/1.1 408")
