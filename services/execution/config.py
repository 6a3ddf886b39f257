"""Execution's settings (env prefix EXECUTION_): one frozen struct, checked at startup."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from services.runtime.errors import ConfigError
from services.runtime.settings import Secret
from services.venues.bybit.endpoints import credential_problem, is_real_bybit


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
    # How far back reconciliation asks the venue about orders decided and never seen closed.
    reconcile_lookback_s: int = 86_400
    # Private WS heartbeat: a ping every interval (Bybit recommends 20 s); no pong within
    # pong_timeout of a ping, or no message at all for stale_after seconds → reconnect and
    # reconcile (a venue may keep pushing on a session it no longer answers).
    ws_ping_interval: float = 20.0
    ws_pong_timeout: float = 10.0
    ws_stale_after: float = 45.0
    # Positions and the wallet at the venue against orders.events, every account_check_seconds (0:
    # never; checks.py); a drift is a PositionDriftDetected (WalletDriftDetected: the wallet off by
    # more than wallet_tolerance in the settle coin) on control and a metric, and with
    # halt_on_drift (halt_on_wallet_drift) a halt.
    account_check_seconds: float = 30.0
    halt_on_drift: bool = False
    wallet_tolerance: Decimal = Decimal("0.01")
    halt_on_wallet_drift: bool = False
    # The REST circuit breaker: open after breaker_failures transient failures in a row, for
    # breaker_open_seconds, so a failing venue is not hammered (services/venues/bybit/rest.py).
    breaker_failures: int = 5
    breaker_open_seconds: float = 10.0
    # Approved amends of one symbol that arrive together go out as one /v5/order/amend-batch.
    batch_amends: bool = True
    # Approved cancels of one symbol that arrive together (a halt cancels every working order)
    # go out as one /v5/order/cancel-batch.
    batch_cancels: bool = True
    # Approved orders of one symbol that arrive together go out as one /v5/order/create-batch.
    batch_creates: bool = True

    def __post_init__(self) -> None:
        real = [u for u in (self.rest_url, self.ws_url) if is_real_bybit(u)]
        if not real:
            return  # the simulator (or a venue on loopback) takes its own test keys
        for name, value in (("EXECUTION_API_KEY", self.api_key), ("EXECUTION_API_SECRET", self.api_secret.reveal())):
            problem = credential_problem(name, value)
            if problem is not None:
                raise ConfigError(f"refusing to trade on {real[0]}: {problem}; create an API key on the venue "
                                  "(testnet: testnet.bybit.com) and set EXECUTION_API_KEY and EXECUTION_API_SECRET")
