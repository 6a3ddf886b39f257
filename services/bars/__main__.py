"""`python -m services.bars`: the faust worker (HEAN_* runtime settings, BARS_* bar settings)."""

from __future__ import annotations

import asyncio

import faust

from services.bars.app import BarsConfig, make_app
from services.runtime.bus import ensure_topics
from services.runtime.settings import RuntimeSettings, load_settings


def main() -> None:
    settings = load_settings(RuntimeSettings, "HEAN")
    config = load_settings(BarsConfig, "BARS")
    asyncio.run(ensure_topics(settings.kafka_bootstrap, prefix=settings.topic_prefix))
    app = make_app(settings, config)
    faust.Worker(app, loglevel="WARNING").execute_from_commandline()


if __name__ == "__main__":
    main()
