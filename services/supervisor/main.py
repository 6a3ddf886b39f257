"""`hean up`: start the local stack's services, show them live, stop them on Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.live import Live

from services.runtime.settings import RuntimeSettings, load_settings
from services.supervisor.stack import Stack, StackConfig, run_stack
from services.supervisor.view import View, make_renderer, summary


def up(duration: float, prefix: str, symbols: tuple[str, ...], recorder: bool, home: Path,
       scale: dict[str, int] | None = None, venue: str = "sim", binance: bool = False,
       market_rate: float = 20.0) -> int:
    """Run until Ctrl-C (duration 0) or for `duration` seconds; 0 when every service ended healthy."""
    settings = load_settings(RuntimeSettings, "HEAN")
    try:
        config = StackConfig(home=home, bootstrap=settings.kafka_bootstrap, redis_url=settings.redis_url,
                             prefix=prefix, symbols=symbols, market_rate=market_rate, recorder=recorder,
                             recorder_store=os.environ.get("RECORDER_STORE", ""), scale=scale or {}, venue=venue,
                             binance=binance)
    except ValueError as exc:
        print(f"hean up: {exc}", file=sys.stderr)
        return 2
    console = Console()
    interactive = console.is_terminal and duration <= 0
    if not interactive:
        what = f"for {duration:.0f} s" if duration > 0 else "until SIGTERM"
        console.print(f"hean up: running the local stack {what} (logs in {home / 'logs'})")

    async def main() -> tuple[View, Stack, bool]:
        if interactive:
            with Live(console=console, refresh_per_second=2) as live:
                view, render = make_renderer(console, live)
                stack, healthy = await run_stack(config, duration, render)
        else:
            view, render = make_renderer(console, None)
            stack, healthy = await run_stack(config, duration, render)
        return view, stack, healthy

    try:
        view, stack, healthy = asyncio.run(main())
    except (RuntimeError, OSError) as exc:
        print(f"hean up: {exc}", file=sys.stderr)
        return 1
    summary(console, view, stack, healthy)
    return 0 if healthy else 1
