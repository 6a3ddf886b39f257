"""Reference data into the log: the venue's instruments-info → ref.instruments (compacted).

Ingest already speaks to the venue's public side, so it is the producer: it reads the rules of
its symbols before it subscribes to their streams (so a consumer meets a symbol's rules before its
first book), then again every `refresh_seconds`, and publishes a record only for an instrument
whose rules changed since it last published it. A record's id derives from the rules, so a
restarted ingest republishing unchanged rules writes the same fact again, which every consumer
folds to the same state, and compaction keeps one record per symbol.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import httpx

from schemas.events import InstrumentDefined
from schemas.topics import REF_INSTRUMENTS
from services.domain.instrument import Instrument, defined
from services.runtime.bus import make_admin, send_and_wait
from services.runtime.codec import encode
from services.runtime.errors import DeliveryFailed
from services.venues.port import InstrumentSource, InstrumentsRefused

log = logging.getLogger(__name__)


def changed(published: dict[str, InstrumentDefined], fresh: Iterable[Instrument], now_ns: int,
            ) -> list[InstrumentDefined]:
    """The records to publish: instruments never published, or whose rules (hence id) changed."""
    out = []
    for instrument in fresh:
        record = defined(instrument, now_ns, now_ns)
        if published.get(instrument.symbol) is None or published[instrument.symbol].id != record.id:
            out.append(record)
    return out


def record_key(record: InstrumentDefined) -> bytes:
    """The compaction key: compaction keeps the latest record per key, so two venues listing the same
    symbol need two keys. Bybit's records keep the bare symbol (co-partitioned with md.*, and topics
    written before a second venue keep their one record per symbol); another venue's are keyed
    "venue:SYMBOL" (Binance is market data only, so no strategy instance needs its rules on the
    symbol's partition)."""
    return (record.symbol if record.venue == "bybit" else f"{record.venue}:{record.symbol}").encode()


class InstrumentFeed:
    """Keeps ref.instruments current for one ingest instance's symbols.

    Its records are awaited on their own (send_and_wait), not through ingest's DeliveryWatch: a
    refused reference record is retried on the next read instead of stopping the market data,
    since the same rules are published again until one delivery is acknowledged."""

    def __init__(self, source: InstrumentSource, symbols: Sequence[str], prefix: str,
                 refresh_seconds: float, on_failure: Callable[[], None] = lambda: None) -> None:
        self.source, self.symbols = source, tuple(symbols)
        self.topic = prefix + REF_INSTRUMENTS
        self.refresh_seconds = refresh_seconds
        self.on_failure = on_failure
        self.published: dict[str, InstrumentDefined] = {}
        self.first = asyncio.Event()  # set once the rules of every listed symbol are in the log

    async def publish_once(self, producer: Any, client: httpx.AsyncClient) -> int:
        """Read the venue once and publish what changed; returns how many records went out."""
        fresh = await self.source.read(client, self.symbols)
        missing = sorted(set(self.symbols) - {i.symbol for i in fresh})
        if missing and not self.first.is_set():
            log.warning("%s lists no instrument for %s; those symbols get no reference data",
                        self.source.venue, missing)
        records = changed(self.published, fresh, time.time_ns())
        await send_and_wait(producer, [(self.topic, record_key(r), encode(r)) for r in records])
        self.published.update({r.symbol: r for r in records})
        if records:
            log.info("published %s instrument(s) to %s: %s", len(records), self.topic, [r.symbol for r in records])
        return len(records)

    async def run(self, producer: Any, stop: asyncio.Event, retry_max: float = 5.0) -> None:
        """Read and publish until `stop`: every `refresh_seconds` after a success, with a doubling
        backoff after a failure (logged and counted; the rules already in the log stay the rules)."""
        delay = 0.2
        async with httpx.AsyncClient(timeout=10) as client:
            while not stop.is_set():
                try:
                    await self.publish_once(producer, client)
                    self.first.set()
                    wait, delay = self.refresh_seconds, 0.2
                except (httpx.HTTPError, InstrumentsRefused, DeliveryFailed) as exc:
                    self.on_failure()
                    log.warning("%s instruments not published (%s); again in %.1f s", self.source.venue, exc, delay)
                    wait, delay = delay, min(retry_max, delay * 2)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)


async def topic_exists(producer: Any, bootstrap: str, topic: str) -> bool:
    """Whether `topic` exists: the broker does not create topics on use, so a session without
    ref.instruments (created by `hean topics create`) publishes no reference data, said once.
    Asked over the producer's own connection where it has one (no second client to start)."""
    client = getattr(producer, "client", None)
    if client is not None and hasattr(client, "fetch_all_metadata"):
        return topic in (await client.fetch_all_metadata()).topics()
    admin = make_admin(bootstrap)
    await admin.start()
    try:
        return topic in set(await admin.list_topics())
    finally:
        await admin.close()
