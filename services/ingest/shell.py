"""The ingest shell: Bybit V5 public WebSocket in, md.trades / md.book / md.tickers out, and the
venue's instruments-info into ref.instruments before the streams start (services/ingest/reference.py).

One connection per instance (instances split symbols by config). Pings every `ping_interval`;
no pong within `pong_timeout` of a ping, or no frame at all for `stale_after` seconds → reconnect
(a venue can keep streaming on a session it no longer answers; the pong is the proof of life).
Reconnects back off exponentially with jitter;
after `breaker_failures` failed connects in a row the circuit opens for `breaker_open_seconds`.
A book gap or crossed book → unsubscribe + subscribe for a fresh snapshot. Trades have no snapshot:
those printed while ingest was down or reconnecting are read from the venue's REST once the
subscription is acknowledged, and published before the live ones (services/ingest/resume.py).
A malformed frame is logged (first of each kind per connection), counted, and kept in `dlq`; the
connection goes on.
Ingest is a source, not a fold over the log: its books are rebuilt from the venue's snapshots.
Every send's delivery is watched (DeliveryWatch): a record the broker did not acknowledge stops
ingest with DeliveryFailed (counted in hean_produce_failures_total), so the process exits non-zero
and is restarted rather than going on with a hole in md.* that nobody sees. Ping and watchdog
tasks that fail are logged, counted and end the connection (which then reconnects).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import msgspec
import orjson
import websockets
from prometheus_client import Counter, Gauge
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from schemas.topics import CONTROL, DLQ, MD_BOOK, MD_TRADES, REF_INSTRUMENTS
from services.ingest.reference import InstrumentFeed, topic_exists
from services.ingest.resume import TradeGapFiller, read_published
from services.ingest.trades import TradeLedger
from services.runtime.bus import DeliveryWatch, dead_letter_raw, make_producer
from services.runtime.codec import encode
from services.runtime.errors import ConfigError, DecodeError
from services.runtime.metrics import ServiceMetrics
from services.runtime.settings import RuntimeSettings
from services.venues.binance.instruments import BinanceInstruments
from services.venues.binance.streams import stream_root
from services.venues.binance.trades import BinanceAggTrades
from services.venues.bybit.instruments import BybitInstruments
from services.venues.bybit.public import (
    BybitNormalizer,
    ping_message,
    public_topics,
    resubscribe_messages,
    subscribe_message,
)
from services.venues.bybit.trades import BybitRecentTrades
from services.venues.frames import MalformedFrame
from services.venues.heartbeat import verdict
from services.venues.port import InstrumentSource, TradeHistory

log = logging.getLogger(__name__)


class IngestConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Settings (env prefix INGEST_). `url` is real Bybit or the simulator: config only."""

    url: str = "ws://127.0.0.1:8801/v5/public/linear"
    # bybit (the V5 public stream at `url`) or binance (USDⓈ-M futures: the stream host at `url`,
    # e.g. wss://fstream.binance.com, whose /public and /market routes carry the combined streams,
    # depth snapshots from `rest_url`; services/ingest/binance.py)
    venue: str = "bybit"
    depth_speed: str = "100ms"
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    depth: int = 50
    trades: bool = True
    tickers: bool = True
    ping_interval: float = 20.0
    stale_after: float = 30.0
    pong_timeout: float = 10.0
    backoff_initial: float = 0.2
    backoff_max: float = 30.0
    breaker_failures: int = 8
    breaker_open_seconds: float = 30.0
    record_frames: str = ""
    # The venue's public REST, for instruments-info → ref.instruments (read before the streams
    # start, then every refresh): "" derives it from `url`, "off" publishes no reference data.
    rest_url: str = ""
    instruments_refresh_seconds: float = 300.0
    instruments_wait_seconds: float = 10.0
    # Trades missed while down or reconnecting, from the venue's REST at `rest_url` (needs `trades`
    # and a REST URL): read back what md.trades holds at start, fill on each connect — Bybit's newest
    # 1000 (recent-trade), Binance's aggTrades from the last published id + 1, at most
    # `trade_gap_max_pages` pages of 1000 per symbol (beyond: the newest page and a gap on control).
    trade_gap_fill: bool = True
    trade_gap_max_pages: int = 20

    def __post_init__(self) -> None:
        if not self.symbols:
            raise ConfigError("INGEST_SYMBOLS must name at least one symbol")
        if self.trade_gap_max_pages < 1:
            raise ConfigError(f"INGEST_TRADE_GAP_MAX_PAGES must be at least 1, was {self.trade_gap_max_pages}")
        if self.venue == "binance":
            self._check_binance()
            return
        if self.venue != "bybit":
            raise ConfigError(f"INGEST_VENUE must be bybit or binance, was {self.venue!r}")
        if self.depth not in (1, 50, 200, 1000):
            raise ConfigError(f"INGEST_DEPTH must be 1, 50, 200 or 1000, was {self.depth}")
        if not self.url.startswith(("ws://", "wss://")) or "/v5/public/" not in self.url:
            raise ConfigError(f"INGEST_URL must be a Bybit V5 public WebSocket URL, was {self.url!r}")
        if self.rest_url not in ("", "off") and not self.rest_url.startswith(("http://", "https://")):
            raise ConfigError(f"INGEST_REST_URL must be the venue's http(s) REST base URL, was {self.rest_url!r}")
        if self.instruments_refresh_seconds <= 0:
            raise ConfigError(f"INGEST_INSTRUMENTS_REFRESH_SECONDS must be positive, was "
                              f"{self.instruments_refresh_seconds}")

    def _check_binance(self) -> None:
        if self.depth not in (5, 10, 20, 50, 100, 500, 1000):
            raise ConfigError(f"INGEST_DEPTH (the depth snapshot's limit) must be 5, 10, 20, 50, 100, 500 or 1000 "
                              f"on binance, was {self.depth}")
        if not self.url.startswith(("ws://", "wss://")) or urlsplit(stream_root(self.url)).path not in ("", "/"):
            raise ConfigError(f"INGEST_URL must be Binance's stream host (wss://fstream.binance.com; …/stream is "
                              f"read as its host), was {self.url!r}")
        if self.rest_url == "off" or (self.rest_url and not self.rest_url.startswith(("http://", "https://"))):
            raise ConfigError(f"INGEST_REST_URL must be Binance's http(s) REST base URL (its depth snapshots start "
                              f"every book), was {self.rest_url!r}")
        if self.depth_speed not in ("100ms", "250ms", "500ms"):
            raise ConfigError(f"INGEST_DEPTH_SPEED must be 100ms, 250ms or 500ms, was {self.depth_speed!r}")

    @property
    def category(self) -> str:
        if self.venue == "binance":
            return "linear"  # USDⓈ-M futures are linear perpetuals
        return self.url.rstrip("/").rsplit("/", 1)[-1].split("?")[0]

    @property
    def public_rest_url(self) -> str:
        """The venue's public REST base URL (instruments-info, Binance's depth snapshots; "" when
        INGEST_REST_URL is "off"): the simulator serves it on its WebSocket port, and the venues'
        stream hosts have REST hosts beside them (stream.bybit.com → api.bybit.com,
        fstream.binance.com → fapi.binance.com)."""
        if self.rest_url:
            return "" if self.rest_url == "off" else self.rest_url
        parts = urlsplit(self.url)
        host = parts.netloc
        if host.startswith("fstream."):
            host = "fapi." + host[len("fstream."):]
        elif host.startswith("stream"):
            host = "api" + host[len("stream"):]
        return f"{'https' if parts.scheme == 'wss' else 'http'}://{host}"

    def topics(self) -> list[str]:
        return public_topics(self.symbols, self.depth, self.trades, self.tickers)


class IngestMetrics:
    """The runtime's metrics plus what only a WebSocket source has."""

    def __init__(self) -> None:
        self.base = ServiceMetrics("ingest")
        r = self.base.registry
        self.reconnects = Counter("hean_ws_reconnects_total", "WebSocket reconnects, by cause",
                                  ["service", "cause"], registry=r)
        self.frames = Counter("hean_ws_frames_total", "WebSocket frames received", ["service"], registry=r)
        self.malformed = Counter("hean_ws_malformed_total", "Malformed WebSocket frames", ["service"], registry=r)
        self.gaps = Counter("hean_book_gaps_total", "Book gaps or crossed books (resubscribed)",
                            ["service", "symbol"], registry=r)
        self.venue_errors = Counter("hean_ws_failed_acks_total", "Failure acks from the venue", ["service"],
                                    registry=r)
        self.instrument_failures = Counter("hean_instruments_failures_total",
                                           "instruments-info reads or publishes that failed (retried)", ["service"],
                                           registry=r)
        self.instrument_failures.labels("ingest")
        self.trades_filled = Counter("hean_ingest_trades_filled_total",
                                     "Trades the live stream missed, published from the venue's REST on a (re)connect",
                                     ["service", "symbol"], registry=r)
        self.trade_gaps = Counter("hean_ingest_trade_gaps_total",
                                  "Reconnects after which trades may be lost: the venue's recent trades did not reach "
                                  "back to the last one published, or could not be read", ["service", "symbol"],
                                  registry=r)
        self.breaker_open = Gauge("hean_ws_breaker_open", "1 while the reconnect circuit breaker is open",
                                  ["service"], registry=r)
        # The top of each published book, for the live view's venues side by side.
        self.best_bid = Gauge("hean_book_best_bid", "Best bid of the last published book event",
                              ["service", "venue", "symbol"], registry=r)
        self.best_ask = Gauge("hean_book_best_ask", "Best ask of the last published book event",
                              ["service", "venue", "symbol"], registry=r)
        for cause in ("closed", "connect_failed", "stale", "pong_timeout"):
            self.reconnects.labels("ingest", cause)
        for series in (self.frames, self.malformed, self.venue_errors):
            series.labels("ingest")
        self.breaker_open.labels("ingest").set(0)


class Ingest:
    """Runs one WebSocket connection's worth of symbols until `stop` is set."""

    def __init__(self, config: IngestConfig, settings: RuntimeSettings, metrics: IngestMetrics | None = None) -> None:
        self.config = config
        self.settings = settings
        self.metrics = metrics or IngestMetrics()
        for symbol in config.symbols:
            self.metrics.gaps.labels("ingest", symbol)
        self.trades: TradeLedger | None = None  # what md.trades holds of our symbols (gap fill on)
        self._filler: TradeGapFiller | None = None
        if config.trade_gap_fill and config.trades and config.public_rest_url:
            self.trades = TradeLedger()
            source: TradeHistory = (BinanceAggTrades(config.public_rest_url, config.trade_gap_max_pages)
                                    if config.venue == "binance" else
                                    BybitRecentTrades(config.public_rest_url, config.category))
            self._filler = TradeGapFiller(
                source, self.trades,
                on_filled=lambda symbol, n: self.metrics.trades_filled.labels("ingest", symbol).inc(n),
                on_gap=lambda symbol: self.metrics.trade_gaps.labels("ingest", symbol).inc())
            for symbol in config.symbols:
                self.metrics.trades_filled.labels("ingest", symbol)
                self.metrics.trade_gaps.labels("ingest", symbol)
        self._rest: httpx.AsyncClient | None = None
        self._frames = self.metrics.frames.labels("ingest")
        self.prefix = settings.topic_prefix
        self.connected = asyncio.Event()
        self.published = 0
        self._reference_ready = asyncio.Event()  # cleared while run() publishes the first rules
        self._reference_ready.set()
        self._failures = 0
        self._last_frame = 0.0
        self._ping_unanswered_since: float | None = None  # when the oldest unanswered ping went out
        self._out_counters: dict[str, Any] = {}
        self._top_gauges: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._recorder: Any = None
        self._record_started = 0.0
        failures = self.metrics.base.produce_failures.labels("ingest")
        self.delivery = DeliveryWatch(on_failure=lambda _error: failures.inc())

    async def run(self, stop: asyncio.Event) -> None:
        self.metrics.base.serve(self.settings.metrics_port)
        producer = make_producer(self.settings.kafka_bootstrap)
        await producer.start()
        if self.config.record_frames:
            self._recorder = Path(self.config.record_frames).open("ab")  # noqa: SIM115 - closed below
            self._record_started = time.monotonic()
        refresher: asyncio.Task[None] | None = None
        backoff = self.config.backoff_initial
        try:
            if self.trades is not None and self._filler is not None:
                self._rest = httpx.AsyncClient(timeout=10.0)
                read = await read_published(self.settings.kafka_bootstrap, self.prefix + MD_TRADES,
                                            self.config.symbols, self.trades, venue=self.config.venue)
                log.info("published trades read back", extra={"trades": read})
                if not await topic_exists(producer, self.settings.kafka_bootstrap, self.prefix + CONTROL):
                    self._filler.publish_gaps = False
                    log.warning("no topic %s; trade gaps are counted and logged but not published (create it: "
                                "hean topics create)", self.prefix + CONTROL)
            self._reference_ready.clear()  # market data waits for the rules (see _reference_data)
            refresher = asyncio.create_task(self._reference_data(producer, stop), name="instruments")
            self.metrics.base.up.labels("ingest").set(1)
            while not stop.is_set():
                cause = await self._connection(producer, stop)
                if stop.is_set():
                    break
                self.metrics.reconnects.labels("ingest", cause).inc()
                self._failures = self._failures + 1 if cause == "connect_failed" else 0
                if self._failures >= self.config.breaker_failures:
                    log.warning("circuit open: %s failed connects in a row; pausing %s s",
                                self._failures, self.config.breaker_open_seconds)
                    self.metrics.breaker_open.labels("ingest").set(1)
                    await _sleep_or_stop(stop, self.config.breaker_open_seconds)
                    self.metrics.breaker_open.labels("ingest").set(0)
                    self._failures = 0
                    continue
                backoff = self.config.backoff_initial if cause != "connect_failed" else min(
                    self.config.backoff_max, backoff * 2)
                await _sleep_or_stop(stop, backoff * random.uniform(0.5, 1.5))
        finally:
            self.metrics.base.up.labels("ingest").set(0)
            if refresher is not None:
                refresher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await refresher
            await producer.flush()
            await producer.stop()
            if self._rest is not None:
                await self._rest.aclose()
            if self._recorder is not None:
                self._recorder.close()
        self.delivery.check()  # a stop must not hide records the broker never took

    async def _reference_data(self, producer: Any, stop: asyncio.Event) -> None:
        """Publish the venue's instruments until `stop`. The streams connect meanwhile, but their
        events wait (in `publish`) for the first publish, up to `instruments_wait_seconds`, so a
        symbol's rules reach the log before its first book; with no feed they wait for nothing."""
        config = self.config
        rest_url = config.public_rest_url
        failures = self.metrics.instrument_failures.labels("ingest")
        try:
            if not rest_url:
                return
            if not await topic_exists(producer, self.settings.kafka_bootstrap, self.prefix + REF_INSTRUMENTS):
                log.warning("no topic %s; no reference data published (create it: hean topics create)",
                            self.prefix + REF_INSTRUMENTS)
                return
            source: InstrumentSource = (BinanceInstruments(rest_url) if config.venue == "binance"
                                        else BybitInstruments(rest_url, config.category))
            feed = InstrumentFeed(source, config.symbols, self.prefix,
                                  config.instruments_refresh_seconds, on_failure=failures.inc)
            gate = asyncio.create_task(self._open_after(feed.first, config.instruments_wait_seconds))
            try:
                await feed.run(producer, stop)
            finally:
                gate.cancel()
        except Exception:  # the market data must not stop for reference data: said, counted, given up
            failures.inc()
            log.exception("reference data stopped; ref.instruments is no longer kept current")
        finally:
            self._reference_ready.set()

    async def _open_after(self, first: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(first.wait(), seconds)
        self._reference_ready.set()

    async def _connection(self, producer: Any, stop: asyncio.Event) -> str:
        """One connection's life; returns why it ended (the reconnect cause)."""
        config = self.config
        try:
            ws = await websockets.connect(config.url, ping_interval=None, max_size=2**24, open_timeout=10)
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            log.warning("connect to %s failed: %s", config.url, exc)
            return "connect_failed"
        normalizer = BybitNormalizer(config.category)
        logged: set[str] = set()
        self._last_frame = time.monotonic()
        self._ping_unanswered_since = None
        ended = {"cause": "closed"}
        pinger = asyncio.create_task(self._ping(ws), name="ping")
        watchdog = asyncio.create_task(self._watch(ws, stop, ended), name="watchdog")
        for task in (pinger, watchdog):
            task.add_done_callback(lambda t: self._task_ended(t, ws, ended))
        try:
            await ws.send(subscribe_message(config.topics()))
            log.info("connected", extra={"url": config.url, "topics": len(config.topics())})
            self.connected.set()
            self.metrics.base.ready.labels("ingest").set(1)  # connected and subscribed
            try:
                async for raw in ws:
                    self._last_frame = time.monotonic()
                    await self._on_frame(raw, normalizer, ws, producer, logged)
            except ConnectionClosed as exc:
                log.warning("connection closed: %s", exc)
            else:
                if ended["cause"] == "closed":
                    log.warning("connection closed by the venue")
            return ended["cause"]
        finally:
            self.connected.clear()
            self.metrics.base.ready.labels("ingest").set(0)
            pinger.cancel()
            watchdog.cancel()
            with contextlib.suppress(Exception):
                await ws.close()

    def _task_ended(self, task: asyncio.Task[None], ws: Any, ended: dict[str, str]) -> None:
        """A helper task that failed is logged and counted, and ends the connection: without its
        ping or its watchdog a connection could go stale unseen."""
        if task.cancelled() or task.exception() is None:
            return
        log.error("ingest's %s task failed; reconnecting: %r", task.get_name(), task.exception())
        self.metrics.base.task_failures.labels("ingest", task.get_name()).inc()
        ended["cause"] = "closed"
        asyncio.get_running_loop().create_task(ws.close())

    async def _watch(self, ws: Any, stop: asyncio.Event, ended: dict[str, str],
                     last_frame: Callable[[], float] | None = None) -> None:
        """Close the connection on stop, or when no frame came for `stale_after` seconds (on this
        connection, when `last_frame` gives its own time; else on the instance's one).

        A watchdog instead of a timeout per receive keeps the per-frame path free of task creation.
        """
        stale_after = self.config.stale_after
        while True:
            try:
                await asyncio.wait_for(stop.wait(), min(1.0, stale_after / 4))
                ended["cause"] = "stopped"
                await ws.close()
                return
            except TimeoutError:
                pass
            last = last_frame() if last_frame is not None else self._last_frame  # a connection's own, if it has one
            cause = verdict(time.monotonic(), last, self._ping_unanswered_since, stale_after, self.config.pong_timeout)
            if cause is not None:
                if cause == "stale":
                    log.warning("no frame for %s s; reconnecting", stale_after)
                else:
                    log.warning("no pong for %s s after a ping; reconnecting", self.config.pong_timeout)
                ended["cause"] = cause
                await ws.close()
                return

    async def _on_frame(self, raw: str | bytes, normalizer: BybitNormalizer, ws: Any, producer: Any,
                        logged: set[str]) -> None:
        """Handle one frame; it is counted once its events are handed to the producer, so a frame
        count equal to the venue's sent count means every event of those frames was sent."""
        try:
            await self._handle_frame(raw, normalizer, ws, producer, logged)
        finally:
            self._frames.inc()
        self.delivery.check()

    async def _handle_frame(self, raw: str | bytes, normalizer: BybitNormalizer, ws: Any, producer: Any,
                            logged: set[str]) -> None:
        recv_ns = time.time_ns()
        if self._recorder is not None:
            text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
            self._recorder.write(orjson.dumps({"t": int((time.monotonic() - self._record_started) * 1000),
                                               "category": self.config.category, "frame": text}) + b"\n")
        try:
            result = normalizer.on_frame(raw, recv_ns)
        except MalformedFrame as exc:
            self.metrics.malformed.labels("ingest").inc()
            kind = str(exc).split(":", 1)[0]
            if kind not in logged:
                logged.add(kind)
                log.warning("malformed frame skipped (further ones of this kind are only counted): %s; frame %r",
                            exc, raw[:200])
            await self._dead_letter(producer, raw, exc, recv_ns)
            return
        if result.control is not None and result.control.get("op") in ("ping", "pong"):
            self._ping_unanswered_since = None  # linear answers a ping with op "ping", spot with "pong"
        if result.control is not None and result.control.get("success") is False:
            self.metrics.venue_errors.labels("ingest").inc()
            log.warning("venue refused %s: %s", result.control.get("op"), result.control.get("ret_msg"))
        for topic in result.resync:
            self.metrics.gaps.labels("ingest", topic.rsplit(".", 1)[-1]).inc()
            for message in resubscribe_messages(topic):
                await ws.send(message)
        if self._filler is not None and self._rest is not None and result.control is not None \
                and result.control.get("req_id") == "hean-sub" and result.control.get("success"):
            # Subscribed: every later trade comes live, every earlier one is in the venue's page.
            # Frames wait in the socket meanwhile, so the filled trades precede the live ones.
            filled = await self._filler.fill(self._rest, self.config.symbols)
            if filled:
                await self.publish(producer, filled)
        if result.events:
            events = self.trades.admit(result.events) if self.trades is not None else result.events
            if events:
                await self.publish(producer, events)

    async def publish(self, producer: Any, events: list[tuple[str, str, Any]]) -> None:
        """Send (topic, key, event) triples in order, each delivery watched and counted.

        Per-event send: the producer's accumulator (linger) batches them across frames; a closed
        batch per frame would cost one produce request per frame."""
        if not self._reference_ready.is_set():
            await self._reference_ready.wait()
        counters = self._out_counters
        watch = self.delivery.watch
        for topic, key, event in events:
            watch(await producer.send(self.prefix + topic, encode(event), key=key.encode()))
            counter = counters.get(topic)
            if counter is None:
                counter = counters[topic] = self.metrics.base.events_out.labels("ingest", self.prefix + topic)
            counter.inc()
            if topic == MD_BOOK and event.best_bid is not None and event.best_ask is not None:
                self._top(event.venue, event.symbol, event.best_bid[0], event.best_ask[0])
        self.published += len(events)

    def _top(self, venue: str, symbol: str, bid: Decimal, ask: Decimal) -> None:
        gauges = self._top_gauges.get((venue, symbol))
        if gauges is None:
            gauges = self._top_gauges[(venue, symbol)] = (self.metrics.best_bid.labels("ingest", venue, symbol),
                                                          self.metrics.best_ask.labels("ingest", venue, symbol))
        gauges[0].set(float(bid))
        gauges[1].set(float(ask))

    async def _dead_letter(self, producer: Any, raw: str | bytes, exc: DecodeError, recv_ns: int) -> None:
        payload = raw.encode() if isinstance(raw, str) else raw
        topic, key, value = dead_letter_raw("ingest", f"{self.config.venue}.ws.{self.config.category}", exc.reason,
                                            str(exc), payload, recv_ns, self.prefix + DLQ)
        self.delivery.watch(await producer.send(topic, value, key=key))
        self.metrics.base.dlq.labels("ingest", exc.reason).inc()

    async def _ping(self, ws: Any) -> None:
        """Application-level ping every ping_interval (bybit-v5.md §1.3 recommends 20 s)."""
        n = 0
        with contextlib.suppress(ConnectionClosed, asyncio.CancelledError):
            while True:
                await asyncio.sleep(self.config.ping_interval)
                n += 1
                if self._ping_unanswered_since is None:  # the oldest unanswered ping sets the deadline
                    self._ping_unanswered_since = time.monotonic()
                await ws.send(ping_message(n))


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
