"""The execution shell: approved intents → Bybit V5 orders; the private WS → orders.events.

- One active executor per account (Redis lease with a fencing token); a second instance waits,
  and an executor that lost its lease stops before its next effect and goes back to waiting.
- Decisions are read as group `hean.execution.<account>` (each account's executor sees every
  decision and acts on its own); each batch's effects are performed, then its venue refusals
  (OrderRejected), amend answers and dead letters are sent on the one producer and acknowledged,
  then its offsets are committed. A crash re-reads uncommitted decisions: what was logged is in
  the recovered state, so it is not sent again and an order it ended is not placed again;
  `place_order` is idempotent by orderLinkId, so no order is placed twice; a repeated cancel gets
  110001, which is fine. An undecodable decision goes to `dlq` with its reason (a crash before
  the commit may dead-letter it twice).
- Reports (reports.py): the private stream, reconciliation on start and after every stream
  interruption, and delivery-checked publishing to orders.events.
- At the first start of a session on the account, what the venue holds (wallet, positions) is
  logged as its opening (opening.py); the account checks (checks.py) then compare the venue's
  positions and wallet with orders.events.
- Background tasks (private stream, lease renewal) run in a TaskGroup: one that fails
  unexpectedly stops the executor with its error, so the process exits non-zero and its
  supervisor restarts it; none dies unseen.
- The state (orders decided and reported, decisions acted on, positions) is the pure core's
  (core.py), a fold of orders.decisions and orders.events: recovered at each term from its
  snapshot (scope "execution@<account>") and the log past it, snapshotted between batches and at a
  clean stop, so `hean state execution` equals `hean replay execution`.
- A create that finds its order already on the venue (a restart re-reading its decision after the
  order was placed) reconciles that order at once: its WebSocket reports went to the dead process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
import uuid
from typing import Any

import msgspec
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from schemas.events import (
    AmendOrder,
    CancelAllOrders,
    CancelOrder,
    Event,
    IntentApproved,
    OrderRejected,
    SubmitOrder,
)
from schemas.topics import DLQ, ORDERS_DECISIONS, ORDERS_EVENTS
from services.domain.ids import link_id_for, local_reject_id
from services.execution import core
from services.execution.amends import send_amends, stale_report
from services.execution.checks import AccountChecks
from services.execution.config import ExecutionConfig
from services.execution.lease import Lease
from services.execution.metrics import ExecutionMetrics
from services.execution.reports import RETRIABLE, Reports
from services.runtime.bus import dead_letter, make_admin, make_consumer, make_producer, send_and_wait
from services.runtime.codec import decode, encode
from services.runtime.errors import DecodeError, NotAccepted, TransientError
from services.runtime.settings import RuntimeSettings
from services.runtime.snapshot import Snapshot, SnapshotStore
from services.venues.bybit.private import create_request
from services.venues.bybit.rest import DUPLICATE_LINK_ID, BybitRest, VenueError

log = logging.getLogger(__name__)
Batchable = AmendOrder | CancelOrder | SubmitOrder  # intents a run of which goes out in one request
ORDER_NOT_FOUND = 110001


def group_id(prefix: str, account: str) -> str:
    """The consumer group of one account's executors: one group per account, so every account's
    executor reads every decision (a shared group would split them between accounts)."""
    return f"{prefix}hean.execution.{account}"


async def committed_offsets(bootstrap: str, group: str, topic: str, attempts: int = 20) -> dict[TopicPartition, int]:
    """The group's committed offsets of `topic` ({} for a group that committed none). Retried
    while the coordinator is not available: guessing "none" would fold decisions acted on as
    merely decided, and the state would not be the replay's."""
    admin = make_admin(bootstrap)
    await admin.start()
    try:
        for attempt in range(attempts):
            try:
                found = await admin.list_consumer_group_offsets(group)
                return {tp: meta.offset for tp, meta in found.items() if tp.topic == topic and meta.offset >= 0}
            except KafkaError as exc:
                if not exc.retriable or attempt == attempts - 1:
                    raise
                await asyncio.sleep(0.5)
        raise AssertionError("unreachable")
    finally:
        await admin.close()


class Execution:
    """Runs one account's executor until `stop` is set."""

    def __init__(self, config: ExecutionConfig, settings: RuntimeSettings) -> None:
        self.config = config
        self.settings = settings
        self.prefix = settings.topic_prefix
        self.group_id = group_id(self.prefix, config.account)
        self.rest = BybitRest(config.rest_url, config.api_key, config.api_secret,
                              breaker_failures=config.breaker_failures,
                              breaker_open_seconds=config.breaker_open_seconds)
        self.rest.on_send = self._on_send
        self.metrics = ExecutionMetrics(self.rest)
        # The owner names this process, not just the instance: a restarted instance (same name)
        # waits for its dead predecessor's lease to lapse and gets a new fencing token.
        owner = f"{config.account}-{settings.instance}-{uuid.uuid4().hex[:8]}"
        self.lease = Lease(settings.redis_url, config.account, owner,
                           ttl_ms=config.lease_ttl_ms, namespace=f"hean:{self.prefix}" if self.prefix else "hean")
        self.reports = Reports(config, self.prefix, settings.kafka_bootstrap, self.rest, self.metrics)
        self.checks = AccountChecks(config, self.prefix, self.reports, self.metrics)
        # The state's snapshots, under the scope `hean state execution` reads ("execution@sim-1").
        self.scope = f"execution@{config.account}"
        self.snapshots = SnapshotStore(settings.redis_url, namespace=f"hean:{self.prefix}" if self.prefix else "hean")
        self.acted_to: dict[TopicPartition, int] = {}  # orders.decisions committed (acted on) up to here
        self._last_snapshot = 0.0
        self.ends_reader = make_consumer(settings.kafka_bootstrap, None)  # reads orders.events' end for snapshots
        # The account's orders, decisions acted on and reports live in `reports.state` (core.py),
        # a fold of the log. These two are wall-clock timings for the latency metrics only:
        self.unsent: dict[str, int] = {}  # orderLinkId → origin_ts, until its create request leaves
        self.sent_at: dict[str, int] = {}  # orderLinkId → when its create left, until answered
        self.active = asyncio.Event()
        self.lost_lease = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        """Standby until the lease is ours, then act; back to standby if the lease is lost."""
        self.metrics.serve(self.settings.metrics_port)
        self.metrics.up.labels("execution").set(1)  # running; hean_execution_active says if it holds the lease
        self.reports.producer = make_producer(self.settings.kafka_bootstrap)
        await self.reports.producer.start()
        await self.ends_reader.start()
        try:
            while await self._wait_for_lease(stop):
                await self._active_term(stop)
                if stop.is_set():
                    break
                log.warning("execution lease lost; waiting to take it again")
                self.lost_lease.clear()
                self.active.clear()
        finally:
            self.metrics.active.labels("execution", self.config.account).set(0)
            self.metrics.up.labels("execution").set(0)
            self.metrics.ready.labels("execution").set(0)
            await self.reports.producer.stop()
            await self.ends_reader.stop()
            with contextlib.suppress(RedisError):
                await self.lease.release()
            await self.lease.close()
            await self.rest.close()
            await self.snapshots.close()

    async def _active_term(self, stop: asyncio.Event) -> None:
        """One term as the account's active executor: reconcile, then act on decisions, with the
        private stream and the lease renewal beside it until `stop` or the lease is lost."""
        log.info("execution active", extra={"account": self.config.account, "token": self.lease.token})
        self.metrics.active.labels("execution", self.config.account).set(1)
        try:
            with contextlib.suppress(*RETRIABLE):  # the reconciliation below retries and syncs again
                await self.rest.sync_time()
            await self._recover()
            await self.reports.open_until_done(stop)  # what the venue holds, logged once per account
            async with asyncio.TaskGroup() as tasks:
                background = [tasks.create_task(self.reports.stream(stop), name="private_stream"),
                              tasks.create_task(self._keep_lease(stop), name="lease_renewal"),
                              tasks.create_task(self.checks.watch(stop, self.active), name="account_check")]
                for task in background:
                    task.add_done_callback(self._task_ended)
                await self.reports.reconcile_until_done(stop)
                self.active.set()
                await self._decisions(stop)
                for task in background:
                    task.cancel()
            if stop.is_set() and not self.lost_lease.is_set():
                await self._snapshot()  # the state at the end of the run, every report in: `hean state`
        except BaseExceptionGroup as group:  # the term failed: exit non-zero with the cause itself
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise
        finally:
            self.metrics.active.labels("execution", self.config.account).set(0)
            self.metrics.ready.labels("execution").set(0)

    async def _recover(self) -> None:
        """The state as of the log: the last snapshot and what the log holds past it, with the
        decisions acted on up to the group's committed offsets (reports.read_back)."""
        snapshot = await self.snapshots.load(self.scope, 0)
        committed = await committed_offsets(self.settings.kafka_bootstrap, self.group_id,
                                            self.prefix + ORDERS_DECISIONS)
        await self.reports.read_back(snapshot, committed)
        self.acted_to = {tp: offset for tp, offset in self.reports.folded_to.items()
                         if tp.topic == self.prefix + ORDERS_DECISIONS}
        log.info("execution state recovered", extra={"snapshot": snapshot is not None,
                                                      "summary": core.summarize(self.reports.state)})

    async def _snapshot(self) -> None:
        """Store the state with the offsets it reflects (reports.snapshot_offsets), so a restart
        reads only what came after, and `hean state execution` shows it. Between batches only:
        no decision is half acted on then. A snapshot is a shortcut, not a record: one Redis
        refuses is logged and the next one is tried at the interval (recovery re-reads more)."""
        self._last_snapshot = time.monotonic()
        offsets = await self.reports.snapshot_offsets(self.ends_reader, self.acted_to)
        state = msgspec.msgpack.encode(self.reports.state)
        try:
            await self.snapshots.save(Snapshot(service=self.scope, shard=0, state=state, offsets=offsets,
                                               taken_at_ns=time.time_ns(), events_applied=self.reports.applied))
        except RedisError as exc:
            log.warning("execution snapshot not saved (%s); the next one in %.0f s", exc,
                        self.settings.snapshot_every_seconds)

    def _task_ended(self, task: asyncio.Task[None]) -> None:
        """A background task that failed is logged and counted here, whatever happens next."""
        if not task.cancelled() and task.exception() is not None:
            self.metrics.task_failures.labels("execution", task.get_name()).inc()
            log.error("execution's %s task failed; stopping the executor: %r", task.get_name(), task.exception())

    async def _wait_for_lease(self, stop: asyncio.Event) -> bool:
        """A second instance waits here until the active one goes away."""
        while not stop.is_set():
            try:
                if await self.lease.acquire() is not None:
                    return True
            except RedisError as exc:
                log.warning("cannot reach Redis for the execution lease (%s); retrying", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.lease_ttl_ms / 2000)
        return False

    async def _keep_lease(self, stop: asyncio.Event) -> None:
        """Renew on its own clock, so slow orders (rate limits, retries) never let the lease lapse.

        A Redis error is retried until the TTL has passed since the last renewal: then the lease
        may be someone else's, so this instance stops acting."""
        renewed = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(self.config.lease_ttl_ms / 3000)
            try:
                if await self.lease.renew():
                    renewed = time.monotonic()
                    continue
            except RedisError as exc:
                if time.monotonic() - renewed < self.config.lease_ttl_ms / 1000:
                    log.warning("lease renewal failed (%s); retrying", exc)
                    continue
            log.error("lost the execution lease; no further orders from this instance")
            self.lost_lease.set()
            return

    # ------------------------------------------------------------------ decisions → venue

    async def _decisions(self, stop: asyncio.Event) -> None:
        """Fetch, act, log, commit: a batch's refusals, amend answers and dead letters go out on
        the one producer (reports.publish: only what the log lacks, folded once acknowledged),
        then its offsets are committed. A crash in between re-reads the batch; its outputs are in
        the log by then, so the restart's state holds them and they are not sent again, and an
        order already closed in the log is not placed again (core.decide)."""
        consumer = make_consumer(self.settings.kafka_bootstrap, self.group_id, self.prefix + ORDERS_DECISIONS,
                                 session_timeout_ms=self.settings.session_timeout_ms)
        await consumer.start()
        ready = self.metrics.ready.labels("execution")
        try:
            while not stop.is_set() and not self.lost_lease.is_set():
                if time.monotonic() - self._last_snapshot >= self.settings.snapshot_every_seconds:
                    await self._snapshot()
                batch = await consumer.getmany(timeout_ms=100, max_records=50)
                # ready: the lease held, reconciled, and the decisions assigned
                ready.set(1 if consumer.assignment() and self.reports.reconciled.is_set() else 0)
                if not batch:
                    continue
                by_symbol: dict[bytes, list[Any]] = {}
                fetched = self._fetched(batch, by_symbol)
                outputs = await self._act_until_done(list(by_symbol.values()), stop)
                if outputs is None:  # stopped, or another instance holds the lease: stand by
                    return
                # Acted on only now, not when fetched: a batch given up (the lease lost) is fetched
                # again and must not be taken for a repeat then.
                self.reports.fold(fetched)
                events_topic = self.prefix + ORDERS_EVENTS
                dead = [output for output in outputs if output[0] != events_topic]
                if dead:
                    await send_and_wait(self.reports.producer, dead)
                await self.reports.publish([decode(value) for topic, _key, value in outputs if topic == events_topic])
                if fetched:
                    self._chaos_crash()
                offsets = {tp: records[-1].offset + 1 for tp, records in batch.items()}
                await consumer.commit(offsets)
                self.acted_to.update(offsets)
        finally:
            await consumer.stop()

    def _chaos_crash(self) -> None:
        """The chaos kill point "effects performed and logged, offsets not committed": SIGKILL this
        process once while HEAN_CHAOS_CRASH_DIR holds a file named "execution" (removed first, so
        the restart runs on); the runtime has the same point for the folded services."""
        directory = self.settings.chaos_crash_dir
        if not directory:
            return
        try:
            os.unlink(os.path.join(directory, "execution"))
        except FileNotFoundError:
            return
        log.warning("chaos: killed after acting on a batch, before committing its offsets")
        os.kill(os.getpid(), signal.SIGKILL)

    def _fetched(self, batch: dict[Any, list[Any]], by_symbol: dict[bytes, list[Any]]) -> list[Event]:
        """Sort a batch's records by symbol key into `by_symbol`, leaving out the approvals acted on
        already (a repeat from an emitter without a transaction, docs/COMMITS.md: same intent id,
        dropped rather than sent to the venue again, which would be safe by orderLinkId but a
        round trip). Approved orders are noted as decided (in flight: reconciliation asks about
        them, their reports get their origin). Returns the decisions to fold once acted on. An
        undecodable record always goes on to `_act`, and so to the dead-letter topic."""
        account, fetched, ids = self.config.account, [], set()
        for tp, records in batch.items():
            self.metrics.events_in.labels("execution", tp.topic).inc(len(records))
            for record in records:
                try:
                    decision = decode(record.value)
                except NotAccepted:
                    continue
                except DecodeError:
                    decision = None
                if isinstance(decision, IntentApproved) and decision.intent.account == account:
                    intent_id = decision.intent.id
                    fetched.append(decision)  # folded either way: folding is once per id
                    if core.decide(self.reports.state, account, decision) is None or intent_id in ids:
                        continue
                    ids.add(intent_id)
                    self.reports.state = core.note_decision(self.reports.state, decision)
                    if isinstance(decision.intent, SubmitOrder):
                        self.reports.origins[link_id_for(intent_id)] = decision.intent.origin_ts
                by_symbol.setdefault(record.key or b"", []).append(record)
        return fetched

    async def _act_until_done(self, groups: list[list[Any]], stop: asyncio.Event,
                              ) -> list[tuple[str, bytes, bytes]] | None:
        """Act on a batch; when the venue fails transiently (5xx, timeouts, the circuit open) wait
        and act on the same batch again, so a failing venue delays orders but loses none.

        Acting twice is safe: creates are idempotent by orderLinkId (a second create finds the
        order and reconciles it), a repeated cancel answers 110001, and refusals carry
        deterministic ids and are committed only once the whole batch went through."""
        backoff = 0.5
        while not stop.is_set() and not self.lost_lease.is_set():
            try:
                return await self._act_side_by_side(groups)
            except TransientError as exc:
                if self.lost_lease.is_set():
                    return None
                wait = max(backoff, self.rest.open_until - time.monotonic())
                self.metrics.venue_retries.inc()
                log.warning("venue failing (%s); acting on the batch again in %.1f s", exc, wait)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)
                backoff = min(10.0, backoff * 2)
        return None

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
        run: list[tuple[Any, Batchable]] = []  # consecutive amends (or cancels, or creates), sent together
        for record in records:
            intent = self._batchable(record)
            if intent is not None and (not run or type(run[0][1]) is type(intent)):
                run.append((record, intent))
                continue
            outputs += await self._send_run(run)
            run = [(record, intent)] if intent is not None else []
            if intent is None:
                outputs += await self._act(record)
        return outputs + await self._send_run(run)

    def _batchable(self, record: Any) -> Batchable | None:
        """The amend, cancel or order an approved decision of this account carries, else None
        (`_act` then deals with the record, undecodable ones included)."""
        try:
            decision = decode(record.value)
        except DecodeError:
            return None
        intent = decision.intent if isinstance(decision, IntentApproved) else None
        if isinstance(intent, AmendOrder | CancelOrder | SubmitOrder) and intent.account == self.config.account:
            return intent
        return None

    async def _send_run(self, run: list[tuple[Any, Batchable]]) -> list[tuple[str, bytes, bytes]]:
        if not run:
            return []
        if isinstance(run[0][1], AmendOrder):
            return await self._amend([(r, a) for r, a in run if isinstance(a, AmendOrder)])
        batch = self.config.batch_creates if isinstance(run[0][1], SubmitOrder) else self.config.batch_cancels
        if len(run) == 1 or not batch:
            return [out for record, _ in run for out in await self._act(record)]
        if isinstance(run[0][1], SubmitOrder):
            return await self._place_run([(r, o) for r, o in run if isinstance(o, SubmitOrder)])
        if not await self.lease.holds():
            self.lost_lease.set()
            raise TransientError("the execution lease moved to another instance; not acting")
        cancels = [c for _, c in run if isinstance(c, CancelOrder)]
        outcomes = await self.rest.cancel_orders("linear", [
            {"symbol": c.symbol, "orderLinkId": link_id_for(c.intent_id)} for c in cancels])
        self.metrics.orders.labels("execution", "cancel_sent").inc(len(cancels))
        for cancel, (code, message) in zip(cancels, outcomes, strict=True):
            if code not in (0, ORDER_NOT_FOUND):  # already filled or cancelled: nothing to do
                log.warning("cancel of %s refused: retCode %s: %s", cancel.intent_id, code, message)
        return []  # the order stream reports each cancel

    async def _place_run(self, run: list[tuple[Any, SubmitOrder]]) -> list[tuple[str, bytes, bytes]]:
        """Orders of one symbol that arrived together, as one /v5/order/create-batch: each as
        `_act` places one (stale ones refused, 110072 a placement that had landed, reconciled;
        any other code an OrderRejected)."""
        if not await self.lease.holds():
            self.lost_lease.set()
            raise TransientError("the execution lease moved to another instance; not acting")
        now_ms, outputs = time.time() * 1000, []
        fresh: list[SubmitOrder] = []
        for record, intent in run:
            age_ms = now_ms - record.timestamp
            if age_ms > self.config.max_decision_age_ms:
                self.metrics.orders.labels("execution", "stale").inc()
                outputs.append(self._rejected(intent, link_id_for(intent.id), 0,
                                              f"stale decision: waited {age_ms / 1000:.1f} s in the log"))
                continue
            fresh.append(intent)
            self.unsent[link_id_for(intent.id)] = intent.origin_ts
        try:
            outcomes = await self.rest.place_orders("linear", [create_request(i) for i in fresh]) if fresh else []
        finally:
            for intent in fresh:
                self.unsent.pop(link_id_for(intent.id), None)
        for intent, (code, message) in zip(fresh, outcomes, strict=True):
            link_id = link_id_for(intent.id)
            sent = self.sent_at.pop(link_id, None)
            if code == 0 and sent is not None:
                self.metrics.order_ack.observe((time.time_ns() - sent) / 1e9)
            existing = await self.rest.find_order("linear", link_id) if code == DUPLICATE_LINK_ID else None
            if code == 0 or existing is not None:
                self.metrics.orders.labels("execution", "placed").inc()
                if existing is not None:  # placed before a restart: its reports went to the dead process
                    await self.reports.publish(await self.reports.events_for(existing))
                continue
            self.metrics.orders.labels("execution", "refused").inc()
            outputs.append(self._rejected(intent, link_id, code, message))
        return outputs

    async def _amend(self, amends: list[tuple[Any, AmendOrder]]) -> list[tuple[str, bytes, bytes]]:
        """Send a run of amends (stale ones are refused here, as stale orders are) and log the
        venue's answer to each as OrderAmended or OrderAmendRejected."""
        if not amends:
            return []
        if not await self.lease.holds():
            self.lost_lease.set()
            raise TransientError("the execution lease moved to another instance; not acting")
        now_ms, now_ns = time.time() * 1000, time.time_ns()
        fresh = [a for r, a in amends if now_ms - r.timestamp <= self.config.max_decision_age_ms]
        stale = [stale_report(a, (now_ms - r.timestamp) / 1000, now_ns) for r, a in amends
                 if now_ms - r.timestamp > self.config.max_decision_age_ms]
        reports = stale + await send_amends(self.rest, fresh, self.config.batch_amends)
        self.metrics.orders.labels("execution", "amend_sent").inc(len(fresh))
        return [(self.prefix + ORDERS_EVENTS, report.symbol.encode(), encode(report)) for report in reports]

    def _on_send(self, method: str, path: str, body: dict[str, Any] | None) -> None:
        """Tick-to-order ends when an order's first create request leaves, after any pacing."""
        if path not in ("/v5/order/create", "/v5/order/create-batch") or body is None:
            return
        now = time.time_ns()
        for order in body.get("request") or [body]:
            link_id = order.get("orderLinkId", "")
            origin = self.unsent.pop(link_id, None)
            if origin is not None:
                self.sent_at[link_id] = now
                if origin:
                    self.metrics.tick_to_order.observe((now - origin) / 1e9)

    async def _act(self, record: Any) -> list[tuple[str, bytes, bytes]]:
        try:
            decision = decode(record.value)
        except NotAccepted:
            return []
        except DecodeError as exc:
            log.warning("undecodable decision at %s:%s dead-lettered: %s", record.partition, record.offset, exc)
            self.metrics.dlq.labels("execution", exc.reason).inc()
            return [dead_letter(record, "execution", exc.reason, str(exc), self.prefix + DLQ)]
        if not isinstance(decision, IntentApproved) or decision.intent.account != self.config.account:
            return []
        if not await self.lease.holds():
            self.lost_lease.set()
            raise TransientError("the execution lease moved to another instance; not acting")
        intent = decision.intent
        if isinstance(intent, CancelAllOrders):
            cancelled = await self.rest.cancel_all("linear", intent.symbol)  # the order stream reports each
            self.metrics.orders.labels("execution", "cancel_all_sent").inc()
            log.info("cancel-all on %s cancelled %s orders", intent.symbol, len(cancelled))
            return []
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
        reports = self.reports
        self.unsent[link_id] = intent.origin_ts
        try:
            placed = await self.rest.place_order(create_request(intent))
            sent = self.sent_at.get(link_id)
            if sent is not None:
                self.metrics.order_ack.observe((time.time_ns() - sent) / 1e9)
            self.metrics.orders.labels("execution", "placed").inc()
            if "venueView" in placed:  # placed before a restart: its reports went to the dead process
                await reports.publish(await reports.events_for(placed["venueView"]))
            return []
        except VenueError as exc:
            self.metrics.orders.labels("execution", "refused").inc()
            return [self._rejected(intent, link_id, exc.ret_code, exc.ret_msg)]
        finally:
            self.unsent.pop(link_id, None)
            self.sent_at.pop(link_id, None)

    def _rejected(self, intent: SubmitOrder, link_id: str, ret_code: int, reason: str) -> tuple[str, bytes, bytes]:
        """An OrderRejected for orders.events (logged before the decision's offset is committed)."""
        now = time.time_ns()
        rejected = OrderRejected(id=local_reject_id(intent.id), ts_event=now, ts_ingest=now,
                                 origin_ts=intent.origin_ts, account=intent.account, symbol=intent.symbol,
                                 intent_id=intent.id, order_link_id=link_id, ret_code=ret_code, reason=reason)
        return (self.prefix + ORDERS_EVENTS, intent.symbol.encode(), encode(rejected))
