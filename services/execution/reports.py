"""Execution's reports: what orders.events already holds, the private WebSocket, reconciliation.

- `publish` sends order events and marks them reported only once the broker acknowledged them,
  so a lost delivery is retried (by reconciliation) instead of being taken as done.
- The private stream (auth, `order` + `execution`) becomes orders.events. It never ends by an
  error: a malformed message is dead-lettered and counted and triggers a reconciliation (the
  venue still knows what the message said); any other failure is logged, counted
  (`hean_task_failures_total{task="private_stream"}`), and the stream reconnects and reconciles.
  A ping every `ping_interval` keeps the connection (Bybit cuts a silent one after 10 minutes),
  and a connection without any message for `stale_after` seconds is replaced.
- Reconciliation on start and after every private stream interruption: every order the venue
  lists, that HEAN saw acknowledged and not closed, or that was decided and never seen close, is
  compared with the venue's view; missed acks, cancels and fills are reported, each fill with the
  venue's own execId (GET /v5/execution/list), so a reconciled fill is the same event the
  WebSocket would have given. It retries with backoff until it succeeds; `reconciled` is clear
  (and execution not ready) meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import msgspec
import websockets
from aiokafka import TopicPartition
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from schemas.events import (
    Event,
    OrderCancelled,
    OrderFilled,
    OrderPartiallyFilled,
    OrderRejected,
)
from schemas.topics import DLQ, ORDERS_DECISIONS, ORDERS_EVENTS
from services.domain.position import Position
from services.execution import core
from services.execution.drift import expected_wallet
from services.execution.metrics import ExecutionMetrics
from services.execution.opening import SETTLE_COIN, opening_events
from services.runtime.bus import KAFKA_ERRORS, dead_letter_raw, make_consumer, partitions_of, read_to_end, send_and_wait
from services.runtime.codec import decode, encode
from services.runtime.errors import DecodeError, DeliveryFailed, TransientError
from services.runtime.snapshot import Snapshot, tp_key
from services.venues.bybit.account import held_positions, wallet_balance
from services.venues.bybit.private import (
    SUBSCRIBE,
    MalformedPrivateMessage,
    auth_message,
    events_from_private,
    never_rested,
    parse_private,
    ping_message,
)
from services.venues.bybit.rest import BybitRest, VenueError
from services.venues.heartbeat import verdict

if TYPE_CHECKING:
    from services.execution.config import ExecutionConfig

log = logging.getLogger(__name__)
# The private stream's own logger for websockets: at DEBUG websockets logs every frame, and the
# auth frame carries the API key (and the private reports, account data). Capped at INFO, so a
# process at DEBUG still never writes them (tests/e2e/test_secrets.py).
_ws_log = logging.getLogger(f"{__name__}.websocket")
_ws_log.setLevel(logging.INFO)
ZERO = Decimal(0)
PRIVATE_SOURCE = "bybit.ws.private"
# What a reconciliation may meet and retry: the venue (down, refusing, rate-limited) or the broker.
# A venue answer that is not Bybit's shape is retried too: it is logged and counted each time.
_STATE = msgspec.msgpack.Decoder(core.ExecutionState)
RETRIABLE = (TransientError, VenueError, DeliveryFailed, *KAFKA_ERRORS, OSError, MalformedPrivateMessage)


def _key(event: Event) -> bytes:
    """orders.events is keyed by symbol; an account's opening, which has none, by its account."""
    return str(getattr(event, "symbol", None) or getattr(event, "account", "")).encode()


class Reports:
    """One account's reporting state and the tasks that keep orders.events complete."""

    def __init__(self, config: ExecutionConfig, prefix: str, bootstrap: str, rest: BybitRest,
                 metrics: ExecutionMetrics) -> None:
        self.config = config
        self.prefix = prefix
        self.bootstrap = bootstrap
        self.rest = rest
        self.metrics = metrics
        self.account = config.account
        self.producer: Any = None  # the events producer, set by the shell once started
        # What the log holds of this account (core.py): decided orders, every event delivered,
        # positions. Only the fold changes it, and an event only once the broker acknowledged it.
        self.state: core.ExecutionState = core.initial_state()
        self.sending: set[str] = set()  # event ids being delivered right now
        # orderLinkId → origin_ts of the orders this process placed, until they close: stamped on
        # their reports for the tick-to-trade metric. A local time, so not in the state.
        self.origins: dict[str, int] = {}
        self.publishes = 0  # publishes started (a snapshot reads the events' end between none)
        self.applied = 0  # records folded (read back, published, acted on), for `hean state`
        self.folded_to: dict[TopicPartition, int] = {}  # next offset per input partition, all folded below
        self._reconciling = asyncio.Lock()
        self.reconciled = asyncio.Event()
        self.last_message = 0.0
        self.ping_unanswered_since: float | None = None  # when the oldest unanswered ping went out
        self._malformed_kinds: set[str] = set()

    # ------------------------------------------------------------------ the state, read

    @property
    def _book(self) -> core.AccountExecution:
        return self.state.accounts.get(self.account) or core.AccountExecution()

    @property
    def positions(self) -> dict[str, Decimal]:
        """symbol → signed sum of this account's reported fills and adoptions."""
        return self._book.positions

    @property
    def books(self) -> dict[str, Position]:
        """symbol → the domain fold of the fills, with funding (the wallet check)."""
        return self._book.books

    @property
    def opened(self) -> core.Opening | None:
        """The account's opening, once in orders.events."""
        return self._book.opened

    @property
    def described(self) -> bool:
        """orders.events holds order events or funding of this account."""
        return self._book.described

    def fold(self, events: list[Event]) -> None:
        """Fold this account's records of the log into the state (the replay's fold)."""
        state = self.state
        for event in events:
            if core.account_of(event) == self.account:
                state = core.evolve(state, event)
                self.applied += 1
            if isinstance(event, OrderFilled | OrderCancelled | OrderRejected):
                self.origins.pop(event.order_link_id, None)
        self.state = state

    # ------------------------------------------------------------------ publishing

    async def publish(self, events: list[Event]) -> None:
        """Send the events orders.events lacks; they count as reported once the broker acked them.

        Raises DeliveryFailed when it did not: the caller's recovery (a reconciliation, or the
        process restarting) reports them again under the same ids."""
        fresh = {e.id: e for e in core.fresh(self.state, events) if e.id not in self.sending}
        if not fresh:
            return
        self.sending.update(fresh)
        self.publishes += 1
        topic = self.prefix + ORDERS_EVENTS
        try:
            await send_and_wait(self.producer, [(topic, _key(e), encode(e)) for e in fresh.values()])
        except DeliveryFailed:
            self.metrics.produce_failures.labels("execution").inc(len(fresh))
            raise
        finally:
            self.sending.difference_update(fresh)
        self.fold(list(fresh.values()))
        for event in fresh.values():
            self.metrics.events_out.labels("execution", topic).inc()
            self.metrics.order_events.labels("execution", type(event).__name__).inc()

    async def _dead_letter(self, raw: str | bytes, error: MalformedPrivateMessage) -> None:
        payload = raw.encode() if isinstance(raw, str) else raw
        kind = str(error).split(",", 1)[0]
        if kind not in self._malformed_kinds:  # the first of each kind is logged; all are counted
            self._malformed_kinds.add(kind)
            log.warning("malformed private message dead-lettered, reconciling: %s; message %r", error, payload[:200])
        record = dead_letter_raw("execution", PRIVATE_SOURCE, error.reason, str(error), payload, time.time_ns(),
                                 self.prefix + DLQ)
        await send_and_wait(self.producer, [record])
        self.metrics.dlq.labels("execution", error.reason).inc()
        self.metrics.private_malformed.inc()

    # ------------------------------------------------------------------ the private stream

    async def stream(self, stop: asyncio.Event) -> None:
        """The private stream until `stop`; it reconnects and reconciles after every interruption."""
        backoff = 0.2
        while not stop.is_set():
            connected_at = time.monotonic()
            try:
                await self._session(stop)
            except asyncio.CancelledError:
                raise
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError) as exc:
                log.warning("private WS dropped (%s); reconnecting and reconciling", exc)
            except Exception:  # supervised: logged, counted, then reconnect + reconcile recovers the reports
                log.exception("private stream failed; reconnecting and reconciling")
                self.metrics.task_failures.labels("execution", "private_stream").inc()
            if stop.is_set():
                return
            self.reconciled.clear()
            backoff = 0.2 if time.monotonic() - connected_at > 30 else min(10.0, backoff * 2)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff)
            await self.reconcile_until_done(stop)

    async def _session(self, stop: asyncio.Event) -> None:
        async with websockets.connect(self.config.ws_url, ping_interval=None, open_timeout=10,
                                      logger=_ws_log) as ws:
            expires = int(time.time() * 1000) + self.rest.time_offset_ms + 10_000
            await ws.send(auth_message(self.config.api_key, self.config.api_secret.reveal(), expires))
            auth = parse_private(await asyncio.wait_for(ws.recv(), 10))
            if not auth.get("success"):
                raise TransientError(f"private WS auth refused: {auth.get('ret_msg')}; check EXECUTION_API_KEY "
                                     "and EXECUTION_API_SECRET")
            await ws.send(SUBSCRIBE)
            self.last_message = time.monotonic()
            heartbeat = asyncio.create_task(self._heartbeat(ws, stop))
            try:
                async for raw in ws:
                    self.last_message = time.monotonic()
                    await self._on_message(raw)
            finally:
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await heartbeat

    async def _heartbeat(self, ws: Any, stop: asyncio.Event) -> None:
        """Ping per the venue's rule; close the connection on stop, when a ping went unanswered
        for `ws_pong_timeout` seconds, or when nothing at all came for `ws_stale_after` seconds,
        so the stream loop reconnects and reconciles."""
        n = 0
        config = self.config
        tick = min(config.ws_ping_interval, config.ws_pong_timeout)
        self.ping_unanswered_since = None
        last_ping = time.monotonic()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), tick)
            if stop.is_set():
                await ws.close()
                return
            now = time.monotonic()
            waiting = self.ping_unanswered_since
            cause = verdict(now, self.last_message, waiting, config.ws_stale_after, config.ws_pong_timeout)
            if cause is not None:
                log.warning("private WS %s; reconnecting", "silent" if cause == "stale" else "answered no ping")
                self.metrics.ws_reconnects.labels("execution", cause).inc()
                await ws.close(1000, cause)
                return
            if now - last_ping >= config.ws_ping_interval:
                n += 1
                last_ping = now
                if waiting is None:
                    self.ping_unanswered_since = now
                await ws.send(ping_message(n))

    async def _on_message(self, raw: str | bytes) -> None:
        try:
            message = parse_private(raw)
            if "topic" not in message:
                if message.get("op") == "pong":
                    self.ping_unanswered_since = None
                return  # pong, subscribe ack
            events = events_from_private(message, self.config.account, time.time_ns(), self.origins)
        except MalformedPrivateMessage as exc:
            await self._dead_letter(raw, exc)
            await self.reconcile_until_done(None)  # what the message said, the venue still knows
            return
        await self.publish(events)

    # ------------------------------------------------------------------ reconciliation

    async def read_back(self, snapshot: Snapshot | None, committed: Mapping[TopicPartition, int]) -> None:
        """Rebuild the state from the log, as `hean replay execution` folds it: the snapshot's
        state, then orders.events from the snapshot's offsets (else the beginning) to the end,
        and orders.decisions from its offsets: acted on up to the group's `committed` offsets,
        only decided past them (the decisions loop fetches those again and acts on them).
        A snapshot ahead of the committed offsets (the group reset) is not used."""
        consumer = make_consumer(self.bootstrap, None)
        await consumer.start()
        try:
            events = await partitions_of(consumer, [self.prefix + ORDERS_EVENTS])
            decisions = await partitions_of(consumer, [self.prefix + ORDERS_DECISIONS])
            tps = events + decisions
            consumer.assign(tps)
            beginnings = await consumer.beginning_offsets(tps)
            ends = await consumer.end_offsets(tps)
            acted_to = {tp: max(committed.get(tp, 0), beginnings[tp]) for tp in decisions}
            if snapshot is not None:
                try:
                    restored = _STATE.decode(snapshot.state)
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:  # another version's
                    log.warning("execution snapshot unreadable (%s); rebuilding from the log", exc)
                    snapshot = None
            offsets = snapshot.offsets if snapshot is not None else {}
            if any(offsets.get(tp_key(tp.topic, tp.partition), 0) > acted_to[tp] for tp in decisions):
                log.warning("execution snapshot is ahead of the committed decisions; rebuilding from the log")
                snapshot, offsets = None, {}
            self.state = core.initial_state() if snapshot is None else restored
            self.applied = 0 if snapshot is None else snapshot.events_applied
            for tp in tps:
                offset = offsets.get(tp_key(tp.topic, tp.partition), beginnings[tp])
                consumer.seek(tp, min(max(offset, beginnings[tp]), ends[tp]))
            decision_topic = self.prefix + ORDERS_DECISIONS
            async for tp, records in read_to_end(consumer, tps, ends):
                for record in records:
                    try:
                        event = decode(record.value)
                    except DecodeError:  # dead-lettered by whoever consumed it
                        continue
                    if core.account_of(event) != self.account:
                        continue
                    if tp.topic == decision_topic and record.offset >= acted_to[tp]:
                        self.state = core.note_decision(self.state, event)
                    else:
                        self.state = core.evolve(self.state, event)
                        self.applied += 1
            # Every event of the account below these offsets is folded (read back, or published
            # by this process and folded once acknowledged): where a snapshot may resume.
            self.folded_to = {tp: max(ends[tp], await consumer.position(tp)) for tp in events}
            self.folded_to.update(acted_to)
        finally:
            await consumer.stop()

    async def snapshot_offsets(self, consumer: Any, acted_to: Mapping[TopicPartition, int]) -> dict[str, int]:
        """The offsets a snapshot of the state now resumes from: orders.decisions as acted on
        (`acted_to`, committed), orders.events at its end when no publish was in flight while
        the end was read (everything of the account below it is folded), else as before."""
        events = [tp for tp in self.folded_to if tp.topic == self.prefix + ORDERS_EVENTS]
        started = self.publishes
        if not self.sending and events:
            try:
                ends = await consumer.end_offsets(events)
            except KAFKA_ERRORS as exc:  # the broker away: the snapshot keeps the offsets it had
                log.warning("orders.events' end unknown for the snapshot (%r); keeping its offsets", exc)
                ends = {}
            if not self.sending and self.publishes == started:
                self.folded_to.update(ends)
        self.folded_to.update(acted_to)
        return {tp_key(tp.topic, tp.partition): offset for tp, offset in self.folded_to.items()}

    # ------------------------------------------------------------------ the account's opening

    async def open_account(self) -> None:
        """Adopt what the venue holds when orders.events knows nothing of this account yet (the
        first start of a session on it; opening.py): its positions first, then the opening, so a
        crash in between adopts again under the same ids instead of leaving a position out. A log
        that holds orders or funding of the account but no opening (written before openings
        existed) is left as it is: the account's history is already in it."""
        if self.opened is not None or self.described:
            return
        venue_ms, wallet = await self.rest.wallet_balance(SETTLE_COIN)
        held = held_positions(await self.rest.positions("linear"))
        adopted, opened = opening_events(self.config.account, SETTLE_COIN, wallet_balance(wallet, SETTLE_COIN), held,
                                         venue_ms, time.time_ns())
        await self.publish(list(adopted))
        await self.publish([opened])
        log.info("account %s opened: %s %s in the wallet, %s positions adopted", self.config.account,
                 opened.wallet_balance, SETTLE_COIN, len(adopted))

    async def open_until_done(self, stop: asyncio.Event) -> None:
        """`open_account`, retried with backoff (0.5 s doubling to 30 s) until it succeeds or
        `stop`, as a reconciliation is: trading an account whose holdings the log does not know
        would leave equity, the limits and the checks wrong. Failures count in
        `hean_reconcile_failures_total`; execution is not ready meanwhile."""
        backoff = 0.5
        while not stop.is_set():
            try:
                await self.open_account()
                return
            except (*RETRIABLE, ValueError) as exc:
                self.metrics.reconcile_failures.inc()
                log.warning("opening the account failed (%s); retrying in %.1f s", exc, backoff)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff)
                backoff = min(30.0, backoff * 2)

    def expected_wallet(self) -> Decimal | None:
        """The wallet balance the log implies (drift.py), or None while it holds no opening."""
        return None if self.opened is None else expected_wallet(self.opened.wallet_balance, self.books)

    async def reconcile_until_done(self, stop: asyncio.Event | None) -> None:
        """Reconcile, retrying with backoff (0.5 s doubling to 30 s) until it succeeds or `stop`.

        Why not give up: a fill the log lacks would leave accounting and risk wrong for good.
        Each failure is logged and counted (`hean_reconcile_failures_total`); `reconciled` stays
        clear, so the service reports itself not ready meanwhile."""
        self.reconciled.clear()
        backoff = 0.5
        while stop is None or not stop.is_set():
            try:
                await self.reconcile()
            except RETRIABLE as exc:
                self.metrics.reconcile_failures.inc()
                log.warning("reconciliation failed (%s); retrying in %.1f s", exc, backoff)
                if isinstance(exc, VenueError) and exc.ret_code == 10002:
                    with contextlib.suppress(*RETRIABLE):
                        await self.rest.sync_time()
                if stop is None:
                    await asyncio.sleep(backoff)
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), backoff)
                backoff = min(30.0, backoff * 2)
                continue
            self.reconciled.set()
            return

    async def reconcile(self) -> None:
        """Report what the venue knows and orders.events does not (missed while HEAN was down).
        One at a time: the stream's reconnects and the position check both ask for one, and two
        at once would each count the other's fills as missing."""
        async with self._reconciling:
            await self._reconcile()

    async def _reconcile(self) -> None:
        venue = {o["orderLinkId"]: o for o in await self.rest.open_orders("linear") if o.get("orderLinkId")}
        since_ns = time.time_ns() - self.config.reconcile_lookback_s * 10**9
        unsure = set(core.unsure_orders(self.state, self.account, since_ns))
        for link_id in sorted(unsure - set(venue)):
            found = await self.rest.find_order("linear", link_id)
            if found is not None:
                venue[link_id] = found
        events: list[Event] = []
        for view in venue.values():
            events += await self.events_for(view)
        await self.publish(events)
        await self.publish(await self.missed_funding())

    async def missed_funding(self) -> list[Event]:
        """Funding settlements the log lacks (pushed while the stream was down): the venue's
        funding executions, each with the id the stream would have given it; only those after the
        account's opening, whose wallet balance already holds the ones before."""
        listed = await self.rest.executions("linear", exec_type="Funding")
        found = events_from_private({"topic": "execution", "data": listed}, self.config.account, time.time_ns(),
                                    self.origins)
        opened_at = self.opened.ts_event if self.opened is not None else 0
        return [e for e in core.fresh(self.state, found) if e.ts_event > opened_at]

    async def events_for(self, view: dict[str, Any]) -> list[Event]:
        """The events one order's venue view implies and orders.events lacks: its ack, its fills
        (by execId from the venue's execution list), its end; in the order the WebSocket gives them."""
        now = time.time_ns()
        account = self.config.account
        events: list[Event] = []
        if not never_rested(view):
            ack = {"topic": "order", "data": [{**view, "orderStatus": "New", "updatedTime": view.get("createdTime")}]}
            events += events_from_private(ack, account, now, self.origins)
        events += await self._missed_fills(view, now)
        if view.get("orderStatus") in ("Cancelled", "Rejected", "Deactivated"):
            events += events_from_private({"topic": "order", "data": [view]}, account, now, self.origins)
        return core.fresh(self.state, events)

    async def _missed_fills(self, view: dict[str, Any], now: int) -> list[Event]:
        """Fills of this order the log lacks, each as the venue reported it (same execId, so the
        same event id). Should the venue's list not cover the cumulative quantity, the remainder
        is reported as one fill whose quantity, value and fee are the venue's cumulative figures
        minus what orders.events holds, so the sums stay exact."""
        link_id = view["orderLinkId"]
        if Decimal(view.get("cumExecQty") or "0") <= core.reported_fills(self.state, self.account, link_id)[0]:
            return []
        listed = await self.rest.executions("linear", link_id)
        # Read what is reported only now: the private stream may have reported some of these fills
        # while the list was on its way, and a total from before would count them twice.
        qty, value, fee = core.reported_fills(self.state, self.account, link_id)
        events = core.fresh(self.state, events_from_private({"topic": "execution", "data": listed},
                                                            self.config.account, now, self.origins))
        for event in events:
            assert isinstance(event, OrderPartiallyFilled | OrderFilled)
            qty, value, fee = qty + event.fill_qty, value + event.fill_qty * event.fill_price, fee + event.fee
        missing = Decimal(view.get("cumExecQty") or "0") - qty
        if missing <= 0:
            return events
        price = (Decimal(view.get("cumExecValue") or "0") - value) / missing
        item = {"symbol": view["symbol"], "orderLinkId": link_id, "orderId": view["orderId"],
                "execId": f"recon-{view['orderId']}-{view['cumExecQty']}", "side": view["side"],
                "execQty": str(missing), "execPrice": format(price, "f"),
                "execFee": str(Decimal(view.get("cumExecFee") or "0") - fee), "isMaker": False,
                "leavesQty": view.get("leavesQty") or "0", "orderQty": view.get("qty"),
                "execTime": view.get("updatedTime")}
        return events + events_from_private({"topic": "execution", "data": [item]}, self.config.account, now,
                                            self.origins)
