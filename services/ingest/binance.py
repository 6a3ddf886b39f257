"""Ingest for Binance USDⓈ-M futures public market data: the same shell, another connection.

Everything but the connection is the Bybit ingest's (`Ingest`: producer, delivery watch, reconnect
with backoff and breaker, dead letters, metrics); what differs is how Binance is read:
  - a combined-stream connection per routed endpoint of `INGEST_URL` (wss://fstream.binance.com):
    /public/stream?streams=… for diff depth and bookTicker, /market/stream?streams=… for aggTrade
    (since 2026-04-23 Binance's unrouted /stream acknowledges aggTrade and never sends it); they
    live and reconnect together; heartbeats are WebSocket pings (Binance answers them at the
    protocol level): no pong within `pong_timeout` → reconnect, cause pong_timeout;
  - books need a REST snapshot (/fapi/v1/depth at `INGEST_REST_URL`, by default the stream host's REST
    twin) to start and after every gap; the sync rules live in services/venues/binance/depth.py.
    A snapshot fetch runs beside the stream,
    and one lock keeps "normalize + send" whole, so a symbol's snapshot event always precedes the
    deltas that chain onto it in md.book;
  - a failed snapshot fetch is logged and counted (hean_ws_failed_acks_total) and asked again on the
    next update; a malformed frame or snapshot is dead-lettered with source binance.ws.linear;
  - trades missed while down or reconnecting: once connected (the streams are subscribed by the
    URL), and before any frame is read, the aggregate trades after the last published id are read
    from /fapi/v1/aggTrades and published (services/ingest/resume.py); the live aggTrades that
    repeat them are dropped by id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import httpx
import orjson
import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from services.ingest.shell import Ingest
from services.venues.binance.streams import (
    DEPTH_PATH,
    BinanceNormalizer,
    depth_params,
    routed_stream_urls,
    stream_names,
)
from services.venues.frames import FeedResult, MalformedFrame

log = logging.getLogger(__name__)
RETRY_SNAPSHOT_SECONDS = 0.5
READER_GRACE_SECONDS = 30.0  # for a reader to finish its frame (a send under back-pressure) once closed


class BinanceIngest(Ingest):
    """`Ingest` with Binance's connection: combined streams plus REST depth snapshots."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock = asyncio.Lock()
        self.snapshots_fetched = 0

    async def _connection(self, producer: Any, stop: asyncio.Event) -> str:
        """One term of connections: a combined stream on each routed endpoint that carries a wanted
        stream (/public the books, /market the aggregate trades), read side by side into one
        normalizer; when one ends, all end and the caller reconnects them together."""
        config = self.config
        names = stream_names(config.symbols, config.depth_speed, config.trades, config.tickers)
        sockets: list[Any] = []
        try:
            for url in routed_stream_urls(config.url, names):
                sockets.append(await websockets.connect(url, ping_interval=config.ping_interval,
                                                        ping_timeout=config.pong_timeout, max_size=2**24,
                                                        open_timeout=10))
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            log.warning("connect to %s failed: %s", config.url, exc)
            for ws in sockets:
                with contextlib.suppress(Exception):
                    await ws.close()
            return "connect_failed"
        normalizer = BinanceNormalizer(config.symbols, config.depth)
        self._ping_unanswered_since = None  # pings are the protocol's here (websockets keeps them)
        ended = {"cause": "closed"}
        # Each connection is judged by its own frames: the books' 100 ms updates on /public must not
        # keep a /market connection that stopped sending trades looking alive.
        last_frames = [time.monotonic()] * len(sockets)
        watchdogs = []
        for i, ws in enumerate(sockets):
            watchdog = asyncio.create_task(self._watch(ws, stop, ended, lambda i=i: last_frames[i]), name="watchdog")
            watchdog.add_done_callback(lambda t, ws=ws: self._task_ended(t, ws, ended))
            watchdogs.append(watchdog)
        fetches: dict[str, asyncio.Task[None]] = {}
        readers: list[asyncio.Task[None]] = []
        async with httpx.AsyncClient(base_url=config.public_rest_url, timeout=10) as http:
            try:
                log.info("connected", extra={"url": config.url, "streams": len(names), "connections": len(sockets)})
                self.connected.set()
                self.metrics.base.ready.labels("ingest").set(1)
                if self._filler is not None and self._rest is not None:
                    # Frames wait in the sockets meanwhile, so the filled trades precede the live ones.
                    async with self._lock:
                        filled = await self._filler.fill(self._rest, config.symbols)
                        if filled:
                            await self.publish(producer, filled)
                readers = [asyncio.create_task(self._read(ws, normalizer, producer, http, fetches, ended,
                                                          last_frames, i), name=f"binance-read-{i}")
                           for i, ws in enumerate(sockets)]
                done, _ = await asyncio.wait(readers, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if (failure := task.exception()) is not None:
                        raise failure  # the caller's (a send that failed, say): as from one connection
                return ended["cause"]
            finally:
                self.connected.clear()
                self.metrics.base.ready.labels("ingest").set(0)
                for watchdog in watchdogs:
                    watchdog.cancel()
                for ws in sockets:
                    with contextlib.suppress(Exception):
                        await ws.close()
                # The readers end with their closed sockets, each after the frame in hand: one
                # cancelled inside a send would lose trades the ledger already counts as published.
                if readers:
                    _, stuck = await asyncio.wait(readers, timeout=READER_GRACE_SECONDS)
                    if stuck:
                        log.error("%d Binance readers still busy %s s after their sockets closed; cancelled",
                                  len(stuck), READER_GRACE_SECONDS)
                for task in (*readers, *fetches.values()):
                    task.cancel()
                for task in (*readers, *fetches.values()):
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task

    async def _read(self, ws: Any, normalizer: BinanceNormalizer, producer: Any, http: httpx.AsyncClient,
                    fetches: dict[str, asyncio.Task[None]], ended: dict[str, str], last_frames: list[float],
                    index: int) -> None:
        """Every frame of one connection, until it closes."""
        try:
            async for raw in ws:
                last_frames[index] = time.monotonic()
                try:
                    await self._binance_frame(raw, normalizer, producer, http, fetches)
                finally:
                    self._frames.inc()
                self.delivery.check()
        except ConnectionClosed as exc:
            if exc.rcvd is None and exc.sent is not None and exc.sent.code == 1011:
                ended["cause"] = "pong_timeout"  # websockets' keepalive gave up on the pong
                log.warning("no pong within %s s; reconnecting", self.config.pong_timeout)
            else:
                log.warning("connection closed: %s", exc)

    async def _binance_frame(self, raw: str | bytes, normalizer: BinanceNormalizer, producer: Any,
                             http: httpx.AsyncClient, fetches: dict[str, asyncio.Task[None]]) -> None:
        recv_ns = time.time_ns()
        async with self._lock:
            try:
                result = normalizer.on_frame(raw, recv_ns)
            except MalformedFrame as exc:
                self.metrics.malformed.labels("ingest").inc()
                log.warning("malformed frame skipped: %s; frame %r", exc, raw[:200])
                await self._dead_letter(producer, raw, exc, recv_ns)
                return
            await self._settle(result, normalizer, producer, http, fetches)

    async def _settle(self, result: FeedResult, normalizer: BinanceNormalizer, producer: Any,
                      http: httpx.AsyncClient, fetches: dict[str, asyncio.Task[None]]) -> None:
        """Publish what a frame or snapshot produced; start the snapshot fetches it asks for."""
        if result.control is not None and ("code" in result.control or "error" in result.control):
            self.metrics.venue_errors.labels("ingest").inc()
            log.warning("venue refused a request: %s", result.control)
        if result.gaps:
            log.warning("book out of sync, resynchronising from a new snapshot: %s", "; ".join(result.reasons))
            for symbol in result.resync:
                self.metrics.gaps.labels("ingest", symbol).inc()
        events = self.trades.admit(result.events) if self.trades is not None else result.events
        if events:
            await self.publish(producer, events)
        for symbol in result.resync:
            running = fetches.get(symbol)
            if running is None or running.done():
                delay = RETRY_SNAPSHOT_SECONDS if result.gaps else 0.0
                fetches[symbol] = asyncio.create_task(self._snapshot(symbol, delay, normalizer, producer, http,
                                                                     fetches), name=f"snapshot-{symbol}")

    async def _snapshot(self, symbol: str, delay: float, normalizer: BinanceNormalizer, producer: Any,
                        http: httpx.AsyncClient, fetches: dict[str, asyncio.Task[None]]) -> None:
        """Fetch one depth snapshot and apply it (with what was buffered meanwhile)."""
        if delay:
            await asyncio.sleep(delay)  # a fresh gap: give the stream a moment to carry the events past it
        try:
            response = await http.get(DEPTH_PATH, params=depth_params(symbol, self.config.depth))
            payload = orjson.loads(response.content)
            if response.status_code != 200:
                raise RuntimeError(f"HTTP {response.status_code}: {payload}")
        except (httpx.HTTPError, orjson.JSONDecodeError, RuntimeError) as exc:
            self.metrics.venue_errors.labels("ingest").inc()
            log.warning("depth snapshot of %s failed (asked again on the next update): %s", symbol, exc)
            normalizer.snapshot_failed(symbol)
            return
        recv_ns = time.time_ns()
        async with self._lock:
            self.snapshots_fetched += 1
            try:
                result = normalizer.on_snapshot(symbol, payload, recv_ns)
            except MalformedFrame as exc:
                self.metrics.malformed.labels("ingest").inc()
                normalizer.snapshot_failed(symbol)
                await self._dead_letter(producer, response.content, exc, recv_ns)
                return
            fetches.pop(symbol, None)  # done: a gap in what it applied may start the next one
            await self._settle(result, normalizer, producer, http, fetches)
