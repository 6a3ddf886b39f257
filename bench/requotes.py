"""Issue 16's figure: venue requests per minute of the market maker, re-quoting by cancel + new
against re-quoting by amend (one by one, and with execution's amend-batch), for the same run length.

Each variant runs the whole local stack (`hean up`'s supervisor: simulator, ingest, strategy, risk,
execution, accounting) with only the maker trading (the EMA strategy off: its market orders are the
same in every variant) on three symbols, for `seconds` after a `warmup`. The simulator counts the
private REST requests per route (/sim/stats), read at the end of the warm-up and of the run; the
re-quotes are the maker's cancels and amends in orders.intents over the whole run, so requests per
re-quote compares the variants however the market moved.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from schemas.events import AmendOrder, CancelOrder
from schemas.topics import ORDERS_INTENTS
from services.runtime.bus import delete_topics_with, make_consumer, partitions_of, read_to_end
from services.runtime.codec import decode
from services.runtime.settings import RuntimeSettings
from services.supervisor.stack import StackConfig, run_stack

VARIANTS = {"cancel_new": {"STRATEGY_MAKER_AMEND": "false"},
            "amend": {"STRATEGY_MAKER_AMEND": "true", "EXECUTION_BATCH_AMENDS": "false"},
            "amend_batch": {"STRATEGY_MAKER_AMEND": "true", "EXECUTION_BATCH_AMENDS": "true"}}
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


def _order_entry(requests: dict[str, int]) -> int:
    """Requests that place, change or cancel orders (not the reconciliation's reads)."""
    return sum(n for path, n in requests.items() if path.startswith("/v5/order/") and path not in (
        "/v5/order/realtime", "/v5/order/history"))


async def _requotes(bootstrap: str, topic: str) -> int:
    consumer = make_consumer(bootstrap, None)
    await consumer.start()
    count = 0
    try:
        tps = await partitions_of(consumer, [topic])
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        async for _tp, records in read_to_end(consumer, tps):
            count += sum(isinstance(decode(r.value), AmendOrder | CancelOrder) for r in records)
    finally:
        await consumer.stop()
    return count


async def _variant(settings: RuntimeSettings, env: dict[str, str], seconds: float, warmup: float) -> dict[str, Any]:
    # Not bench…: a concurrent `make bench` drops every bench… topic when it ends, these included.
    prefix = f"requotes{uuid.uuid4().hex[:6]}."
    with tempfile.TemporaryDirectory() as home:
        config = StackConfig(home=Path(home), bootstrap=settings.kafka_bootstrap, redis_url=settings.redis_url,
                             prefix=prefix, symbols=SYMBOLS, recorder=False,
                             extra_env={"STRATEGY_EMA": "false", "STRATEGY_MAKER_SYMBOLS": ",".join(SYMBOLS), **env})
        stop = asyncio.Event()
        stats: list[tuple[float, dict[str, int]]] = []

        async def sample(stack: Any) -> None:
            port = stack.services["exchange-sim"].child.env["EXCHANGE_SIM_PORT"]
            async with httpx.AsyncClient() as client:
                for wait in (warmup, seconds):
                    await asyncio.sleep(wait)
                    stats.append((time.monotonic(), (await client.get(f"http://127.0.0.1:{port}/sim/stats")).json()
                                  .get("requests", {})))
            stop.set()

        started: list[asyncio.Task[None]] = []

        def note(stack: Any) -> None:
            if not started:
                started.append(asyncio.get_running_loop().create_task(sample(stack)))

        _stack, healthy = await run_stack(config, 0, note, stop=stop)
        await started[0]
    (t0, before), (t1, after) = stats
    minutes = (t1 - t0) / 60
    requests = _order_entry(after) - _order_entry(before)
    try:
        requotes = await _requotes(settings.kafka_bootstrap, prefix + ORDERS_INTENTS)
    finally:
        await delete_topics_with(settings.kafka_bootstrap, [prefix])
    return {"requests_per_min": round(requests / minutes), "requotes_in_run": requotes,
            "requests_per_requote": round(_order_entry(after) / requotes, 2) if requotes else None,
            "by_route": {p: n - before.get(p, 0) for p, n in sorted(after.items()) if p.startswith("/v5/order/")},
            "stack_healthy": healthy}


async def bench_requote_requests(settings: RuntimeSettings, seconds: float = 60.0,
                                 warmup: float = 15.0) -> dict[str, Any]:
    """Each variant for the same `seconds` (after `warmup`); the ratios are against cancel + new."""
    runs = {name: await _variant(settings, env, seconds, warmup) for name, env in VARIANTS.items()}
    base = runs["cancel_new"]["requests_per_min"] or 1
    figures: dict[str, Any] = {"seconds": seconds}
    for name, run in runs.items():
        figures[f"{name}_requests_per_min"] = run["requests_per_min"]
        figures[f"{name}_requests_per_requote"] = run["requests_per_requote"]
        figures[f"{name}_routes"] = run["by_route"]
        figures[f"{name}_healthy"] = run["stack_healthy"]
    figures["amend_vs_cancel_new"] = round(runs["amend"]["requests_per_min"] / base, 3)
    figures["amend_batch_vs_cancel_new"] = round(runs["amend_batch"]["requests_per_min"] / base, 3)
    return figures
