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
from services.execution.config import ExecutionConfig
from services.recorder.store import ChdbStore
from services.runtime.bus import make_admin
from services.runtime.codec import decode
from services.runtime.logs import JsonFormatter, configure_logging
from services.runtime.settings import Secret, load_settings
from tests.conftest import read_topic
from tests.e2e.loop import running_loop

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
    chdb = tmp_path / "chdb"
    async with running_loop(bootstrap, redis_url, prefix, key=KEY, secret=SECRET, account=ACCOUNT,
                            recorder_store=f"chdb://{chdb}") as loop:
        await asyncio.sleep(6)
        await loop.quiesce()
        # /metrics as each service serves it, while they still run
        assert loop.recorder is not None
        registries: dict[str, CollectorRegistry] = {
            "strategy": loop.strategy.metrics.registry, "risk": loop.risk.metrics.registry,
            "accounting": loop.accounting.metrics.registry, "execution": loop.execution.metrics.registry,
            "ingest": loop.ingest.metrics.base.registry, "recorder": loop.recorder.metrics.base.registry}
        expositions = {name: generate_latest(registry) for name, registry in registries.items()}

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
