"""The Bybit V5 REST client (the adapter's order gateway, services/venues/port.py), used by
execution: one pooled httpx.AsyncClient, signed requests, retries.

- Signing over the exact bytes sent (compact JSON body, or the sorted query string).
- Server-time offset from /v5/market/time, refreshed on 10002 (timestamp outside recv_window).
- Pacing: requests to an endpoint are spaced so no more than its limit leave in any
  `pace_window_s` (the venue's X-Bapi-Limit once seen, Bybit's documented default before); an
  order that would exceed the limit waits its turn here instead of being refused. Why: a 10006
  costs a round trip and a wait until the reset (up to a second), and the orders queued behind
  it then leave in a burst that is refused again; at 1k ticks/s that loop held orders for seconds.
- 10006 (rate limit) anyway: wait until X-Bapi-Limit-Reset-Timestamp (now + 2 s when absent), retry.
- HTTP 5xx, timeouts and connection errors: TransientError, retried with exponential backoff.
- A circuit breaker opens after `breaker_failures` consecutive transient failures and refuses
  calls (TransientError) for `breaker_open_seconds`, so a failing venue is not hammered.
- `place_order` is idempotent by orderLinkId: when the outcome of a create is unknown (timeout,
  dropped answer) it asks the venue for that orderLinkId before sending again, and treats 110072
  (duplicate orderLinkId) as "already placed". An order is never placed twice. When the order was
  already there, the answer carries the venue's view of it under "venueView", so the caller can
  report what it missed.
Secrets stay in `Secret` and are never logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from services.runtime.errors import HeanError, TransientError
from services.runtime.settings import Secret
from services.venues.bybit.signing import query_string, rest_signature

log = logging.getLogger(__name__)

RETRY_AFTER_RATE_LIMIT_MS = 2_000
# Bybit's default per-UID limits for linear (requests per rolling second; bybit-v5.md §3.7), used
# to pace until the venue's own X-Bapi-Limit header says otherwise: a restart with a backlog of
# decisions would otherwise send a burst before the first answer tells the limit.
DEFAULT_LIMITS = {"/v5/order/create": 10, "/v5/order/cancel": 10, "/v5/order/create-batch": 10,
                  "/v5/order/amend": 10, "/v5/order/amend-batch": 10, "/v5/order/cancel-batch": 10,
                  "/v5/order/cancel-all": 10, "/v5/order/realtime": 50, "/v5/execution/list": 50,
                  "/v5/position/list": 50, "/v5/account/wallet-balance": 50}
BATCH_MAX = 10  # items per amend- or cancel-batch for linear (docs/v5/order/batch-amend, batch-cancel)
BATCH_PATHS = frozenset({"/v5/order/create-batch", "/v5/order/amend-batch", "/v5/order/cancel-batch"})
DUPLICATE_LINK_ID = 110072
TIME_WINDOW = 10002
RATE_LIMITED = 10006


class VenueError(HeanError):
    """The venue answered with a business error (retCode != 0) that retrying will not fix."""

    def __init__(self, ret_code: int, ret_msg: str) -> None:
        super().__init__(f"venue refused: retCode {ret_code}: {ret_msg}")
        self.ret_code = ret_code
        self.ret_msg = ret_msg


@dataclass
class RateLimit:
    """The last X-Bapi-Limit headers seen for an endpoint: the headroom left."""

    limit: int = 0
    remaining: int = 0
    reset_ms: int = 0


class BybitRest:
    """Signed V5 REST calls with retries, time sync and a circuit breaker."""

    def __init__(self, base_url: str, api_key: str, api_secret: Secret, recv_window_ms: int = 5000,
                 timeout: float = 5.0, max_attempts: int = 5, backoff: float = 0.1, breaker_failures: int = 5,
                 breaker_open_seconds: float = 10.0, pace_window_s: float = 1.05) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, timeout=timeout,
                                      limits=httpx.Limits(max_connections=8, max_keepalive_connections=8))
        self.api_key = api_key
        self.secret = api_secret
        self.recv_window_ms = recv_window_ms
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.breaker_failures = breaker_failures
        self.breaker_open_seconds = breaker_open_seconds
        self.time_offset_ms = 0
        self.failures = 0
        self.open_until = 0.0
        self.rate_limits: dict[str, RateLimit] = {}
        self.ret_codes: dict[int, int] = {}
        # The venue counts a sliding second; the margin covers the way from here to its clock.
        self.pace_window_s = pace_window_s
        self.sent: dict[str, deque[float]] = {}
        self.paced_seconds = 0.0
        # Called as each request leaves (after pacing): (method, path, body). Latency metrics
        # hang here, so a wait for the rate limit counts as part of the order's way out.
        self.on_send: Callable[[str, str, dict[str, Any] | None], None] | None = None

    async def close(self) -> None:
        await self.http.aclose()

    async def sync_time(self) -> int:
        """Measure the venue clock's offset from ours (half the round trip taken as one way)."""
        started = time.time()
        response = await self.http.get("/v5/market/time")
        finished = time.time()
        server_ms = int(response.json()["result"]["timeNano"]) // 1_000_000
        self.time_offset_ms = server_ms - int((started + finished) / 2 * 1000)
        return self.time_offset_ms

    # ------------------------------------------------------------------ orders

    async def place_order(self, order: dict[str, Any]) -> dict[str, Any]:
        """Create an order exactly once (see the module docstring); returns the venue's order view
        fields orderId/orderLinkId. Raises VenueError for a refusal (e.g. 110007 balance)."""
        link_id = order["orderLinkId"]
        for attempt in range(self.max_attempts):
            try:
                return await self.request("POST", "/v5/order/create", body=order)
            except VenueError as exc:
                if exc.ret_code == DUPLICATE_LINK_ID:
                    existing = await self.find_order(order["category"], link_id)
                    if existing is not None:
                        return {"orderId": existing["orderId"], "orderLinkId": link_id, "venueView": existing}
                raise
            except TransientError:
                existing = await self.find_order(order["category"], link_id)  # did it land anyway?
                if existing is not None:
                    log.warning("create answer lost; order %s found on the venue", link_id)
                    return {"orderId": existing["orderId"], "orderLinkId": link_id, "venueView": existing}
                await asyncio.sleep(self.backoff * 2**attempt)
        raise TransientError(f"order {link_id} not placed after {self.max_attempts} attempts")

    async def cancel_order(self, category: str, symbol: str, link_id: str) -> dict[str, Any]:
        return await self.request("POST", "/v5/order/cancel",
                                  body={"category": category, "symbol": symbol, "orderLinkId": link_id})

    async def amend_order(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /v5/order/amend; VenueError for a refusal (110001: the order is no longer open)."""
        return await self.request("POST", "/v5/order/amend", body=body)

    async def amend_orders(self, category: str, items: list[dict[str, Any]]) -> list[tuple[int, str]]:
        """POST /v5/order/amend-batch, BATCH_MAX items a request; each item's (code, message)
        from retExtInfo, in order, so one refused amend does not hide the others' outcome."""
        return await self._per_item("/v5/order/amend-batch", category, items)

    async def place_orders(self, category: str, orders: list[dict[str, Any]]) -> list[tuple[int, str]]:
        """POST /v5/order/create-batch; each order's (code, message). Resending a batch whose
        answer was lost is safe: the orders that landed answer 110072 (duplicate orderLinkId),
        which the caller takes as placed and reconciles."""
        return await self._per_item("/v5/order/create-batch", category, orders)

    async def cancel_orders(self, category: str, items: list[dict[str, Any]]) -> list[tuple[int, str]]:
        """POST /v5/order/cancel-batch (items {symbol, orderLinkId}); each item's (code, message)."""
        return await self._per_item("/v5/order/cancel-batch", category, items)

    async def _per_item(self, path: str, category: str, items: list[dict[str, Any]]) -> list[tuple[int, str]]:
        """A batch endpoint, BATCH_MAX items a request; each item's (code, message) in order. Items
        the venue refused for its rate limit (10006: a batch costs one unit per item, and one past
        the units left is refused item by item) are sent again after the reset."""
        outcomes: list[tuple[int, str]] = [(RATE_LIMITED, "")] * len(items)
        for _attempt in range(self.max_attempts):
            waiting = [i for i, (code, _) in enumerate(outcomes) if code == RATE_LIMITED]
            if not waiting:
                return outcomes
            if len(waiting) < len(items) or _attempt:
                await self._wait_for_reset(path)
            for start in range(0, len(waiting), BATCH_MAX):
                chosen = waiting[start:start + BATCH_MAX]
                chunk = [{k: v for k, v in items[i].items() if k != "category"} for i in chosen]
                envelope = await self.request_envelope("POST", path, body={"category": category, "request": chunk})
                statuses = (envelope.get("retExtInfo") or {}).get("list") or []
                if len(statuses) != len(chunk):
                    raise VenueError(-1, f"{path} answered {len(statuses)} statuses for {len(chunk)} items")
                for i, status in zip(chosen, statuses, strict=True):
                    outcomes[i] = (int(status.get("code", -1)), str(status.get("msg", "")))
        raise TransientError(f"{path}: items still refused for the rate limit after {self.max_attempts} attempts")

    async def cancel_all(self, category: str, symbol: str) -> list[dict[str, Any]]:
        """POST /v5/order/cancel-all for one symbol; the orders the venue cancelled."""
        result = await self.request("POST", "/v5/order/cancel-all", body={"category": category, "symbol": symbol})
        return list(result.get("list") or [])

    async def find_order(self, category: str, link_id: str) -> dict[str, Any] | None:
        """The venue's view of one order by orderLinkId (open or recently closed), or None."""
        result = await self.request("GET", "/v5/order/realtime", query={"category": category, "orderLinkId": link_id})
        orders = result.get("list", [])
        return orders[0] if orders else None

    async def executions(self, category: str, link_id: str | None = None,
                         exec_type: str | None = None) -> list[dict[str, Any]]:
        """Every execution of one order, or of one execType (GET /v5/execution/list, all pages),
        oldest first."""
        fills: list[dict[str, Any]] = []
        cursor = ""
        while True:
            result = await self.request("GET", "/v5/execution/list", query={
                "category": category, "orderLinkId": link_id, "execType": exec_type, "limit": 100,
                "cursor": cursor or None})
            fills += result.get("list", [])
            cursor = result.get("nextPageCursor") or ""
            if not cursor:
                return fills[::-1]

    async def open_orders(self, category: str, symbol: str | None = None) -> list[dict[str, Any]]:
        query = {"category": category, "symbol": symbol, "settleCoin": None if symbol else "USDT"}
        return (await self.request("GET", "/v5/order/realtime", query=query)).get("list", [])

    async def positions(self, category: str, symbol: str | None = None) -> list[dict[str, Any]]:
        query = {"category": category, "symbol": symbol, "settleCoin": None if symbol else "USDT"}
        return (await self.request("GET", "/v5/position/list", query=query)).get("list", [])

    async def wallet_balance(self, coin: str) -> tuple[int, dict[str, Any]]:
        """GET /v5/account/wallet-balance of the unified account for one coin: the venue's time of
        the answer (the envelope's `time`, ms) and the result (services/venues/bybit/account.py reads it)."""
        envelope = await self.request_envelope("GET", "/v5/account/wallet-balance",
                                               query={"accountType": "UNIFIED", "coin": coin})
        return int(envelope.get("time") or 0), envelope.get("result") or {}

    # ------------------------------------------------------------------ transport

    async def request(self, method: str, path: str, body: dict[str, Any] | None = None,
                      query: dict[str, Any] | None = None) -> dict[str, Any]:
        """One signed call with retries for transient failures; returns `result` of the envelope."""
        return (await self.request_envelope(method, path, body, query)).get("result") or {}

    async def request_envelope(self, method: str, path: str, body: dict[str, Any] | None = None,
                               query: dict[str, Any] | None = None) -> dict[str, Any]:
        """`request`, returning the whole envelope (a batch's per-item codes are in retExtInfo)."""
        for attempt in range(self.max_attempts):
            if time.monotonic() < self.open_until:
                raise TransientError(f"circuit open: the venue failed {self.breaker_failures} times in a row")
            try:
                envelope = await self._once(method, path, body, query)
            except TransientError as exc:
                self._failed()
                if attempt + 1 == self.max_attempts or path == "/v5/order/create":
                    raise  # a create's outcome is unknown: place_order checks before resending
                log.warning("%s %s failed (%s); retrying", method, path, exc)
                await asyncio.sleep(self.backoff * 2**attempt)
                continue
            self.failures = 0
            code = int(envelope.get("retCode", -1))
            self.ret_codes[code] = self.ret_codes.get(code, 0) + 1
            if code == 0:
                return envelope
            if code == TIME_WINDOW:
                await self.sync_time()
                continue
            if code == RATE_LIMITED:
                await self._wait_for_reset(path)
                continue
            raise VenueError(code, str(envelope.get("retMsg", "")))
        raise TransientError(f"{method} {path}: no success after {self.max_attempts} attempts")

    async def _pace(self, path: str, units: int = 1) -> None:
        """Wait until one more request to `path` (`units` orders of a batch, each charged by the
        venue) stays within the venue's advertised limit."""
        window = self.sent.setdefault(path, deque())
        while True:
            known = self.rate_limits.get(path)
            limit = known.limit if known is not None and known.limit > 0 else DEFAULT_LIMITS.get(path, 0)
            if limit <= 0:
                return
            now = time.monotonic()
            while window and window[0] <= now - self.pace_window_s:
                window.popleft()
            if len(window) + min(units, limit) <= limit:
                window.extend([now] * units)
                return
            wait = window[0] + self.pace_window_s - now
            self.paced_seconds += wait
            await asyncio.sleep(wait)

    async def _once(self, method: str, path: str, body: dict[str, Any] | None,
                    query: dict[str, Any] | None) -> dict[str, Any]:
        batch = (body or {}).get("request") if path in BATCH_PATHS else None
        await self._pace(path, len(batch) if isinstance(batch, list) and batch else 1)
        timestamp = str(int(time.time() * 1000) + self.time_offset_ms)
        recv_window = str(self.recv_window_ms)
        if method == "GET":
            payload = query_string(query or {})
            content, url = None, f"{path}?{payload}" if payload else path
        else:
            payload = orjson.dumps(body or {}).decode()
            content, url = payload, path
        headers = {"X-BAPI-API-KEY": self.api_key, "X-BAPI-TIMESTAMP": timestamp, "X-BAPI-RECV-WINDOW": recv_window,
                   "X-BAPI-SIGN": rest_signature(self.secret.reveal(), timestamp, self.api_key, recv_window, payload),
                   "X-BAPI-SIGN-TYPE": "2", "Content-Type": "application/json"}
        if self.on_send is not None:
            self.on_send(method, path, body)
        try:
            response = await self.http.request(method, url, content=content, headers=headers)
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            raise TransientError(f"{method} {path}: {type(exc).__name__}") from None
        self._note_limits(path, response.headers)
        if response.status_code >= 500:
            raise TransientError(f"{method} {path}: HTTP {response.status_code}")
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise TransientError(f"{method} {path}: HTTP {response.status_code} with a body that is not JSON") from None

    def _note_limits(self, path: str, headers: httpx.Headers) -> None:
        if "x-bapi-limit" in headers:
            self.rate_limits[path] = RateLimit(int(headers["x-bapi-limit"]),
                                               int(headers.get("x-bapi-limit-status", 0)),
                                               int(headers.get("x-bapi-limit-reset-timestamp", 0)))

    async def _wait_for_reset(self, path: str) -> None:
        now_ms = int(time.time() * 1000) + self.time_offset_ms
        limit = self.rate_limits.get(path)
        reset = limit.reset_ms if limit is not None and limit.reset_ms > now_ms else now_ms + RETRY_AFTER_RATE_LIMIT_MS
        await asyncio.sleep(min(5.0, (reset - now_ms) / 1000))

    def _failed(self) -> None:
        self.failures += 1
        if self.failures >= self.breaker_failures:
            self.open_until = time.monotonic() + self.breaker_open_seconds
            log.warning("venue circuit open for %s s after %s failures", self.breaker_open_seconds, self.failures)
            self.failures = 0
