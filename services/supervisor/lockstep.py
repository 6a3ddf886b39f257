"""Lockstep runs: the market moves one frame at a time, and only once the platform has settled.

With the simulator in lockstep mode (EXCHANGE_SIM_LOCKSTEP), `drive` steps one symbol's market,
then releases the frames that step made one by one, and after each waits until `Settle` finds
nothing left in flight. Every service then sees the same records in the same order on every run
with the same seed, whatever the timing of the machine, and whatever crashes happen between
frames: the basis of the chaos test, which compares a run with crashes against one without.

"Settled" is read from outside, where an operator would look, in this order (each read after the
one before, so nothing that happens in between goes unseen):
  1. the simulator's count of public frames sent (stream frames and replies), then ingest's count
     of frames handled (/metrics): equal;
  2. ingest's events sent per md topic (/metrics) against the records in the topic: equal;
  3. each consumer group's committed offsets: past the last record of every input partition
     (read before 5, so whatever existed then was consumed, and its outputs, committed in the
     same transaction, are in the log);
  4. the venue's ledger (/sim/ledger): every order and fill it holds, by event id;
  5. the log (read_committed, to the end): holds every event the ledger implies, and the
     executor's opening of its account.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiokafka import TopicPartition

from schemas.topics import MD_BOOK, MD_TICKERS, MD_TRADES, ORDERS_DECISIONS, ORDERS_EVENTS
from services.domain.ids import (
    account_opened_id,
    exec_ack_id,
    exec_cancel_id,
    exec_fill_id,
    exec_funding_id,
    intent_id_of,
)
from services.execution.config import ExecutionConfig
from services.execution.shell import group_id as execution_group
from services.registry import definition
from services.runtime.bus import KAFKA_ERRORS, group_offsets, make_admin, make_consumer, partitions_of, read_to_end
from services.runtime.codec import decode
from services.runtime.errors import DecodeError
from services.supervisor.observe import scrape
from services.venues.bybit.private import never_rested

MD_TOPICS = (MD_TRADES, MD_BOOK, MD_TICKERS)


def group_inputs(services: Iterable[str], accounts: Iterable[str] = (ExecutionConfig().account,),
                 ) -> dict[str, tuple[str, ...]]:
    """Consumer group (without prefix) → the topics it reads, for the trading-loop services
    (execution: one group per account)."""
    groups = {}
    for name in services:
        if name == "execution":
            groups.update({execution_group("", account): (ORDERS_DECISIONS,) for account in accounts})
        else:
            groups[f"hean.{name}"] = definition(name).inputs
    return groups


def expected_event_ids(ledger: Mapping[str, Any]) -> set[str]:
    """The orders.events ids the venue's books imply for HEAN's orders: an ack for every order that
    rested or traded, a fill per execution, a cancel per cancelled order, a funding settlement per
    funding execution (services/venues/bybit/private.py)."""
    ids: set[str] = set()
    for account in ledger.values():
        for order in account["orders"]:
            if not intent_id_of(order["orderLinkId"]):
                continue
            if not never_rested(order):  # cancelled at placement: no ack is reported
                ids.add(exec_ack_id(order["orderId"]))
            if order["orderStatus"] == "Cancelled":
                ids.add(exec_cancel_id(order["orderId"]))
        ids.update(exec_fill_id(e["execId"]) for e in account["executions"]
                   if intent_id_of(e["orderLinkId"]))
        ids.update(exec_funding_id(e["execId"]) for e in account["executions"] if e.get("execType") == "Funding")
    return ids


@dataclass
class Tail:
    """Everything read so far from the watched topics: last record offset per partition, record
    counts per topic, and the ids seen in orders.events."""

    last: dict[TopicPartition, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    event_ids: set[str] = field(default_factory=set)


class Settle:
    """Tells when the platform has done everything the released frames and placed orders imply."""

    def __init__(self, bootstrap: str, prefix: str, sim_port: int, ingest_metrics_port: int,
                 services: Iterable[str]) -> None:
        self.prefix = prefix
        self.sim = f"http://127.0.0.1:{sim_port}"
        self.ingest_port = ingest_metrics_port
        services = tuple(services)
        self.groups = {prefix + g: tuple(prefix + t for t in topics) for g, topics in group_inputs(services).items()}
        # The executor's opening of its account (AccountOpened) is logged before it acts: waiting for
        # it keeps its venue time (the step clock) the same in every run.
        self.openings = {account_opened_id(ExecutionConfig().account)} if "execution" in services else set()
        self.topics = sorted({t for topics in self.groups.values() for t in topics} | {prefix + t for t in MD_TOPICS})
        self.admin = make_admin(bootstrap)
        self.consumer = make_consumer(bootstrap, None)
        self.http = httpx.AsyncClient(timeout=10)
        self.tail = Tail()
        self.last_reason = ""

    async def start(self) -> None:
        await self.admin.start()
        await self.consumer.start()
        tps = await partitions_of(self.consumer, self.topics)
        self.consumer.assign(tps)
        await self.consumer.seek_to_beginning(*tps)

    async def close(self) -> None:
        await self.consumer.stop()
        await self.admin.close()
        await self.http.aclose()

    async def settled(self) -> bool:
        """One look, in the order of the module docstring; `last_reason` says what is still open."""
        stats = (await self.http.get(f"{self.sim}/sim/stats")).json()
        sent = stats.get("frames_sent", 0) + stats.get("replies_sent", 0)
        ingest = await scrape(self.http, self.ingest_port)
        if not ingest.ok or ingest.total("hean_ws_frames_total") != sent:
            return self._open(f"ingest handled {ingest.total('hean_ws_frames_total'):.0f} of {sent} frames")
        committed = {g: {tp: m.offset for tp, m in (await group_offsets(self.admin, g)).items()}
                     for g in self.groups}
        ledger = (await self.http.get(f"{self.sim}/sim/ledger")).json()
        await self._read_to_end()
        for topic in MD_TOPICS:
            out = ingest.total("hean_events_out_total", topic=self.prefix + topic)
            if out != self.tail.counts.get(self.prefix + topic, 0):
                held = self.tail.counts.get(self.prefix + topic, 0)
                return self._open(f"{topic}: ingest sent {out:.0f}, the log holds {held}")
        for group, topics in self.groups.items():
            for tp, last in self.tail.last.items():
                if tp.topic in topics and committed[group].get(tp, 0) <= last:
                    return self._open(f"{group} has not consumed {tp.topic}[{tp.partition}] up to {last}")
        missing = (expected_event_ids(ledger) | self.openings) - self.tail.event_ids
        if missing:
            return self._open(f"{len(missing)} venue reports not in orders.events yet")
        return True

    async def wait(self, timeout: float = 120.0, poll: float = 0.01) -> None:
        """Until settled; a TimeoutError names what never settled."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                if await self.settled():
                    return
            except (*KAFKA_ERRORS, httpx.HTTPError, OSError) as exc:  # a broker or service coming back
                self._open(f"could not look: {exc!r}")
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"the platform did not settle in {timeout} s: {self.last_reason}")
            await asyncio.sleep(poll)

    def _open(self, reason: str) -> bool:
        self.last_reason = reason
        return False

    async def _read_to_end(self) -> None:
        events_topic = self.prefix + ORDERS_EVENTS
        async for tp, records in read_to_end(self.consumer, self.consumer.assignment(), timeout_ms=200):
            self.tail.last[tp] = records[-1].offset
            self.tail.counts[tp.topic] = self.tail.counts.get(tp.topic, 0) + len(records)
            if tp.topic == events_topic:
                for record in records:
                    with contextlib.suppress(DecodeError):
                        self.tail.event_ids.add(decode(record.value).id)


Hook = Callable[[int], Awaitable[None]]


async def drive(settle: Settle, sim_port: int, symbols: Iterable[str], steps: int,
                after_release: Hook | None = None, timeout: float = 120.0) -> int:
    """`steps` market steps per symbol, one symbol at a time, each frame released alone and
    settled; `after_release(n)` runs after the n-th released frame (the chaos test kills there).
    Returns the number of frames released."""
    released = 0
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{sim_port}", timeout=10) as sim:
        await settle.wait(timeout)
        for _ in range(steps):
            for symbol in symbols:
                held = (await sim.get("/sim/step", params={"symbol": symbol})).raise_for_status().json()["held"]
                await settle.wait(timeout)  # the step's maker fills, reported by execution
                while held:
                    held = (await sim.get("/sim/release")).raise_for_status().json()["held"]
                    released += 1
                    if after_release is not None:
                        await after_release(released)
                    await settle.wait(timeout)
    return released
