"""One active executor per account: a Redis lease with a fencing token.

`acquire` takes the lease when it is free (or already ours) and returns a token that grows with
every new holder; `renew` extends it only while we still hold it. Before every effect the shell
calls `holds(token)`: an executor that was paused past its TTL (GC, network) finds a newer token
and stops instead of sending orders beside its successor. Both scripts run atomically in Redis.

A token is at least Redis's clock in microseconds, so it still grows after the counter is lost
(Redis wiped with FLUSHALL, or restarted without persistence): a holder from before the wipe can
never outrank one from after it. (In milliseconds, a wipe within the millisecond of the last
acquire gave the next holder an equal token; acquires are far more than a microsecond apart.)
"""

from __future__ import annotations

import redis.asyncio as aioredis

_ACQUIRE = """
local holder = redis.call('HGET', KEYS[1], 'owner')
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return tonumber(redis.call('HGET', KEYS[1], 'token'))
end
if holder then return -1 end
local token = redis.call('INCR', KEYS[2])
local now = redis.call('TIME')
local floor = tonumber(now[1]) * 1000000 + tonumber(now[2])
if token < floor then
  token = floor
  redis.call('SET', KEYS[2], token)
end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'token', token)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return token
"""

_RENEW = """
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner == ARGV[1] and tonumber(redis.call('HGET', KEYS[1], 'token')) == tonumber(ARGV[3]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""


class Lease:
    """The execution lease of one account, held by `owner` (an instance id)."""

    def __init__(self, redis_url: str, account: str, owner: str, ttl_ms: int = 5_000, namespace: str = "hean") -> None:
        self.redis = aioredis.Redis.from_url(redis_url)
        self.key = f"{namespace}:lease:execution:{account}"
        self.fence_key = f"{namespace}:lease:execution:{account}:fence"
        self.owner = owner
        self.ttl_ms = ttl_ms
        self.token: int | None = None
        self._acquire = self.redis.register_script(_ACQUIRE)
        self._renew = self.redis.register_script(_RENEW)

    async def acquire(self) -> int | None:
        """The fencing token if we hold the lease now, else None (someone else holds it)."""
        token = int(await self._acquire(keys=[self.key, self.fence_key], args=[self.owner, self.ttl_ms]))
        self.token = token if token > 0 else None
        return self.token

    async def renew(self) -> bool:
        if self.token is None:
            return False
        held = bool(await self._renew(keys=[self.key], args=[self.owner, self.ttl_ms, self.token]))
        if not held:
            self.token = None
        return held

    async def holds(self) -> bool:
        """True while our token is the current one: check this before every effect."""
        if self.token is None:
            return False
        current = await self.redis.hget(self.key, "token")
        return current is not None and int(current) == self.token

    async def release(self) -> None:
        if self.token is not None and await self.holds():
            await self.redis.delete(self.key)
        self.token = None

    async def close(self) -> None:
        await self.redis.aclose()
