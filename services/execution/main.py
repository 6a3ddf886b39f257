"""`hean run execution`: one account's executor (settings from EXECUTION_* variables)."""

from __future__ import annotations

import asyncio

from services.execution.config import ExecutionConfig
from services.execution.shell import Execution
from services.runtime.bus import ensure_topics
from services.runtime.settings import RuntimeSettings, load_settings


async def run(settings: RuntimeSettings, stop: asyncio.Event) -> None:
    await ensure_topics(settings.kafka_bootstrap, prefix=settings.topic_prefix)
    await Execution(load_settings(ExecutionConfig, "EXECUTION"), settings).run(stop)
