"""`hean run recorder`: md.* → ClickHouse (settings from RECORDER_* variables)."""

from __future__ import annotations

import asyncio

from services.cli.infra import LocalStack
from services.recorder.shell import Recorder, RecorderConfig
from services.runtime.bus import ensure_topics
from services.runtime.settings import RuntimeSettings, load_settings


async def run(settings: RuntimeSettings, stop: asyncio.Event) -> None:
    await ensure_topics(settings.kafka_bootstrap, prefix=settings.topic_prefix)
    recorder = Recorder(load_settings(RecorderConfig, "RECORDER"), settings,
                        default_path=LocalStack.from_env().chdb_dir)
    await recorder.run(stop)
