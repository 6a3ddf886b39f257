"""The execution shell: approved intents → Bybit V5 orders; the private WS → orders.events.

- One active executor per account (Redis lease with a fencing token); a second instance waits,
  and an executor that lost its lease stops before its next effect.
- Decisions are read as group `hean.execution`; each batch's effects are performed, then its
  venue refusals (OrderRejected) and offsets are committed in one transaction (a plain offset
  commit when there were none). A crash re-reads
  uncommitted decisions, and `place_order` is idempotent by orderLinkId, so no order is placed
  twice; a repeated cancel gets 110001, which is fine.
- The private WS (auth, `order` + `execution`) becomes orders.events, deduplicated by event id.
- Reconciliation on start and after a private WS drop: orders.events is read back to learn what
  was already reported, and orders.decisions (the last `reconcile_lookback_s`) to learn what was
  decided. Every order the venue still lists, that HEAN saw acknowledged and not closed, or that
  was decided and never seen close, is compared with the venue's view; missed acks, cancels and
  fills are reported, each fill with the venue's own execId (GET /v5/execution/list), so a
  reconciled fill is the same event the WebSocket would have given.
- A create that finds its order already on the venue (a restart re-reading its decision after the
  order was placed) reconciles that order at once: its WebSocket reports went to the dead process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from decimal import Decimal
from typing import Any

import msgspec
import orjson
import websockets
from websockets.exceptions import ConnectionClosed

from schemas.events import (
    CancelOrder,
    Event,
    IntentApproved,
    OrderAcknowledged,
    OrderCancelled,
    OrderEvent,
    OrderFilled,
    OrderPartiallyFilled,
    OrderRejected,
    SubmitOrder,
    derive_id,
)
from schemas.topics import ORDERS_DECISIONS, ORDERS_EVENTS
from services.execution.client import BybitRest, VenueError
from services.execution.core import create_request, events_from_private, link_id_for
from services.execution.lease import Lease
from services.execution.metrics import ExecutionMetrics
from services.execution.signing import ws_auth_signature
from services.runtime.bus import make_consumer, make_producer, partitions_of, read_to_end, send_keyed
from services.runtime.codec import decode, encode
from services.runtime.errors import DecodeError, TransientError
from services.runtime.settings import RuntimeSettings, Secret

log = logging.getLogger(__name__)
ORDER_NOT_FOUND = 110001
ZERO = Decimal(0)


class ExecutionConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Settings (env prefix EXECUTION_). Keys come from the environment and are never logged."""

    account: str = "sim-1"
    rest_url: str = "http://127.0.0.1:8802"
    ws_url: str = "ws://127.0.0.1:8801/v5/private"
    api_key: str = "hean-sim-key"
    api_secret: Secret = Secret("hean-sim-secret")
    lease_ttl_ms: int = 5_000
    # An order decided longer ago than this (time in the log) is not sent: the market it was
    # decided on is gone. It is reported as OrderRejected (ret_code 0, "stale decision").
    max_decision_age_ms: int = 30_000
    # How far back reconciliation reads orders.decisions for orders that may have missed reports.
    reconcile_lookback_s: int = 86_400


class Execution:
    """Runs one account's executor until `stop` is set."""

    def __init__(self, config: ExecutionConfig, settings: RuntimeSettings) -> None:
        self.config = config
        self.settings = settings
        self.prefix = settings.topic_prefix
        self.group_id = f"{self.prefix}hean.execution"
        self.rest = BybitRest(config.rest_url, config.api_key, config.api_secret)
        self.rest.on_send = self._on_send
        self.metrics = ExecutionMetrics(self.rest)
        self.lease = Lease(settings.redis_url, config.account, f"{config.account}-{settings.instance}",
                           ttl_ms=config.lease_ttl_ms, namespace=f"hean:{self.prefix}" if self.prefix else "hean")
        self.published: set[str] = set()
        self.origins: dict[str, int] = {}
        self.unsent: dict[str, int] = {}  # orderLinkId → origin_ts, until its create request leaves
        self.sent_at: dict[str, int] = {}  # orderLinkId → when its create left, until answered
        self.open_links: dict[str, str] = {}  # orderLinkId → symbol, placed and not seen closed
        self.reported: dict[str, tuple[Decimal, Decimal, Decimal]] = {}  # orderLinkId → qty, value, fee
        self.decided: dict[str, str] = {}  # orderLinkId → symbol, approved for this account (lookback)
        self.closed: set[str] = set()  # orderLinkIds with a terminal event in orders.events
        self.events_producer: Any = None
        self.active = asyncio.Event()
        self.lost_lease = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        self.metrics.serve(self.settings.metrics_port)
        self.metrics.up.labels("execution").set(1)  # running; hean_execution_active says if it holds the lease
        events_producer = self.events_producer = make_producer(self.settings.kafka_bootstrap)
        await events_producer.start()
        try:
            if not await self._wait_for_lease(stop):
                return
            log.info("execution active", extra={"account": self.config.account, "token": self.lease.token})
            self.metrics.active.labels("execution", self.config.account).set(1)
            await self.rest.sync_time()
            await self._read_back_reported()
            ws_task = asyncio.create_task(self._private_stream(events_producer, stop))
            lease_task = asyncio.create_task(self._keep_lease(stop))
            await self._reconcile(events_producer)
            self.active.set()
            try:
                await self._decisions(stop)
            finally:
                for task in (ws_task, lease_task):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        finally:
            self.metrics.active.labels("execution", self.config.account).set(0)
            self.metrics.up.labels("execution").set(0)
            self.metrics.ready.labels("execution").set(0)
            await events_producer.stop()
            await self.lease.release()
            await self.lease.close()
            await self.rest.close()

    async def _wait_for_lease(self, stop: asyncio.Event) -> bool:
        """A second instance waits here until the active one goes away."""
        while not stop.is_set():
            if await self.lease.acquire() is not None:
                return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.lease_ttl_ms / 2000)
        return False

    async def _keep_lease(self, stop: asyncio.Event) -> None:
        """Renew on its own clock, so slow orders (rate limits, retries) never let the lease lapse."""
        while not stop.is_set():
            await asyncio.sleep(self.config.lease_ttl_ms / 3000)
            if not await self.lease.renew():
                log.error("lost the execution lease; no further orders from this instance")
                self.lost_lease.set()
                return

    # ------------------------------------------------------------------ decisions → venue

    async def _decisions(self, stop: asyncio.Event) -> None:
        producer = make_producer(self.settings.kafka_bootstrap, f"{self.prefix}hean.execution.{self.config.account}")
        consumer = make_consumer(self.settings.kafka_bootstrap, self.group_id, self.prefix + ORDERS_DECISIONS,
                                 session_timeout_ms=self.settings.session_timeout_ms)
        await producer.start()
        await consumer.start()
        try:
            while not stop.is_set() and not self.lost_lease.is_set():
                batch = await consumer.getmany(timeout_ms=100, max_records=50)
                if consumer.assignment():  # the lease held, reconciled, and the decisions assigned
                    self.metrics.ready.labels("execution").set(1)
                if not batch:
                    continue
                by_symbol: dict[bytes, list[Any]] = {}
                for tp, records in batch.items():
                    self.metrics.events_in.labels("execution", tp.topic).inc(len(records))
                    for record in records:
                        by_symbol.setdefault(record.key or b"", []).append(record)
                outputs = await self._act_side_by_side(list(by_symbol.values()))
                offsets = {tp: records[-1].offset + 1 for tp, records in batch.items()}
                if not outputs:  # orders placed, nothing to log: a plain commit will do
                    await consumer.commit(offsets)
                    continue
                async with producer.transaction():
                    await send_keyed(producer, outputs)
                    await producer.send_offsets_to_transaction(offsets, self.group_id)
        finally:
            await consumer.stop()
            await producer.stop()

    async def _act_side_by_side(self, groups: list[list[Any]]) -> list[tuple[str, bytes, bytes]]:
        """Each group in order, the groups at once; the first failure stops the others before it
        propagates, so no effect is performed after the batch has failed (e.g. a lost lease)."""
        tasks = [asyncio.create_task(self._act_in_order(records)) for records in groups]
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return [output for result in results for output in result]

    async def _act_in_order(self, records: list[Any]) -> list[tuple[str, bytes, bytes]]:
        """One symbol's decisions, one after the other (a cancel follows its order's create);
        symbols go side by side, so one order's round trip does not hold up another symbol's."""
        outputs: list[tuple[str, bytes, bytes]] = []
        for record in records:
            outputs += await self._act(record)
        return outputs

    def _on_send(self, method: str, path: str, body: dict[str, Any] | None) -> None:
        """Tick-to-order ends when an order's first create request leaves, after any pacing."""
        if path != "/v5/order/create" or body is None:
            return
        link_id, now = body.get("orderLinkId", ""), time.time_ns()
        origin = self.unsent.pop(link_id, None)
        if origin is not None:
            self.sent_at[link_id] = now
            if origin:
                self.metrics.tick_to_order.observe((now - origin) / 1e9)

    async def _act(self, record: Any) -> list[tuple[str, bytes, bytes]]:
        try:
            decision = decode(record.value)
        except DecodeError as exc:
            log.warning("undecodable decision at %s:%s: %s", record.partition, record.offset, exc)
            self.metrics.dlq.labels("execution", exc.reason).inc()
            return []
        if not isinstance(decision, IntentApproved) or decision.intent.account != self.config.account:
            return []
        if not await self.lease.holds():
            raise TransientError("the execution lease moved to another instance; not acting")
        intent = decision.intent
        if isinstance(intent, CancelOrder):
            try:
                await self.rest.cancel_order("linear", intent.symbol, link_id_for(intent.intent_id))
                self.metrics.orders.labels("execution", "cancel_sent").inc()
            except VenueError as exc:
                if exc.ret_code != ORDER_NOT_FOUND:  # already filled or cancelled: nothing to do
                    log.warning("cancel of %s refused: %s", intent.intent_id, exc)
            return []
        assert isinstance(intent, SubmitOrder)
        link_id = link_id_for(intent.id)
        age_ms = time.time() * 1000 - record.timestamp
        if age_ms > self.config.max_decision_age_ms:
            self.metrics.orders.labels("execution", "stale").inc()
            return [self._rejected(intent, link_id, 0, f"stale decision: waited {age_ms / 1000:.1f} s in the log")]
        self.origins[link_id] = intent.origin_ts
        self.open_links[link_id] = intent.symbol
        self.unsent[link_id] = intent.origin_ts
        try:
            placed = await self.rest.place_order(create_request(intent))
            sent = self.sent_at.get(link_id)
            if sent is not None:
                self.metrics.order_ack.observe((time.time_ns() - sent) / 1e9)
            self.metrics.orders.labels("execution", "placed").inc()
            if "venueView" in placed:  # placed before a restart: its reports went to the dead process
                await self._publish(self.events_producer, await self._events_for(placed["venueView"]))
            return []
        except VenueError as exc:
            self.metrics.orders.labels("execution", "refused").inc()
            self.open_links.pop(link_id, None)
            return [self._rejected(intent, link_id, exc.ret_code, exc.ret_msg)]
        finally:
            self.unsent.pop(link_id, None)
            self.sent_at.pop(link_id, None)

    def _rejected(self, intent: SubmitOrder, link_id: str, ret_code: int, reason: str) -> tuple[str, bytes, bytes]:
        """An OrderRejected for orders.events (committed with the decision's offset)."""
        self.metrics.events_out.labels("execution", self.prefix + ORDERS_EVENTS).inc()
        self.metrics.order_events.labels("execution", "OrderRejected").inc()
        now = time.time_ns()
        rejected = OrderRejected(id=derive_id("exec-reject", intent.id), ts_event=now, ts_ingest=now,
                                 origin_ts=intent.origin_ts, account=intent.account, symbol=intent.symbol,
                                 intent_id=intent.id, order_link_id=link_id, ret_code=ret_code, reason=reason)
        self.published.add(rejected.id)
        return (self.prefix + ORDERS_EVENTS, intent.symbol.encode(), encode(rejected))

    # ------------------------------------------------------------------ venue → orders.events

    async def _private_stream(self, producer: Any, stop: asyncio.Event) -> None:
        backoff = 0.2
        while not stop.is_set():
            try:
                async with websockets.connect(self.config.ws_url, ping_interval=None) as ws:
                    expires = int(time.time() * 1000) + self.rest.time_offset_ms + 10_000
                    signature = ws_auth_signature(self.config.api_secret.reveal(), expires)
                    await ws.send(orjson.dumps({"op": "auth", "args": [self.config.api_key, expires, signature]}))
                    auth = orjson.loads(await ws.recv())
                    if not auth.get("success"):
                        log.error("private WS auth refused: %s", auth.get("ret_msg"))
                        await asyncio.sleep(5)
                        continue
                    await ws.send(b'{"op": "subscribe", "args": ["order", "execution"]}')
                    backoff = 0.2
                    async for raw in ws:
                        message = orjson.loads(raw)
                        if "topic" in message:
                            await self._publish(producer, events_from_private(
                                message, self.config.account, time.time_ns(), self.origins))
            except (OSError, ConnectionClosed) as exc:
                log.warning("private WS dropped (%s); reconnecting and reconciling", exc)
                await asyncio.sleep(backoff)
                backoff = min(10.0, backoff * 2)
                with contextlib.suppress(Exception):
                    await self._reconcile(producer)

    async def _publish(self, producer: Any, events: list[Event]) -> None:
        for event in events:
            if event.id in self.published:
                continue
            self.published.add(event.id)
            if isinstance(event, OrderEvent):
                self._track(event)
            await producer.send(self.prefix + ORDERS_EVENTS, encode(event), key=event.symbol.encode())
            self.metrics.events_out.labels("execution", self.prefix + ORDERS_EVENTS).inc()
            self.metrics.order_events.labels("execution", type(event).__name__).inc()
        await producer.flush()

    def _track(self, event: OrderEvent) -> None:
        """Keep what reconciliation compares with the venue: open orders and reported fills."""
        link_id = event.order_link_id
        if isinstance(event, OrderPartiallyFilled | OrderFilled):
            qty, value, fee = self.reported.get(link_id, (ZERO, ZERO, ZERO))
            self.reported[link_id] = (qty + event.fill_qty, value + event.fill_qty * event.fill_price, fee + event.fee)
        if isinstance(event, OrderFilled | OrderCancelled | OrderRejected):
            self.open_links.pop(link_id, None)
            self.closed.add(link_id)
        elif isinstance(event, OrderAcknowledged | OrderPartiallyFilled):
            self.open_links[link_id] = event.symbol

    async def _read_back_reported(self) -> None:
        """Learn which events and fills are already in orders.events (our own past output), and
        which orders were decided for this account lately (orders.decisions)."""
        consumer = make_consumer(self.settings.kafka_bootstrap, None)
        await consumer.start()
        try:
            events = await partitions_of(consumer, [self.prefix + ORDERS_EVENTS])
            decisions = await partitions_of(consumer, [self.prefix + ORDERS_DECISIONS])
            consumer.assign(events + decisions)
            await consumer.seek_to_beginning(*events)
            since_ms = int(time.time() * 1000) - self.config.reconcile_lookback_s * 1000
            found = await consumer.offsets_for_times(dict.fromkeys(decisions, since_ms))
            ends = await consumer.end_offsets(events + decisions)
            for tp in decisions:
                consumer.seek(tp, found[tp].offset if found.get(tp) is not None else ends[tp])
            async for _tp, records in read_to_end(consumer, events + decisions, ends):
                for record in records:
                    with contextlib.suppress(DecodeError):
                        self._learn(decode(record.value))
        finally:
            await consumer.stop()

    def _learn(self, event: Event) -> None:
        if isinstance(event, OrderEvent):
            self.published.add(event.id)
            if event.account == self.config.account:
                self._track(event)
        elif isinstance(event, IntentApproved) and isinstance(event.intent, SubmitOrder) \
                and event.intent.account == self.config.account:
            self.decided[link_id_for(event.intent.id)] = event.intent.symbol

    async def _reconcile(self, producer: Any) -> None:
        """Report what the venue knows and orders.events does not (missed while HEAN was down)."""
        venue = {o["orderLinkId"]: o for o in await self.rest.open_orders("linear") if o.get("orderLinkId")}
        unsure = {*self.open_links, *(link for link in self.decided if link not in self.closed)}
        for link_id in sorted(unsure - set(venue)):
            found = await self.rest.find_order("linear", link_id)
            if found is not None:
                venue[link_id] = found
        events: list[Event] = []
        for view in venue.values():
            events += await self._events_for(view)
        await self._publish(producer, events)

    async def _events_for(self, view: dict[str, Any]) -> list[Event]:
        """The events one order's venue view implies and orders.events lacks: its ack, its fills
        (by execId from the venue's execution list), its end; in the order the WebSocket gives them."""
        now = time.time_ns()
        account = self.config.account
        events: list[Event] = []
        if view.get("cancelType") not in ("CancelByPostOnly", "CancelByFOK"):  # those never rested
            ack = {"topic": "order", "data": [{**view, "orderStatus": "New", "updatedTime": view.get("createdTime")}]}
            events += events_from_private(ack, account, now, self.origins)
        events += await self._missed_fills(view, now)
        if view.get("orderStatus") in ("Cancelled", "Rejected", "Deactivated"):
            events += events_from_private({"topic": "order", "data": [view]}, account, now, self.origins)
        return [e for e in events if e.id not in self.published]

    async def _missed_fills(self, view: dict[str, Any], now: int) -> list[Event]:
        """Fills of this order the log lacks, each as the venue reported it (same execId, so the
        same event id). Should the venue's list not cover the cumulative quantity, the remainder
        is reported as one fill whose quantity, value and fee are the venue's cumulative figures
        minus what orders.events holds, so the sums stay exact."""
        link_id = view["orderLinkId"]
        qty, value, fee = self.reported.get(link_id, (ZERO, ZERO, ZERO))
        if Decimal(view.get("cumExecQty") or "0") <= qty:
            return []
        listed = await self.rest.executions("linear", link_id)
        events = [e for e in events_from_private({"topic": "execution", "data": listed}, self.config.account,
                                                 now, self.origins) if e.id not in self.published]
        for event in events:
            assert isinstance(event, OrderPartiallyFilled | OrderFilled)
            qty, value, fee = qty + event.fill_qty, value + event.fill_qty * event.fill_price, fee + event.fee
        missing = Decimal(view.get("cumExecQty") or "0") - qty
        if missing <= 0:
            return events
        price = (Decimal(view.get("cumExecValue") or "0") - value) / missing
        item = {"symbol": view["symbol"], "orderLinkId": link_id, "orderId": view["orderId"],
                "execId": f"recon-{view['orderId']}-{view['cumExecQty']}", "side": view["side"],
                "execQty": str(missing), "execPrice": str(price),
                "execFee": str(Decimal(view.get("cumExecFee") or "0") - fee), "isMaker": False,
                "leavesQty": view.get("leavesQty") or "0", "orderQty": view.get("qty"),
                "execTime": view.get("updatedTime")}
        return events + events_from_private({"topic": "execution", "data": [item]}, self.config.account, now,
                                            self.origins)
