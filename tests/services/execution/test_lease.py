"""Two executors, one lease: only one acts; a paused holder is fenced out by its successor."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from services.execution.lease import Lease

pytestmark = pytest.mark.integration


async def test_one_holder_then_takeover_with_a_higher_token(redis_url: str) -> None:
    account = f"acc-{uuid.uuid4().hex[:8]}"
    first, second = Lease(redis_url, account, "exec-a", ttl_ms=300), Lease(redis_url, account, "exec-b", ttl_ms=300)
    try:
        token_a = await first.acquire()
        assert token_a is not None and await first.holds()
        assert await second.acquire() is None  # the second instance waits
        assert await first.acquire() == token_a  # re-acquiring our own lease keeps the token
        assert await first.renew()

        await asyncio.sleep(0.45)  # the first pauses past its TTL without renewing
        token_b = await second.acquire()
        assert token_b is not None and token_b > token_a
        assert not await first.holds()  # fenced: it must not act any more
        assert not await first.renew()
        assert await second.holds()

        await second.release()
        assert await first.acquire() is not None and first.token > token_b
    finally:
        for lease in (first, second):
            await lease.release()
            await lease.close()


async def test_a_wiped_redis_still_gives_a_higher_token(redis_url: str) -> None:
    """FLUSHALL (here: the lease's own keys, so other state is untouched) loses the counter; the
    next holder's token must still outrank every token from before."""
    account = f"acc-{uuid.uuid4().hex[:8]}"
    first, second = Lease(redis_url, account, "exec-a", ttl_ms=5_000), Lease(redis_url, account, "exec-b")
    try:
        for _ in range(3):  # several holders before the wipe
            await first.acquire()
            await first.release()
        token_before = await first.acquire()
        assert token_before is not None
        await first.redis.delete(first.key, first.fence_key)  # what FLUSHALL does to the lease
        assert not await first.holds()
        assert not await first.renew()
        token_after = await second.acquire()
        assert token_after is not None and token_after > token_before
        assert await second.holds()
    finally:
        for lease in (first, second):
            await lease.release()
            await lease.close()
