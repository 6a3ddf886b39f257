"""Send something to the log and follow what answers it: the operator commands' one read loop.

`hean order …` and `hean algo cancel` each send an event and then wait for its answer on other
topics. The answer may come before the send returns, so reading starts at the topics' end as it
was *before* the send.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from schemas.events import Event
from services.runtime.codec import decode
from services.runtime.errors import DecodeError


async def follow(topics: Sequence[str], send: Callable[[], Awaitable[object]], wait_s: float) -> AsyncIterator[Event]:
    """Position at the end of `topics`, call `send`, then yield every event they receive (what does
    not decode is passed over) until `wait_s` seconds have gone. Use it under contextlib.aclosing,
    so a caller that stops at its answer closes the consumer at once."""
    from services.cli.topics import bootstrap  # lazily: the bus is a heavy import for every hean command
    from services.runtime.bus import make_consumer, partitions_of
    consumer = make_consumer(bootstrap(), None)
    await consumer.start()
    try:
        tps = await partitions_of(consumer, list(topics))
        consumer.assign(tps)
        for tp, end in (await consumer.end_offsets(tps)).items():
            consumer.seek(tp, end)
        await send()
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    try:
                        event = decode(record.value)
                    except DecodeError:
                        continue
                    yield event
    finally:
        await consumer.stop()
