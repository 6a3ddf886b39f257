"""The simulator's REST front: public market endpoints and the signed private order endpoints.

Checks, in Bybit's order (bybit-v5.md §3.2-3.7): API key (10003), timestamp window
`server_time - recv_window <= timestamp < server_time + 1000` (10002), HMAC over the exact query
string or body bytes (10004), then the per-key 1-second rate limit of the endpoint (10006). Every
private answer carries X-Bapi-Limit, X-Bapi-Limit-Status and X-Bapi-Limit-Reset-Timestamp.
Injectable faults: `timeout` (answer late), `http5xx`, `ratelimit` (10006 bursts), `dropack`
(place the order, then drop the answer).
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from services.exchange_sim.http import HttpRequest, HttpResponse
from services.exchange_sim.rest import envelope, public_rest
from services.execution.signing import verify_rest_signature

if TYPE_CHECKING:
    from services.exchange_sim.server import Simulator

LIMITS = {"/v5/order/create": 10, "/v5/order/cancel": 10, "/v5/order/create-batch": 10,
          "/v5/order/realtime": 50, "/v5/position/list": 50, "/v5/execution/list": 50}
PRIVATE_FAULTS = ("timeout", "http5xx", "ratelimit", "dropack")
BATCH_MAX = 20


class PrivateApi:
    """Dispatches REST requests for the simulator; `handle` is the HttpServer handler."""

    def __init__(self, sim: Simulator, secrets: dict[str, str], clock: Callable[[], float] = time.time) -> None:
        self.sim = sim
        self.secrets = secrets
        self.clock = clock
        self.calls: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self.faults: dict[str, int] = defaultdict(int)
        self.timeout_seconds = 3.0
        self.created_link_ids: list[str] = []

    def inject(self, kind: str, count: int = 1) -> None:
        if kind not in PRIVATE_FAULTS:
            raise ValueError(f"kind must be one of {PRIVATE_FAULTS}")
        self.faults[kind] += count

    async def handle(self, request: HttpRequest) -> HttpResponse:
        url = urlsplit(request.target)
        if url.path.startswith("/v5/market/") and request.method == "GET":
            query = dict(parse_qsl(url.query))
            result = public_rest(self.sim, url.path, query)
            return HttpResponse(result.status, orjson.dumps(result.body))
        if url.path not in LIMITS:
            return _json(404, envelope({}, 10017, "Route not found."))
        if (request.method == "GET") != url.path.startswith(("/v5/order/realtime", "/v5/position", "/v5/execution")):
            return _json(405, envelope({}, 10001, f"{request.method} is not allowed on {url.path}"))
        if self._take_fault("http5xx"):
            return HttpResponse(502, b"<html><body>502 Bad Gateway</body></html>", {"content-type": "text/html"})
        now_ms = int(self.clock() * 1000)
        api_key = request.headers.get("x-bapi-api-key", "")
        secret = self.secrets.get(api_key)
        if secret is None:
            return _json(200, envelope({}, 10003, "API key is invalid."))
        timestamp = request.headers.get("x-bapi-timestamp", "")
        recv_window = request.headers.get("x-bapi-recv-window", "5000")
        if not timestamp.isdigit() or not recv_window.isdigit():
            return _json(200, envelope({}, 10001, "params error: X-BAPI-TIMESTAMP and X-BAPI-RECV-WINDOW must be "
                                                  "integers"))
        if not now_ms - int(recv_window) <= int(timestamp) < now_ms + 1000:
            return _json(200, envelope({}, 10002, (
                "invalid request, please check your server timestamp or recv_window param. "
                f"req_timestamp[{timestamp}],server_timestamp[{now_ms}],recv_window[{recv_window}]")))
        payload = url.query if request.method == "GET" else request.body.decode("utf-8", "replace")
        if not verify_rest_signature(secret, timestamp, api_key, recv_window, payload,
                                     request.headers.get("x-bapi-sign", "")):
            return _json(200, envelope({}, 10004, f"error sign! origin_string[{timestamp}{api_key}{recv_window}"
                                                  f"{payload}]"))
        limit_headers, allowed = self._rate(api_key, url.path, now_ms)
        if not allowed or self._take_fault("ratelimit"):
            return _json(200, envelope({}, 10006, "Too many visits!"), limit_headers)
        try:
            body = orjson.loads(request.body) if request.method == "POST" else dict(parse_qsl(url.query))
            if not isinstance(body, dict):
                raise ValueError("expected a JSON object")
        except (orjson.JSONDecodeError, ValueError) as exc:
            return _json(200, envelope({}, 10001, f"params error: {exc}"), limit_headers)
        code, message, result, ext = self._dispatch(api_key, url.path, body, self.sim.venue_ms())
        self.sim.deliver_private_reports()
        response = _json(200, {**envelope(result, code, message), "retExtInfo": ext}, limit_headers)
        if url.path == "/v5/order/create" and code == 0 and self._take_fault("dropack"):
            response.drop = True
        if self._take_fault("timeout"):
            response.delay = self.timeout_seconds
        return response

    def _dispatch(self, api_key: str, path: str, body: dict[str, Any],
                  now_ms: int) -> tuple[int, str, dict[str, Any], dict[str, Any]]:
        engine = self.sim.engine
        if path == "/v5/order/create":
            code, message, result = engine.place(api_key, body, now_ms)
            if code == 0:
                self.created_link_ids.append(result.get("orderLinkId", ""))
            return code, message, result, {}
        if path == "/v5/order/cancel":
            return (*engine.cancel(api_key, body, now_ms), {})
        if path == "/v5/order/create-batch":
            requests = body.get("request")
            if not isinstance(requests, list) or not 1 <= len(requests) <= BATCH_MAX:
                return 10001, f"params error: request must hold 1 to {BATCH_MAX} orders", {}, {}
            results, statuses = [], []
            for item in requests:
                code, message, result = engine.place(api_key, {"category": body.get("category"), **item}, now_ms)
                if code == 0:
                    self.created_link_ids.append(result.get("orderLinkId", ""))
                results.append({"category": body.get("category"), "symbol": item.get("symbol", ""),
                                "orderId": result.get("orderId", ""),
                                "orderLinkId": result.get("orderLinkId", item.get("orderLinkId", "")),
                                "createAt": str(now_ms)})
                statuses.append({"code": code, "msg": message})
            return 0, "OK", {"list": results}, {"list": statuses}
        if path == "/v5/order/realtime":
            return (*engine.open_orders(api_key, body), {})
        if path == "/v5/execution/list":
            return (*engine.executions(api_key, body), {})
        return (*engine.positions(api_key, body), {})

    def _rate(self, api_key: str, path: str, now_ms: int) -> tuple[dict[str, str], bool]:
        """A rolling 1-second window per (key, endpoint)."""
        window = self.calls[(api_key, path)]
        now = now_ms / 1000
        while window and window[0] <= now - 1:
            window.popleft()
        limit = LIMITS[path]
        allowed = len(window) < limit
        if allowed:
            window.append(now)
        reset = int((window[0] + 1) * 1000) if not allowed else now_ms
        return {"x-bapi-limit": str(limit), "x-bapi-limit-status": str(max(0, limit - len(window))),
                "x-bapi-limit-reset-timestamp": str(reset)}, allowed

    def _take_fault(self, kind: str) -> bool:
        if self.faults[kind] > 0:
            self.faults[kind] -= 1
            return True
        return False


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> HttpResponse:
    return HttpResponse(status, orjson.dumps(body), headers or {})
