"""The simulator's sockets: Bybit V5 public WebSocket and public REST on one port.

    ws://HOST:PORT/v5/public/linear, /v5/public/spot      subscribe / unsubscribe / ping; topics
        orderbook.{1|50|200}.S, publicTrade.S, tickers.S, kline.{1|3|5|15|30|60|120|240|360|720|D|W|M}.S
    GET /v5/market/time | instruments-info | orderbook | tickers | recent-trade | kline   the V5 envelope
    GET /sim/fault?kind=gap|reset|malformed|disconnect|stall|mute_pongs[&symbol=S][&seconds=N]
    GET /sim/fault?kind=timeout|http5xx|ratelimit|dropack[&count=N]   private REST faults
    GET /sim/stats                                        counters (and private REST requests per route)
    GET /sim/step[?symbol=S] · /sim/release[?count=N]     lockstep mode: advance the market, release frames
    GET /sim/ledger                                       every account's orders, executions, positions, wallet
    GET /sim/funding                                      settle funding now (otherwise every funding_interval_s)
    ws://HOST:PORT/v5/private                             auth, then order/execution/position/wallet
    http://HOST:REST_PORT/v5/...                          REST incl. signed orders (private.py)

A tick loop steps every symbol's market `rate` times a second and broadcasts what changed to the
subscribers of each topic. In replay mode it plays a file of recorded raw frames instead.

Lockstep mode (`EXCHANGE_SIM_LOCKSTEP=true`) has no tick loop: the market moves only when asked
(`/sim/step`), the venue's clock is the step count (`epoch_ms` + 1000/rate per step) instead of the
wall clock, and public frames are held until `/sim/release` sends them one at a time. A driver that
waits for the platform to settle between releases gets the same frames, orders and fills from the
same seed on every run: the basis of the chaos test (tests/e2e/test_chaos.py). Signatures, auth and
rate limits still use the wall clock, as they must.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgspec
import orjson
from websockets.asyncio.server import Server, ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from services.exchange_sim import persist
from services.exchange_sim.binance import BinanceVenue
from services.exchange_sim.feeds import DEPTHS, BookStream, TickerStream, trade_frame, trade_rows
from services.exchange_sim.http import HttpServer
from services.exchange_sim.klines import BYBIT_SPANS, Candles, KlineStream
from services.exchange_sim.market import Market
from services.exchange_sim.matching import MatchingEngine
from services.exchange_sim.private import PRIVATE_FAULTS, PrivateApi
from services.exchange_sim.private_ws import PrivateSocket
from services.exchange_sim.requests import ParamsError, WsOp, parse_body
from services.exchange_sim.rest import RestResult, public_rest

log = logging.getLogger(__name__)

CATEGORIES = ("linear", "spot")
FAULTS = ("gap", "reset", "malformed", "disconnect", "stall", "mute_pongs")
TRADE_MEMORY = 5000  # public trades kept per symbol for /v5/market/recent-trade and tickers
STOP_GRACE_S = 2.0  # how long stop() waits for clients to close their sockets before cutting them


class SimConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The simulator's settings (env prefix EXCHANGE_SIM_)."""

    host: str = "127.0.0.1"
    port: int = 8801
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    seed: int = 7
    rate: float = 20.0
    levels: int = 200
    replay_file: str = ""
    replay_speed: float = 1.0
    rest_port: int = 8802
    api_keys: tuple[str, ...] = ("hean-sim-key:hean-sim-secret",)
    balance: Decimal = Decimal("100000")
    lockstep: bool = False
    epoch_ms: int = 1_767_225_600_000  # the venue clock's start in lockstep mode (2026-01-01 UTC)
    rest_read_timeout: float = 10.0  # seconds a REST client may take to send a request (http.py)
    rest_max_body: int = 1 << 20  # bytes; a larger body is answered 413
    # How long the private WebSocket waits before answering an op: the round trip to a real venue
    # is tens of ms, and some clients (pybit stores a subscription's req_id only after sending it)
    # cannot take an answer faster than that. 0 answers at once.
    ws_reply_delay_ms: float = 0.0
    # Where the venue keeps its state across restarts (persist.py); "" keeps it in memory only.
    state_file: str = ""
    state_every_seconds: float = 1.0
    # The Binance USDⓈ-M futures dialect (binance.py): its own market on the same symbols,
    # streams at /stream and /ws/…, depth snapshots at /fapi/v1/depth on the REST port.
    binance: bool = False
    # Funding of perpetual positions (Bybit settles every 8 h, at 00:00, 08:00 and 16:00 UTC): at
    # each multiple of the interval on the venue clock every open position pays (long, positive
    # rate) or receives its value at the mark x the rate. 0 turns it off.
    funding_interval_s: float = 28_800.0
    funding_rate: Decimal = Decimal("0.0001")
    # Positions every account holds before any order, as "SYMBOL=QTY@PRICE" (QTY signed: -0.5 is a
    # short, PRICE its average entry): what a real account may hold when HEAN first trades it.
    positions: tuple[str, ...] = ()

    def holdings(self) -> list[tuple[str, Decimal, Decimal]]:
        """(symbol, signed qty, average entry price) of each EXCHANGE_SIM_POSITIONS entry."""
        held = []
        for entry in self.positions:
            try:
                symbol, terms = entry.split("=", 1)
                qty, price = (Decimal(v) for v in terms.split("@"))
            except (ValueError, ArithmeticError):
                raise ValueError(f"EXCHANGE_SIM_POSITIONS entries must be SYMBOL=QTY@PRICE, found {entry!r}") from None
            held.append((symbol, qty, price))
        return held

    def secrets(self) -> dict[str, str]:
        """API key → secret, from "key:secret" entries (the simulator's own test credentials)."""
        pairs = [entry.split(":", 1) for entry in self.api_keys]
        if any(len(p) != 2 or not p[0] or not p[1] for p in pairs):
            raise ValueError("EXCHANGE_SIM_API_KEYS entries must be key:secret")
        return dict(pairs)  # type: ignore[arg-type]


class Simulator:
    """The venue: market, streams, subscriptions, faults; `start()` binds the port."""

    def __init__(self, config: SimConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        market = Market(seed=config.seed, levels=config.levels)
        unknown = set(config.symbols) - set(market.instruments)
        if unknown:
            raise ValueError(f"unknown symbols {sorted(unknown)}; the simulator lists {sorted(market.instruments)}")
        self.market = market
        self.symbols = {s: market.symbols[s] for s in config.symbols}
        self.books = {(c, s, d): BookStream(m, d, c) for c in CATEGORIES for s, m in self.symbols.items()
                      for d in DEPTHS}
        self.tickers = {(c, s): TickerStream(m, c) for c in CATEGORIES for s, m in self.symbols.items()}
        # Every trade printed, as candles (klines.py): GET /v5/market/kline and the kline streams.
        self.candles = {s: Candles(BYBIT_SPANS) for s in self.symbols}
        self.klines = {(c, s): {i: KlineStream(m.instrument, i) for i in BYBIT_SPANS} for c in CATEGORIES
                       for s, m in self.symbols.items()}
        self._kline_keys = {(c, s): [((c, k.topic), k) for k in streams.values()]
                            for (c, s), streams in self.klines.items()}  # tick's lookups, built once
        self.subscribers: dict[tuple[str, str], set[ServerConnection]] = defaultdict(set)
        self.connections: set[ServerConnection] = set()
        self.seq: dict[str, int] = dict.fromkeys(self.symbols, 1_000_000)
        self.trade_counter = 0
        self.stalled_until = 0.0
        self.pongs_muted_until = 0.0  # fault mute_pongs: pings (public and private) go unanswered
        self.stats: dict[str, int] = defaultdict(int)
        self.server: Server | None = None
        self.port = 0
        secrets = config.secrets()
        self.secrets = secrets
        self.engine = MatchingEngine(self.symbols, dict.fromkeys(secrets, config.balance))
        self.private = PrivateApi(self, secrets, clock)
        self.http = HttpServer(self.private.handle, config.host, config.rest_port, max_body=config.rest_max_body,
                               read_timeout=config.rest_read_timeout)
        self.rest_port = 0
        self.private_ws = PrivateSocket(self)
        self.binance = (BinanceVenue(self, config.symbols, config.seed + 1, config.levels, config.rate)
                        if config.binance else None)
        self.private_sessions = self.private_ws.sessions
        self.trades: dict[str, deque[dict[str, Any]]] = {s: deque(maxlen=TRADE_MEMORY) for s in self.symbols}
        self.lockstep_ms = config.epoch_ms
        for symbol, qty, price in config.holdings():
            for key in secrets:
                self.engine.hold(key, symbol, qty, price, self.venue_ms())
        self.held: deque[tuple[str, str, bytes]] = deque()  # lockstep: frames waiting for /sim/release
        self._tasks: list[asyncio.Task[None]] = []
        self._closing: set[asyncio.Task[None]] = set()
        self.state_path = Path(config.state_file) if config.state_file else None
        if self.state_path is not None and persist.load(self, self.state_path):
            orders = sum(len(a.orders) for a in self.engine.accounts.values())
            log.info("venue state restored", extra={"file": str(self.state_path), "orders": orders})
        self.next_funding_ms = self._funding_after(self.venue_ms())  # after a restore: its clock

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> int:
        self.server = await serve(self._connection, self.config.host, self.config.port,
                                  process_request=self._http, ping_interval=None, max_size=2**20)
        self.port = self.server.sockets[0].getsockname()[1]
        self.rest_port = await self.http.start()
        if not self.config.lockstep:
            loop = self._replay_loop if self.config.replay_file else self._tick_loop
            self._tasks.append(asyncio.create_task(loop()))
        if self.state_path is not None:
            self._tasks.append(asyncio.create_task(self._keep_state(self.state_path)))
        log.info("exchange simulator listening", extra={"port": self.port, "symbols": list(self.symbols)})
        return self.port

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.http.stop()
        if self.server is not None:
            self.server.close()
            try:
                await asyncio.wait_for(self.server.wait_closed(), STOP_GRACE_S)
            except TimeoutError:
                # A client that sent its close frame but never closes its socket (binance-futures-
                # connector's stop() does) would hold the server, and the state save below, forever.
                stuck = list(self.server.all_connections)  # .connections lists only OPEN ones
                log.warning("closing %d WebSocket connections the clients left open", len(stuck))
                for connection in stuck:
                    connection.transport.abort()
                await self.server.wait_closed()
        if self.state_path is not None:
            persist.save(self, self.state_path)  # after the last request: nothing changes any more

    async def _keep_state(self, path: Path) -> None:
        """Save the venue every state_every_seconds; a failed save is logged and counted, and
        tried again at the next interval (the venue goes on serving)."""
        while True:
            await asyncio.sleep(self.config.state_every_seconds)
            try:
                persist.save(self, path)
            except OSError as exc:
                self.stats["state_save_failures"] += 1
                log.error("venue state not saved to %s: %s", path, exc)

    @property
    def url(self) -> str:
        return f"ws://{self.config.host}:{self.port}"

    # ------------------------------------------------------------------ market ticks

    def _now_ms(self) -> int:
        """Wall-clock time: for signatures, auth windows and the server time."""
        return int(self.clock() * 1000)

    def venue_ms(self) -> int:
        """The time the venue stamps on market data, orders and fills (the step clock in lockstep)."""
        return self.lockstep_ms if self.config.lockstep else self._now_ms()

    def step(self, symbols: list[str]) -> dict[str, Any]:
        """Lockstep: advance the venue clock one interval and the market of `symbols` one step."""
        if not self.config.lockstep:
            raise ValueError("the simulator is not in lockstep mode (EXCHANGE_SIM_LOCKSTEP)")
        if any(s not in self.symbols for s in symbols):
            raise ValueError(f"symbol must be one of {sorted(self.symbols)}")
        self.lockstep_ms += round(1000 / self.config.rate)
        for symbol in symbols:
            self.tick(symbol)
        return {"ts": self.lockstep_ms, "held": len(self.held)}

    def release(self, count: int) -> dict[str, Any]:
        """Lockstep: send the next `count` held frames to their subscribers."""
        released = []
        while self.held and len(released) < count:
            category, topic, frame = self.held.popleft()
            targets = self.subscribers.get((category, topic))
            if targets:
                broadcast(targets, frame.decode())
                self.stats["frames_sent"] += len(targets)
            released.append(topic)
        return {"released": released, "held": len(self.held)}

    async def _tick_loop(self) -> None:
        interval = 1.0 / self.config.rate
        next_at = asyncio.get_running_loop().time()
        while True:
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - asyncio.get_running_loop().time()))
            if self.clock() < self.stalled_until:
                if self.binance is not None:
                    self.binance.flush(self.venue_ms())
                continue
            for symbol in self.symbols:
                self.tick(symbol)

    def _funding_after(self, now_ms: int) -> int:
        """The next settlement time after `now_ms` (multiples of the interval since the epoch)."""
        interval = round(self.config.funding_interval_s * 1000)
        return (now_ms // interval + 1) * interval if interval > 0 else 2**63

    def settle_funding(self, now_ms: int) -> None:
        """Charge funding on every open position now (also reachable as GET /sim/funding)."""
        charged = self.engine.settle_funding(self.config.funding_rate, now_ms)
        if self.binance is not None:
            self.binance.settle_funding(self.config.funding_rate, now_ms)
        self.stats["funding_settlements"] += 1
        self.stats["funding_charges"] += charged
        self.next_funding_ms = self._funding_after(now_ms)
        self.deliver_private_reports()

    def tick(self, symbol: str) -> None:
        """One market step of `symbol`, broadcast to every subscriber of its topics."""
        market = self.symbols[symbol]
        fills = market.step()
        self.seq[symbol] += 1
        seq, ts = self.seq[symbol], self.venue_ms()
        if ts >= self.next_funding_ms:
            self.settle_funding(ts)
        self.engine.on_market_step(symbol, ts, fills)
        self.deliver_private_reports()
        top = market.top(max(DEPTHS))
        subscribers = self.subscribers
        candles = self.candles[symbol]
        for fill in fills:
            candles.add(ts, fill.price, fill.qty, fill.side == "Buy")
        for category in CATEGORIES:
            # A stream nobody listens to is not advanced (it was most of the simulator's time: six
            # book streams a symbol, one usually read); it catches up when someone subscribes.
            for depth in DEPTHS:
                stream = self.books[(category, symbol, depth)]
                if subscribers.get((category, stream.topic)):
                    frame = stream.advance(top, ts, seq)
                    if frame is not None:
                        self._send(category, stream.topic, frame)
            if fills:
                topic = f"publicTrade.{symbol}"
                if subscribers.get((category, topic)):
                    self._send(category, topic, trade_frame(market, fills, ts, seq, self.trade_counter))
            ticker = self.tickers[(category, symbol)]
            if subscribers.get((category, ticker.topic)):
                frame = ticker.advance(ts, seq)
                if frame is not None:
                    self._send(category, ticker.topic, frame)
            for key, kline in self._kline_keys[(category, symbol)]:  # every step: a confirm follows the end
                if subscribers.get(key):
                    for frame in kline.advance(candles, ts):
                        self._send(category, kline.topic, frame)
        if fills:
            rows = trade_rows(market, fills, ts, seq, self.trade_counter)
            self.trades[symbol].extend({"execId": r["i"], "symbol": symbol, "price": r["p"], "size": r["v"],
                                        "side": r["S"], "time": str(ts), "isBlockTrade": False,
                                        "isRPITrade": False, "seq": str(seq)} for r in rows)
        self.trade_counter += len(fills)
        if self.binance is not None:
            self.binance.tick(symbol, ts)

    def _send(self, category: str, topic: str, frame: bytes) -> None:
        targets = self.subscribers.get((category, topic))
        if targets and self.config.lockstep:
            self.held.append((category, topic, frame))
        elif targets:
            broadcast(targets, frame.decode())
            self.stats["frames_sent"] += len(targets)

    async def _replay_loop(self) -> None:
        """Play recorded frames ({"t": ms since start, "category": c, "frame": text} per line),
        from the moment the first client subscribes."""
        while not any(self.subscribers.values()):
            await asyncio.sleep(0.02)
        started = asyncio.get_running_loop().time()
        with Path(self.config.replay_file).open("rb") as lines:
            for line in lines:
                entry = orjson.loads(line)
                due = started + entry["t"] / 1000 / self.config.replay_speed
                await asyncio.sleep(max(0.0, due - asyncio.get_running_loop().time()))
                frame = entry["frame"]
                topic = orjson.loads(frame).get("topic", "")
                self._send(entry.get("category", "linear"), topic, frame.encode())
        log.info("replay finished", extra={"file": self.config.replay_file})

    # ------------------------------------------------------------------ faults

    def inject(self, kind: str, symbol: str | None = None, seconds: float = 5.0, count: int = 1) -> dict[str, Any]:
        """Inject a fault now; returns what was done (also reachable as GET /sim/fault).

        Market faults act on `symbol` (default: all); private REST faults hit the next `count`
        requests."""
        if kind in PRIVATE_FAULTS:
            self.private.inject(kind, count)
            self.stats[f"fault_{kind}"] += 1
            return {"fault": kind, "count": count}
        symbols = [symbol] if symbol else list(self.symbols)
        if kind not in FAULTS or any(s not in self.symbols for s in symbols):
            raise ValueError(f"kind must be one of {FAULTS} and symbol one of {sorted(self.symbols)}")
        self.stats[f"fault_{kind}"] += 1
        ts = self.venue_ms()
        if kind == "gap":
            for (_, s, d), stream in self.books.items():
                if s in symbols and d > 1:
                    stream.pending_gap = True
            if self.binance is not None:
                self.binance.inject_gap(symbols)
        elif kind == "reset":
            for (category, s, _), stream in self.books.items():
                if s in symbols:
                    self._send(category, stream.topic, stream.reset(ts, self.seq[s]))
        elif kind == "malformed":
            for (_category, topic), targets in self.subscribers.items():
                if targets and any(topic.endswith(s) for s in symbols):
                    broadcast(targets, '{"topic": "' + topic + '", "type": "delta", "data": {"s": ')
        elif kind == "disconnect":  # every public stream, the Binance dialect's too
            binance = list(self.binance.combined) if self.binance is not None else []
            for connection in [*self.connections, *binance]:
                closing = asyncio.create_task(connection.close(1011, "simulated disconnect"))
                self._closing.add(closing)
                closing.add_done_callback(self._closing.discard)
        elif kind == "stall":
            self.stalled_until = self.clock() + seconds
        elif kind == "mute_pongs":
            self.pongs_muted_until = self.clock() + seconds
        return {"fault": kind, "symbols": symbols}

    def pongs_muted(self) -> bool:
        """True while the mute_pongs fault holds: the connection stays open and data still flows,
        but pings go unanswered, as from a venue whose session is half dead."""
        return self.clock() < self.pongs_muted_until

    # ------------------------------------------------------------------ websocket

    async def _connection(self, connection: ServerConnection) -> None:
        target = urlsplit(connection.request.path) if connection.request else urlsplit("")
        path = target.path
        if path == "/v5/private":
            await self.private_ws.serve(connection)
            return
        if self.binance is not None and self.binance.is_stream_path(path):
            await self.binance.serve(connection, path, target.query)
            return
        category = path.rsplit("/", 1)[-1]
        conn_id = str(uuid.uuid4())
        self.connections.add(connection)
        self.stats["connections"] += 1
        try:
            async for raw in connection:
                try:
                    replies = self.on_message(connection, category, conn_id, raw)
                except Exception:  # last resort: a bug here must answer, not drop the socket
                    self.stats["server_errors"] += 1
                    log.exception("public WS message failed")
                    replies = [self._ack(category, conn_id, "", "", False, "Server error")]
                for reply in replies:
                    await connection.send(reply)
                    self.stats["replies_sent"] += 1
        except ConnectionClosed:
            pass
        finally:
            self.connections.discard(connection)
            for targets in self.subscribers.values():
                targets.discard(connection)

    def on_message(self, connection: ServerConnection, category: str, conn_id: str,
                   raw: str | bytes) -> list[str]:
        """Replies to one client message: an ack (success or Bybit-style failure), then snapshots."""
        try:
            request = parse_body(WsOp, raw.encode() if isinstance(raw, str) else raw)
        except ParamsError as exc:
            self.stats["bad_requests"] += 1
            return [self._ack(category, conn_id, "", "", False, f"Invalid request: {exc}")]
        op, args = request.op, request.args
        req_id = str(request.req_id) if request.req_id is not None else ""
        if op == "ping":
            self.stats["pings"] += 1
            if self.pongs_muted():
                self.stats["pings_unanswered"] += 1
                return []
            return [self._ack(category, conn_id, req_id, "ping", True, "pong")]
        if op not in ("subscribe", "unsubscribe"):
            self.stats["bad_requests"] += 1
            return [self._ack(category, conn_id, req_id, op, False, f"Unsupported op: {op!r}")]
        if not args or not all(isinstance(a, str) for a in args):
            self.stats["bad_requests"] += 1
            return [self._ack(category, conn_id, req_id, op, False, "args must be a non-empty list of topics")]
        invalid = [str(a) for a in args if not self._valid_topic(str(a))]
        if invalid:
            self.stats["bad_requests"] += 1
            return [self._ack(category, conn_id, req_id, op, False, f"Invalid topic(s): {', '.join(invalid)}")]
        if op == "unsubscribe":
            for topic in args:
                self.subscribers[(category, str(topic))].discard(connection)
            return [self._ack(category, conn_id, req_id, op, True, "")]
        replies = [self._ack(category, conn_id, req_id, op, True, "subscribe" if category == "spot" else "")]
        ts = self.venue_ms()
        for topic in map(str, args):
            idle = not self.subscribers[(category, topic)]  # then the stream was not advanced
            self.subscribers[(category, topic)].add(connection)
            kind, *rest = topic.split(".")
            symbol = rest[-1]
            stream: BookStream | TickerStream | None = None
            if kind == "orderbook":
                stream = self.books[(category, symbol, int(rest[0]))]
            elif kind == "tickers":
                stream = self.tickers[(category, symbol)]
            if stream is not None:
                if idle:
                    stream.refresh()
                replies.append(stream.snapshot(ts, self.seq[symbol]).decode())
            elif kind == "kline":
                frame = self.klines[(category, symbol)][rest[0]].snapshot(self.candles[symbol], ts, idle)
                if frame is not None:
                    replies.append(frame.decode())
        return replies

    # ------------------------------------------------------------------ private websocket (private_ws.py)

    def deliver_private_reports(self) -> None:
        """Push the engine's pending reports to each authenticated, subscribed private connection."""
        reports, self.engine.reports = self.engine.reports, []
        if reports:
            self.private_ws.deliver(reports, self.venue_ms())

    def _valid_topic(self, topic: str) -> bool:
        parts = topic.split(".")
        if len(parts) == 3 and parts[0] == "orderbook":
            return parts[1].isdigit() and int(parts[1]) in DEPTHS and parts[2] in self.symbols
        if len(parts) == 3 and parts[0] == "kline":
            return parts[1] in BYBIT_SPANS and parts[2] in self.symbols
        return len(parts) == 2 and parts[0] in ("publicTrade", "tickers") and parts[1] in self.symbols

    @staticmethod
    def _ack(category: str, conn_id: str, req_id: str, op: str, success: bool, ret_msg: str) -> str:
        """The linear/spot ack shape of bybit-v5.md §1.2-1.3 (spot omits an empty req_id)."""
        reply: dict[str, Any] = {"success": success, "ret_msg": ret_msg, "conn_id": conn_id}
        if req_id or category != "spot":
            reply["req_id"] = req_id
        reply["op"] = op
        return orjson.dumps(reply).decode()

    # ------------------------------------------------------------------ http

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        """REST for anything that is not a WebSocket path; None lets the handshake go on."""
        url = urlsplit(request.path)
        if url.path in ("/v5/public/linear", "/v5/public/spot", "/v5/private"):
            return None
        if self.binance is not None and self.binance.is_stream_path(url.path):
            return None
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if url.path == "/sim/fault":
            try:
                result = RestResult(200, self.inject(query.get("kind", ""), query.get("symbol"),
                                                     float(query.get("seconds", 5)), int(query.get("count", 1))))
            except ValueError as exc:
                result = RestResult(400, {"error": str(exc)})
        elif url.path == "/sim/stats":
            result = RestResult(200, {**self.stats, "subscriptions": sum(len(s) for s in self.subscribers.values()),
                                      "open_connections": len(self.connections), "held": len(self.held),
                                      "venue_ms": self.venue_ms(), "requests": dict(self.private.requests)})
        elif url.path in ("/sim/step", "/sim/release"):
            try:
                body = (self.step(query["symbol"].split(",") if query.get("symbol") else list(self.symbols))
                        if url.path == "/sim/step" else self.release(int(query.get("count", 1))))
                result = RestResult(200, body)
            except ValueError as exc:
                result = RestResult(400, {"error": str(exc)})
        elif url.path == "/sim/ledger":
            result = RestResult(200, self.engine.ledger())
        elif url.path == "/sim/funding":
            self.settle_funding(self.venue_ms())
            result = RestResult(200, {"settled_at": self.venue_ms(), "next": self.next_funding_ms})
        elif url.path.startswith("/fapi/") and self.binance is not None:
            result = self.binance.rest(url.path, query)
        else:
            result = public_rest(self, url.path, query)
        response = connection.respond(result.status, orjson.dumps(result.body).decode())
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json"
        return response
