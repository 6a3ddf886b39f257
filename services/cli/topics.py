"""`hean topics` (end offsets and consumer lag) and `hean topics create` (idempotent)."""

from __future__ import annotations

import asyncio
import os

from services.runtime.bus import ensure_topics, topic_status, wait_group_coordinator


def bootstrap() -> str:
    return os.environ.get("HEAN_KAFKA_BOOTSTRAP", f"127.0.0.1:{os.environ.get('HEAN_KAFKA_PORT', '9092')}")


def create_topics(prefix: str = "") -> int:
    """Create missing topics, then wait until consumer groups can be coordinated."""

    async def create() -> list[str]:
        created = await ensure_topics(bootstrap(), prefix=prefix)
        await wait_group_coordinator(bootstrap())
        return created

    created = asyncio.run(create())
    print(f"topics: created {', '.join(created)}" if created else "topics: all present")
    print("kafka: group coordinator ready")
    return 0


def list_topics(prefix: str = "") -> int:
    rows = asyncio.run(topic_status(bootstrap(), prefix))
    print(f"{'topic':<24} {'parts':>5} {'end offset':>12}  consumer lag")
    for row in rows:
        lag = ", ".join(f"{g}={n}" for g, n in sorted(row.group_lag.items())) or "-"
        print(f"{row.name:<24} {row.partitions:>5} {sum(row.end_offsets.values()):>12}  {lag}")
    return 0
