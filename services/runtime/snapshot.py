"""Snapshots in Redis: a service's state together with the input offsets it reflects.

One key per (service, shard). A shard is an input partition index for partitioned services
(so any instance can take a partition over after a rebalance) or 0 for a service with one state.
Saved only after the transaction that produced the matching outputs and offsets committed, so a
snapshot never runs ahead of the log.
"""

from __future__ import annotations

import msgspec
import redis.asyncio as aioredis

__all__ = ["Snapshot", "SnapshotStore"]


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    """State bytes plus the next offset to read for each input partition ("topic:partition")."""

    service: str
    shard: int
    state: bytes
    offsets: dict[str, int]
    taken_at_ns: int
    events_applied: int = 0


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Snapshot)


def tp_key(topic: str, partition: int) -> str:
    """The offsets-map key of one input partition."""
    return f"{topic}:{partition}"


class SnapshotStore:
    """Save and load snapshots; `namespace` isolates test runs and deployments sharing one Redis."""

    def __init__(self, redis_url: str, namespace: str = "hean") -> None:
        self.redis = aioredis.Redis.from_url(redis_url)
        self.namespace = namespace

    def key(self, service: str, shard: int) -> str:
        return f"{self.namespace}:snapshot:{service}:{shard}"

    async def save(self, snapshot: Snapshot) -> None:
        await self.redis.set(self.key(snapshot.service, snapshot.shard), _encoder.encode(snapshot))

    async def load(self, service: str, shard: int) -> Snapshot | None:
        raw = await self.redis.get(self.key(service, shard))
        return None if raw is None else _decoder.decode(raw)

    async def load_all(self, service: str) -> list[Snapshot]:
        """Every shard's snapshot of `service`, ordered by shard (for `hean state`)."""
        keys = sorted([k async for k in self.redis.scan_iter(match=self.key(service, "*"))])  # type: ignore[arg-type]
        raws = await self.redis.mget(keys) if keys else []
        return sorted((_decoder.decode(r) for r in raws if r is not None), key=lambda s: s.shard)

    async def load_scopes(self, service: str) -> list[Snapshot]:
        """Every snapshot of `service` and of its account-scoped instances ("risk@acc-a"), ordered
        by scope then shard; each carries its scope in `service`."""
        keys = [k async for k in self.redis.scan_iter(match=self.key(service, "*"))]  # type: ignore[arg-type]
        keys += [k async for k in self.redis.scan_iter(match=f"{self.namespace}:snapshot:{service}@*")]
        raws = await self.redis.mget(sorted(set(keys))) if keys else []
        return sorted((_decoder.decode(r) for r in raws if r is not None), key=lambda s: (s.service, s.shard))

    async def delete_all(self, service: str) -> int:
        keys = [k async for k in self.redis.scan_iter(match=self.key(service, "*"))]  # type: ignore[arg-type]
        return int(await self.redis.delete(*keys)) if keys else 0

    async def close(self) -> None:
        await self.redis.aclose()
