"""Produced records the broker refuses are never lost unseen, inside a transaction too."""

from __future__ import annotations

import pytest

from schemas.topics import DLQ
from services.runtime.bus import await_delivery, make_producer, send_keyed
from services.runtime.errors import DeliveryFailed
from tests.conftest import create_topics, read_topic

pytestmark = pytest.mark.integration


async def test_a_refused_batch_aborts_its_transaction(bootstrap: str, prefix: str) -> None:
    """aiokafka commits a transaction whose batches failed (MessageSizeTooLarge, then
    OutOfOrderSequenceNumber for the batches after it); await_delivery turns that into an abort."""
    await create_topics(bootstrap, prefix, [DLQ])
    topic = prefix + DLQ
    producer = make_producer(bootstrap, f"{prefix}delivery-test")
    await producer.start()
    try:
        records = [(topic, b"k", b"before"), (topic, b"k", b"x" * (1024 * 1024 + 64)), (topic, b"k", b"after")]
        with pytest.raises(DeliveryFailed, match=r"MessageSizeTooLarge|MSG_SIZE_TOO_LARGE"):  # either client
            async with producer.transaction():
                await await_delivery(await send_keyed(producer, records))
    finally:
        await producer.stop()
    assert await read_topic(bootstrap, topic) == [], "nothing of the aborted transaction is visible"
