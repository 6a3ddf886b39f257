"""Execution's account checks: the venue's positions and wallet against what orders.events holds.

Every `account_check_seconds` once the first reconciliation is done (0: never), on a clock of its
own: the venue's positions against the reported fills and adopted positions, and the venue's
wallet balance against the one the log implies (the opening balance plus realized PnL, less fees
and funding). drift.py says when a difference is a drift. A drift is an event on control
(PositionDriftDetected, WalletDriftDetected), a metric (hean_position_drift, hean_wallet_drift)
and, by config (EXECUTION_HALT_ON_DRIFT, EXECUTION_HALT_ON_WALLET_DRIFT), a halt. A difference
seen for the first time asks for a reconciliation, since a fill may be missing. A venue or broker
failure skips one check; the next one tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from schemas.events import Event, PositionDriftDetected, TradingHalted, WalletDriftDetected
from schemas.topics import CONTROL
from services.domain.ids import drift_halt_id, drift_id, wallet_drift_halt_id, wallet_drift_id
from services.execution.drift import Drift, PositionCheck, WalletCheck, WalletDrift
from services.execution.metrics import ExecutionMetrics
from services.execution.opening import SETTLE_COIN
from services.execution.reports import RETRIABLE, Reports
from services.runtime.bus import send_and_wait
from services.runtime.codec import encode
from services.venues.bybit.account import position_sizes, wallet_balance

if TYPE_CHECKING:
    from services.execution.config import ExecutionConfig

log = logging.getLogger(__name__)

__all__ = ["AccountChecks"]


class AccountChecks:
    """One account's position and wallet checks (see the module docstring)."""

    def __init__(self, config: ExecutionConfig, prefix: str, reports: Reports, metrics: ExecutionMetrics) -> None:
        self.config = config
        self.prefix = prefix
        self.reports = reports
        self.rest = reports.rest
        self.metrics = metrics
        self.positions = PositionCheck()
        self.wallet = WalletCheck(config.wallet_tolerance)

    async def watch(self, stop: asyncio.Event, ready: asyncio.Event) -> None:
        """Check every interval once `ready` (the first reconciliation) is set, until `stop`."""
        interval = self.config.account_check_seconds
        if interval <= 0:
            return
        await ready.wait()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            if stop.is_set():
                return
            try:
                await self.check_positions()
            except (*RETRIABLE, ValueError) as exc:
                log.warning("position check skipped: %s", exc)
            try:
                await self.check_wallet()
            except (*RETRIABLE, ValueError) as exc:
                log.warning("wallet check skipped: %s", exc)

    async def check_positions(self) -> None:
        venue = position_sizes(await self.rest.positions("linear"))
        drifts, cleared, suspect = self.positions.check(venue, self.reports.positions)
        for drift in drifts:
            await self._report_position(drift)
        for symbol in cleared:
            self.metrics.position_drift.labels("execution", self.config.account, symbol).set(0)
            log.info("position of %s agrees with the venue again", symbol)
        if suspect:  # a fill may be missing: ask the venue before the next check decides
            await self.reports.reconcile()

    async def check_wallet(self) -> None:
        """Only once the account's opening is in the log: without it there is no balance to start from."""
        if self.reports.opened is None:
            return
        _, result = await self.rest.wallet_balance(SETTLE_COIN)
        expected = self.reports.expected_wallet()  # after the venue's answer: a fill it shows may be on its way
        assert expected is not None
        drift, cleared, suspect = self.wallet.check(wallet_balance(result, SETTLE_COIN), expected)
        if drift is not None:
            await self._report_wallet(drift)
        if cleared:
            self.metrics.wallet_drift.labels("execution", self.config.account, SETTLE_COIN).set(0)
            log.info("the wallet agrees with the venue again")
        if suspect:
            await self.reports.reconcile()

    async def _report_position(self, drift: Drift) -> None:
        account = self.config.account
        log.error("position drift on %s: the venue holds %s, the reported fills add up to %s", drift.symbol,
                  drift.venue_qty, drift.reported_qty)
        self.metrics.position_drift.labels("execution", account, drift.symbol).set(
            float(drift.venue_qty - drift.reported_qty))
        self.metrics.drifts.inc()
        now = time.time_ns()
        event = PositionDriftDetected(id=drift_id(account, drift.symbol, drift.venue_seq, drift.venue_qty,
                                                  drift.reported_qty), ts_event=now, ts_ingest=now, account=account,
                                      symbol=drift.symbol, venue_qty=drift.venue_qty,
                                      reported_qty=drift.reported_qty, venue_seq=drift.venue_seq)
        halt = f"position drift on {drift.symbol}: venue {drift.venue_qty}, reported {drift.reported_qty}"
        await self._send(event, drift_halt_id(event.id), halt if self.config.halt_on_drift else None, now)

    async def _report_wallet(self, drift: WalletDrift) -> None:
        account = self.config.account
        log.error("wallet drift: the venue holds %s %s, the log says %s", drift.venue_balance, SETTLE_COIN,
                  drift.expected_balance)
        self.metrics.wallet_drift.labels("execution", account, SETTLE_COIN).set(
            float(drift.venue_balance - drift.expected_balance))
        self.metrics.wallet_drifts.inc()
        now = time.time_ns()
        event = WalletDriftDetected(id=wallet_drift_id(account, SETTLE_COIN, drift.venue_balance,
                                                       drift.expected_balance), ts_event=now, ts_ingest=now,
                                    account=account, coin=SETTLE_COIN, venue_balance=drift.venue_balance,
                                    expected_balance=drift.expected_balance)
        halt = f"wallet drift: venue {drift.venue_balance} {SETTLE_COIN}, the log {drift.expected_balance}"
        await self._send(event, wallet_drift_halt_id(event.id), halt if self.config.halt_on_wallet_drift else None,
                         now)

    async def _send(self, event: Event, halt_id: str, halt_reason: str | None, now: int) -> None:
        """The drift on control, and the halt it trips when configured to, in one delivery."""
        account = self.config.account
        records = [(self.prefix + CONTROL, account.encode(), encode(event))]
        if halt_reason is not None:
            halt = TradingHalted(id=halt_id, ts_event=now, ts_ingest=now, account=account, reason=halt_reason,
                                 actor="execution")
            records.append((self.prefix + CONTROL, account.encode(), encode(halt)))
        await send_and_wait(self.reports.producer, records)
