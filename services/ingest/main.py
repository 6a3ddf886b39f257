"""`hean run ingest`: one ingest instance (settings from INGEST_* variables)."""

from __future__ import annotations

import asyncio

from services.ingest.binance import BinanceIngest
from services.ingest.shell import Ingest, IngestConfig
from services.runtime.bus import ensure_topics
from services.runtime.settings import RuntimeSettings, load_settings


async def run(settings: RuntimeSettings, stop: asyncio.Event) -> None:
    await ensure_topics(settings.kafka_bootstrap, prefix=settings.topic_prefix)
    config = load_settings(IngestConfig, "INGEST")
    service = BinanceIngest if config.venue == "binance" else Ingest
    await service(config, settings).run(stop)
