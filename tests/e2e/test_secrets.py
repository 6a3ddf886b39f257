"""Secrets never leak (issue 13 §2): the whole trading loop runs with distinctive API credentials,
logging at DEBUG both as plain text and as the services' production JSON, and neither the key nor
the secret (nor their hex or base64) may appear in any log line, any record of any topic, any Redis
key or value, any ClickHouse row or any /metrics exposition."""

from __future__ import annotations

import asyncio
import base64
import logging
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from redis.asyncio import Redis

from schemas.events import OrderFilled, OrderPartiallyFilled
from schemas.topics import TOPICS
from services.accounting.shell import definition as accounting_definition
from services.exchange_sim.server import SimConfig, Simulator
from services.execution.shell import Execution, ExecutionConfig
from services.ingest.shell import Ingest, IngestConfig
from services.recorder.shell import Recorder, RecorderConfig
from services.recorder.store import ChdbStore
from services.risk.config import RiskConfig
from services.risk.shell import definition as risk_definition
from services.runtime.bus import make_admin
from services.runtime.codec import decode
from services.runtime.logs import JsonFormatter, configure_logging
from services.runtime.run import ServiceRunner
from services.runtime.settings import RuntimeSettings, Secret, load_settings
from services.strategy.config import StrategyConfig
from services.strategy.shell import definition as strategy_definition
from tests.conftest import create_topics, read_topic, wait_consumed

pytestmark = pytest.mark.integration
KEY, SECRET, ACCOUNT = "KEY-LEAK-CANARY-7f3a", "SECRET-LEAK-CANARY-91c2", "sim-1"
# Loggers of the simulator: it is the venue, which must know the credentials.
VENUE_LOGGERS = ("services.exchange_sim", "websockets.server", "aiohttp")


def encodings(value: str) -> list[bytes]:
    """The value and its obvious encodings: hex (both cases), base64 (standard and URL-safe)."""
    raw = value.encode()
    return [raw, raw.hex().encode(), raw.hex().upper().encode(), base64.b64encode(raw).rstrip(b"="),
            base64.urlsafe_b64encode(raw).rstrip(b"=")]


CANARIES = [c for value in (KEY, SECRET) for c in encodings(value)]


def leaks(where: str, data: bytes | str) -> list[str]:
    blob = data.encode() if isinstance(data, str) else data
    return [f"{where}: {canary.decode()}" for canary in CANARIES if canary in blob]


class _NotTheVenue(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(VENUE_LOGGERS)


@pytest.fixture
def captured_logs(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """Every logger at DEBUG into two files: the production JSON lines of configure_logging, and
    plain text with each record's args. Restores the logging setup afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, {name: logging.getLogger(name).level for name in
                                             ("aiokafka", "httpx", "httpcore", "websockets", "asyncio")})
    json_path, text_path = tmp_path / "services.jsonl", tmp_path / "debug.log"
    json_file = json_path.open("w")
    real_stderr = sys.stderr
    sys.stderr = json_file  # configure_logging binds its handler to the stderr of the moment
    try:
        configure_logging("hean", level="DEBUG", json=True)
    finally:
        sys.stderr = real_stderr
    assert isinstance(root.handlers[0].formatter, JsonFormatter)
    text = logging.FileHandler(text_path)
    text.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s | args=%(args)r"))
    root.addHandler(text)
    for handler in root.handlers:
        handler.addFilter(_NotTheVenue())
    for name in saved[2]:  # production quiets some libraries; here they speak too
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield json_path, text_path
    finally:
        for handler in root.handlers:
            handler.close()
        json_file.close()
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for name, level in saved[2].items():
            logging.getLogger(name).setLevel(level)


async def topic_leaks(bootstrap: str, prefix: str) -> tuple[int, list[str]]:
    admin = make_admin(bootstrap)
    await admin.start()
    try:
        topics = sorted(t for t in await admin.list_topics() if t.startswith(prefix))
    finally:
        await admin.close()
    found, count = [], 0
    for topic in topics:
        for record in await read_topic(bootstrap, topic):
            count += 1
            found += leaks(f"{topic}:{record.partition}:{record.offset}", (record.key or b"") + (record.value or b""))
    return count, found


async def redis_leaks(redis_url: str, prefix: str) -> tuple[int, list[str]]:
    redis = Redis.from_url(redis_url)
    found, count = [], 0
    try:
        async for key in redis.scan_iter(match=f"hean:{prefix}*"):
            count += 1
            kind = (await redis.type(key)).decode()
            if kind == "string":
                values: Iterable[bytes] = [await redis.get(key) or b""]
            elif kind == "hash":
                values = [k + b"=" + v for k, v in (await redis.hgetall(key)).items()]
            elif kind == "list":
                values = await redis.lrange(key, 0, -1)
            elif kind == "set":
                values = await redis.smembers(key)
            elif kind == "zset":
                values = await redis.zrange(key, 0, -1)
            else:
                values = [await redis.dump(key) or b""]
            found += leaks(f"redis {key!r}", key + b"".join(values))
    finally:
        await redis.aclose()
    return count, found


def clickhouse_leaks(path: Path) -> tuple[int, list[str]]:
    store = ChdbStore(path)
    found, count = [], 0
    try:
        for [table] in store.query("SELECT name FROM system.tables WHERE database = 'hean'"):
            rows = store.query(f"SELECT * FROM hean.`{table}`")
            count += len(rows)
            found += leaks(f"clickhouse hean.{table}", "\n".join(repr(row) for row in rows))
    finally:
        store.close()
    return count, found


def test_a_secret_never_prints() -> None:
    """The masks themselves: repr, str, format specs, %-formatting and JSON log fields."""
    config = load_settings(ExecutionConfig, "EXECUTION", {"EXECUTION_API_SECRET": SECRET, "EXECUTION_API_KEY": KEY})
    assert isinstance(config.api_secret, Secret) and config.api_secret.reveal() == SECRET
    secret = config.api_secret
    shown = [repr(config), str(config), f"{config}", repr(secret), str(secret), f"{secret}", f"{secret:>40}",
             f"{secret!s:<30}", "%s %r" % (secret, secret), "{:^50}".format(secret)]  # noqa: UP031, UP032
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "config %s, secret %s", (config, secret), None)
    record.secret, record.nested, record.config = secret, {"api": [secret]}, config
    shown.append(JsonFormatter("execution").format(record))
    assert not [text for text in shown if SECRET in text], shown


async def test_credentials_appear_in_no_log_topic_key_row_or_metric(
        bootstrap: str, redis_url: str, prefix: str, tmp_path: Path, captured_logs: tuple[Path, Path]) -> None:
    await create_topics(bootstrap, prefix, [t.name for t in TOPICS])
    sim = Simulator(SimConfig(port=0, rest_port=0, rate=50, symbols=("BTCUSDT", "ETHUSDT"), seed=12,
                              api_keys=(f"{KEY}:{SECRET}",)))
    port = await sim.start()
    settings = RuntimeSettings(kafka_bootstrap=bootstrap, redis_url=redis_url, topic_prefix=prefix,
                               snapshot_every_seconds=1.0)
    strategy = ServiceRunner(strategy_definition(StrategyConfig(account=ACCOUNT, ema_fast=3, ema_slow=10,
                                                                maker_symbols=("BTCUSDT",))), settings)
    risk = ServiceRunner(risk_definition(RiskConfig(rate_per_second=8)), settings)
    accounting = ServiceRunner(accounting_definition(), settings)
    execution = Execution(ExecutionConfig(account=ACCOUNT, rest_url=f"http://127.0.0.1:{sim.rest_port}",
                                          ws_url=f"ws://127.0.0.1:{port}/v5/private", api_key=KEY,
                                          api_secret=Secret(SECRET)), settings)
    ingest = Ingest(IngestConfig(url=f"ws://127.0.0.1:{port}/v5/public/linear", symbols=("BTCUSDT", "ETHUSDT")),
                    settings)
    chdb = tmp_path / "chdb"
    recorder = Recorder(RecorderConfig(store=f"chdb://{chdb}"), settings)
    names = ("ingest", "strategy", "risk", "execution", "accounting", "recorder")
    stops = {name: asyncio.Event() for name in names}
    tasks = {"execution": asyncio.create_task(execution.run(stops["execution"])),
             "accounting": asyncio.create_task(accounting.run(stops["accounting"])),
             "risk": asyncio.create_task(risk.run(stops["risk"])),
             "strategy": asyncio.create_task(strategy.run(stops["strategy"])),
             "recorder": asyncio.create_task(recorder.run(stops["recorder"]))}
    await asyncio.wait_for(execution.active.wait(), 30)
    tasks["ingest"] = asyncio.create_task(ingest.run(stops["ingest"]))
    try:
        await asyncio.sleep(6)
        for name in ("ingest", "strategy"):
            stops[name].set()
            await tasks[name]
        sim.stalled_until = float("inf")
        await wait_consumed(bootstrap, risk.group_id, prefix + "orders.intents")
        await wait_consumed(bootstrap, execution.group_id, prefix + "orders.decisions")
        await asyncio.sleep(1.0)  # the last private WS reports
        await wait_consumed(bootstrap, accounting.group_id, prefix + "orders.events")
        # /metrics as each service serves it, while they still run
        registries: dict[str, CollectorRegistry] = {
            "strategy": strategy.metrics.registry, "risk": risk.metrics.registry,
            "accounting": accounting.metrics.registry, "execution": execution.metrics.registry,
            "ingest": ingest.metrics.base.registry, "recorder": recorder.metrics.base.registry}
        expositions = {name: generate_latest(registry) for name, registry in registries.items()}
    finally:
        for name, task in tasks.items():
            stops[name].set()
            await asyncio.wait_for(task, 30)
        await sim.stop()

    events = [decode(r.value) for r in await read_topic(bootstrap, prefix + "orders.events")]
    assert any(isinstance(e, OrderFilled | OrderPartiallyFilled) for e in events), "orders were placed and filled"

    found: list[str] = []
    for name, text in expositions.items():
        assert b"hean_up" in text, name
        found += leaks(f"/metrics of {name}", text)
    records, topic_found = await topic_leaks(bootstrap, prefix)
    keys, redis_found = await redis_leaks(redis_url, prefix)
    rows, clickhouse_found = clickhouse_leaks(chdb)
    for handler in logging.getLogger().handlers:
        handler.flush()
    json_log, text_log = (path.read_bytes() for path in captured_logs)
    found += topic_found + redis_found + clickhouse_found + leaks("JSON log", json_log) + leaks("DEBUG log", text_log)
    # What was searched is not empty: a check over nothing would pass by default.
    assert records > 100 and keys > 0 and rows > 100, (records, keys, rows)
    assert len(json_log) > 10_000 and len(text_log) > 10_000, (len(json_log), len(text_log))
    assert b"/v5/order/create" in text_log, "the DEBUG log shows the signed requests"
    assert not found, "\n".join(found[:20])
