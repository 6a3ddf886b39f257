"""The local stack's plan (which processes, in which order, with which settings) and its run loop.

`venue` picks the exchange: the bundled simulator (default), or Bybit's testnet or live venue, where
no simulator runs, ingest and execution take the venue's URLs, and the keys must be real
(EXECUTION_API_KEY / EXECUTION_API_SECRET from the environment, never written to the plan's files).
Ports are picked free at start (simulator, every /metrics) and handed to the children by env, so
`hean up` never collides with a stray process; the metrics targets are written for a local
Prometheus (`infra/prometheus/local.yml` reads them through file_sd).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson

from services.runtime.bus import ensure_topics
from services.supervisor.observe import LogView, Samples, scrape
from services.supervisor.process import Child
from services.venues.bybit.endpoints import VENUES, credential_problem

# Start order: the venue, then the services that consume what others produce, ingest last (the
# source), so nothing misses its first events. Stopped in reverse.
ORDER = ("exchange-sim", "accounting", "risk", "execution", "algos", "strategy", "recorder", "ingest")
HAS_METRICS = frozenset(ORDER) - {"exchange-sim"}
# How each service scales in `hean up --scale NAME=N`: strategy by partition (one consumer group),
# execution by standby (one active per account, the rest wait on the lease), ingest by symbol set
# (instance i takes every N-th symbol). Risk and accounting scale by account (HEAN_ACCOUNTS), and
# `hean up` trades one account; the recorder's chDB store is opened by one process.
BINANCE_STREAM = "wss://fstream.binance.com"  # USDⓈ-M futures, public: its /public and /market routes
SCALES_BY = {"strategy": "partition", "execution": "standby", "ingest": "symbol set"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class StackConfig:
    """What `hean up` runs; defaults are the local stack of `hean infra up`."""

    home: Path
    bootstrap: str = "127.0.0.1:9092"
    redis_url: str = "redis://127.0.0.1:6379/0"
    prefix: str = ""
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    market_rate: float = 20.0
    recorder: bool = True
    recorder_store: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)
    scale: dict[str, int] = field(default_factory=dict)  # service → instances (default 1 each)
    venue: str = "sim"  # sim (the bundled simulator) or a real venue of VENUES
    binance: bool = False  # also Binance USDⓈ-M market data (the simulator's dialect, or Binance with a real venue)

    def __post_init__(self) -> None:
        if not (0 < self.market_rate <= 10_000):  # also refuses NaN
            raise ValueError(f"--market-rate {self.market_rate}: the simulated market's events per second per "
                             "symbol must be above 0 and at most 10000")
        if self.venue != "sim" and self.venue not in VENUES:
            raise ValueError(f"--venue {self.venue!r}: known venues are sim, {', '.join(VENUES)}")
        if self.venue != "sim":
            env = {**os.environ, **self.extra_env}
            for name in ("EXECUTION_API_KEY", "EXECUTION_API_SECRET"):
                problem = credential_problem(name, env.get(name, ""))
                if problem is not None:
                    raise ValueError(f"--venue {self.venue}: {problem}; export the venue's API key and secret as "
                                     "EXECUTION_API_KEY and EXECUTION_API_SECRET (docs/REAL-VENUE.md)")
        for name, count in self.scale.items():
            if name not in ORDER:
                raise ValueError(f"--scale {name}: no such service; known: {', '.join(ORDER)}")
            if count < 1:
                raise ValueError(f"--scale {name}={count}: at least one instance")
            if count > 1 and name not in SCALES_BY:
                how = ("scales by account (HEAN_ACCOUNTS per instance) and hean up trades one account"
                       if name in ("risk", "accounting") else "runs as one process")
                raise ValueError(f"--scale {name}={count}: {name} {how}; scalable here: "
                                 f"{', '.join(f'{k} (by {v})' for k, v in SCALES_BY.items())}")
        if self.scale.get("ingest", 1) > len(self.symbols):
            raise ValueError(f"--scale ingest={self.scale['ingest']}: more instances than symbols {self.symbols}")


@dataclass
class Service:
    child: Child
    metrics_port: int | None
    samples: Samples = field(default_factory=Samples)


def venue_state_file(config: StackConfig) -> Path:
    """Where the session's simulator keeps its venue between runs: a session (topic prefix) has
    one venue, so continuing the session continues its orders, positions and balances."""
    session = config.prefix.rstrip(".") or "default"
    return config.home / "sessions" / session / "exchange-sim.state"


def plan(config: StackConfig) -> dict[str, Service]:
    """The children with their argv and env; ports chosen now."""
    ws_port, rest_port = free_port(), free_port()
    symbols = ",".join(config.symbols)
    common = {"HEAN_KAFKA_BOOTSTRAP": config.bootstrap, "HEAN_REDIS_URL": config.redis_url,
              "HEAN_TOPIC_PREFIX": config.prefix, "HEAN_HOME": str(config.home), "HEAN_LOG_LEVEL": "INFO"}
    real = VENUES.get(config.venue)
    own = {
        "exchange-sim": {"EXCHANGE_SIM_PORT": str(ws_port), "EXCHANGE_SIM_REST_PORT": str(rest_port),
                         "EXCHANGE_SIM_SYMBOLS": symbols, "EXCHANGE_SIM_RATE": str(config.market_rate),
                         "EXCHANGE_SIM_STATE_FILE": str(venue_state_file(config))},
        "ingest": {"INGEST_URL": f"ws://127.0.0.1:{ws_port}/v5/public/linear", "INGEST_SYMBOLS": symbols},
        "execution": {"EXECUTION_REST_URL": f"http://127.0.0.1:{rest_port}",
                      "EXECUTION_WS_URL": f"ws://127.0.0.1:{ws_port}/v5/private"},
        "risk": {"RISK_RATE_PER_SECOND": "8"},  # under the venue's 10 orders/s, so no order waits on 10006
        "recorder": {"RECORDER_STORE": config.recorder_store} if config.recorder_store else {},
    }
    if real is not None:  # a real venue: no simulator, its URLs; the keys come from the user's environment
        own["ingest"]["INGEST_URL"] = real.public_ws
        own["execution"] = {"EXECUTION_REST_URL": real.rest, "EXECUTION_WS_URL": real.private_ws}
    if config.binance:
        own["exchange-sim"]["EXCHANGE_SIM_BINANCE"] = "true"
    services: dict[str, Service] = {}
    for name in ORDER:
        if (name == "recorder" and not config.recorder) or (name == "exchange-sim" and real is not None):
            continue
        count = config.scale.get(name, 1)
        for i in range(count):
            key = name if i == 0 else f"{name}-{i + 1}"
            port = free_port() if name in HAS_METRICS else None
            argv = [sys.executable, "-m", "services.cli.main", "run", name]
            if count > 1:
                argv += ["--instance", str(i)]
            if port is not None:
                argv += ["--metrics-port", str(port)]
            env = {**common, **own.get(name, {}), **config.extra_env}
            if name == "ingest" and count > 1:
                env["INGEST_SYMBOLS"] = ",".join(config.symbols[i::count])
            services[key] = Service(Child(key, argv, env, config.home / "logs"), port)
    if config.binance:  # market data only: recorded and shown beside Bybit's, not traded (domain/venues.py)
        port = free_port()
        url = BINANCE_STREAM if real is not None else f"ws://127.0.0.1:{ws_port}"
        env = {**common, "INGEST_VENUE": "binance", "INGEST_URL": url, "INGEST_SYMBOLS": symbols,
               "INGEST_DEPTH": "1000", **config.extra_env}
        argv = [sys.executable, "-m", "services.cli.main", "run", "ingest", "--instance", "binance",
                "--metrics-port", str(port)]
        services["ingest-binance"] = Service(Child("ingest-binance", argv, env, config.home / "logs"), port)
    return services


def kind_of(key: str) -> str:
    """The service a child is an instance of ("strategy-2" → "strategy")."""
    name, _, number = key.rpartition("-")
    return name if number.isdigit() and name in ORDER else key


def write_prometheus_targets(home: Path, services: dict[str, Service]) -> Path:
    """file_sd targets for infra/prometheus/local.yml: one job label per service."""
    targets = [{"targets": [f"127.0.0.1:{s.metrics_port}"], "labels": {"job": name}}
               for name, s in services.items() if s.metrics_port is not None]
    path = home / "prometheus-targets.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(targets, option=orjson.OPT_INDENT_2))
    return path


async def wait_for_port(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return True
        await asyncio.sleep(0.1)
    return False


class Stack:
    """Runs the plan until stopped; `observe()` refreshes what the view shows."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.services = plan(config)
        self.log = LogView(config.bootstrap, config.prefix)
        self.http = httpx.AsyncClient()
        self.started = time.monotonic()
        self.final: dict[str, bool] | None = None  # health when the run ended, kept for the summary

    async def start(self) -> None:
        await ensure_topics(self.config.bootstrap, prefix=self.config.prefix)
        await self.log.start()
        write_prometheus_targets(self.config.home, self.services)
        for name, service in self.services.items():
            if name == "ingest":  # the first tick is published only when its readers hold their partitions
                await self.wait_ready(self.readers())
            await service.child.start()
            if name == "exchange-sim":
                port = int(service.child.env["EXCHANGE_SIM_PORT"])
                if not await wait_for_port(port, 30):
                    raise RuntimeError(f"the exchange simulator did not open port {port}; see {service.child.log_path}")

    def samples_of(self, kind: str) -> Samples:
        """The last scrape of every instance of `kind`, as one: totals and histograms sum over them."""
        merged = Samples(ok=False)
        for key, service in self.services.items():
            if kind_of(key) == kind:
                merged.ok = merged.ok or service.samples.ok
                for name, rows in service.samples.values.items():
                    merged.values.setdefault(name, []).extend(rows)
        return merged

    def readers(self) -> list[str]:
        """The services the first tick waits for: every consumer of the log, not the market-data
        sources themselves (ingest instances start after this wait, so they cannot be ready yet)."""
        return [n for n, s in self.services.items()
                if s.metrics_port and n != "ingest" and not n.startswith("ingest-")]

    async def wait_ready(self, names: list[str], timeout: float = 30.0) -> list[str]:
        """Wait until each service reports hean_ready (it holds its input partitions); returns the
        ones that did not within `timeout`. Why: ticks published while the consumer groups are
        still joining wait for the joins, and the live view's latencies would start at seconds."""
        waiting = sorted(names)
        deadline = time.monotonic() + timeout
        while waiting and time.monotonic() < deadline:
            await self._scrape(waiting)
            # Of the executors one is active and the rest stand by on the lease (hean_ready 0): the
            # kind is ready when one instance is.
            ready_kinds = {kind_of(n) for n in names if self.services[n].samples.total("hean_ready") >= 1}
            waiting = [n for n in waiting if self.services[n].samples.total("hean_ready") < 1
                       and not (kind_of(n) == "execution" and "execution" in ready_kinds)]
            if waiting:
                await asyncio.sleep(0.2)
        return waiting

    async def observe(self) -> None:
        await self._scrape(list(self.services))
        with contextlib.suppress(Exception):  # a broker hiccup must not stop the view
            await self.log.refresh()

    async def _scrape(self, names: list[str]) -> None:
        """Each named service's /metrics, into its `samples`."""
        services = [self.services[n] for n in names]
        results = await asyncio.gather(*(scrape(self.http, s.metrics_port) for s in services))
        for service, samples in zip(services, results, strict=True):
            service.samples = samples

    def healthy(self, name: str) -> bool:
        if self.final is not None:
            return self.final[name]
        service = self.services[name]
        if not service.child.running:
            return False
        if service.metrics_port is None:
            return True
        return service.samples.ok and service.samples.total("hean_up") >= 1

    async def stop(self) -> None:
        """Stop the market-data sources first (no new ticks), then every trading service at once (each
        one's graceful stop is a snapshot and a group leave, ~1 s: one after the other took ~10 s of
        every Ctrl-C), and the venue last, so executors never lose it mid-stop."""
        sources = [n for n in self.services if n == "ingest" or n.startswith("ingest-")]  # ingest-2, ingest-binance
        venue = [n for n in self.services if n == "exchange-sim"]
        waves = (sources, [n for n in self.services if n not in sources and n not in venue], venue)
        for wave in waves:
            await asyncio.gather(*(self.services[n].child.stop() for n in wave))
        await self.log.close()
        await self.http.aclose()


async def run_stack(config: StackConfig, duration: float, render: Callable[[Stack], None],
                    interval: float = 1.0, stop: asyncio.Event | None = None) -> tuple[Stack, bool]:
    """Start everything, call `render(stack)` each interval until `stop` (default: Ctrl-C or
    SIGTERM) or `duration`, stop it; returns the stack (with its last observations) and whether
    every service was healthy at the end."""
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    stack = Stack(config)
    try:
        await stack.start()
        deadline = time.monotonic() + duration if duration > 0 else None
        while not stop.is_set():
            await stack.observe()
            render(stack)
            if deadline is not None and time.monotonic() >= deadline:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
        await stack.observe()
        stack.final = {name: stack.healthy(name) for name in stack.services}
        healthy = all(stack.final.values())
        render(stack)
        return stack, healthy
    finally:
        await stack.stop()
