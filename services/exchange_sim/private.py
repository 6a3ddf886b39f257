"""The simulator's REST front: public market endpoints and the signed private endpoints.

Checks, in Bybit's order (bybit-v5.md §3.2-3.7): route (10017, HTTP 404), API key (10003),
timestamp window `server_time - recv_window <= timestamp < server_time + 1000` (10002), HMAC over
the exact query string or body bytes (10004), the per-key 1-second rate limit of the endpoint
(10006), then the request's shape (10001 naming the field, requests.py). Every private answer
carries X-Bapi-Limit, X-Bapi-Limit-Status and X-Bapi-Limit-Reset-Timestamp.
Injectable faults: `timeout` (answer late), `http5xx`, `ratelimit` (10006 bursts), `dropack`
(place the order, then drop the answer).
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import orjson

from services.exchange_sim import account, requests
from services.exchange_sim.http import HttpRequest, HttpResponse
from services.exchange_sim.requests import ParamsError, parse_body, parse_query
from services.exchange_sim.rest import envelope, public_rest
from services.venues.bybit.signing import verify_rest_signature

if TYPE_CHECKING:
    from services.exchange_sim.server import Simulator

Answer = tuple[int, str, dict[str, Any], dict[str, Any]]  # retCode, retMsg, result, retExtInfo


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    shape: type  # the request's shape in requests.py
    limit: int  # requests per key and rolling second (bybit-v5.md §3.7); LIMITS is the live copy
    handler: Callable[[PrivateApi, str, Any, int], Answer]


PRIVATE_FAULTS = ("timeout", "http5xx", "ratelimit", "dropack")
BATCH_MAX = 20  # create-batch: up to 20 orders for linear/inverse/option (docs/v5/order/batch-place)
AMEND_CANCEL_BATCH_MAX = {"option": 20}  # amend-/cancel-batch: 10 for linear, 20 for option


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
        # Requests per route that passed authentication, whatever their outcome: what a venue
        # charges against the rate limit, and the figure the request-rate benchmark reads (/sim/stats).
        self.requests: dict[str, int] = defaultdict(int)
        self.granted = 1  # orders of the request being handled that fit the rate limit (see _rate)

    def inject(self, kind: str, count: int = 1) -> None:
        if kind not in PRIVATE_FAULTS:
            raise ValueError(f"kind must be one of {PRIVATE_FAULTS}")
        self.faults[kind] += count

    async def handle(self, request: HttpRequest) -> HttpResponse:
        url = urlsplit(request.target)
        if url.path.startswith("/v5/market/") and request.method == "GET":
            result = public_rest(self.sim, url.path, url.query)
            return HttpResponse(result.status, orjson.dumps(result.body))
        if url.path.startswith("/fapi/") and self.sim.binance is not None:
            if request.method != "GET":
                return _json(405, {"code": -1000, "msg": f"{request.method} is not allowed on {url.path}"})
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            result = self.sim.binance.rest(url.path, query)
            return HttpResponse(result.status, orjson.dumps(result.body), {"content-type": "application/json"})
        route = ROUTES.get(url.path)
        if route is None:
            return _json(404, envelope({}, 10017, "Route not found."))
        if request.method != route.method:
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
        if not (timestamp.isascii() and timestamp.isdigit() and recv_window.isascii() and recv_window.isdigit()
                and len(timestamp) <= 15 and len(recv_window) <= 9):
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
                                                  f"{payload[:500]}]"))
        self.requests[url.path] += 1
        limit_headers, allowed = self._rate(api_key, url.path, now_ms, _orders_in(url.path, request.body))
        if not allowed or self._take_fault("ratelimit"):
            return _json(200, envelope({}, 10006, "Too many visits!"), limit_headers)
        try:
            shape = parse_query(route.shape, url.query) if route.method == "GET" else parse_body(route.shape,
                                                                                                 request.body)
        except ParamsError as exc:
            return _json(200, envelope({}, exc.ret_code, str(exc)), limit_headers)
        venue_ms = self.sim.venue_ms()  # the answer's `time` is the venue's clock (the step clock in lockstep)
        code, message, result, ext = route.handler(self, api_key, shape, venue_ms)
        self.sim.deliver_private_reports()
        response = _json(200, {**envelope(result, code, message, now_ms=venue_ms), "retExtInfo": ext}, limit_headers)
        if url.path == "/v5/order/create" and code == 0 and self._take_fault("dropack"):
            response.drop = True
        if self._take_fault("timeout"):
            response.delay = self.timeout_seconds
        return response

    def _rate(self, api_key: str, path: str, now_ms: int, units: int = 1) -> tuple[dict[str, str], bool]:
        """A rolling 1-second window per (key, endpoint). A batch asks for one unit per order
        (bybit-v5.md §3.7); it is let in while one unit is left, and `self.granted` says how many
        of its orders fit: the handler refuses the rest with 10006, item by item."""
        limit = LIMITS[path]
        window = self.calls[(api_key, path)]
        now = now_ms / 1000
        while window and window[0] <= now - 1:
            window.popleft()
        self.granted = min(units, limit - len(window))
        allowed = self.granted > 0
        window.extend([now] * max(0, self.granted))
        reset = int((window[0] + 1) * 1000) if not allowed or self.granted < units else now_ms
        return {"x-bapi-limit": str(limit), "x-bapi-limit-status": str(max(0, limit - len(window))),
                "x-bapi-limit-reset-timestamp": str(reset)}, allowed

    def _take_fault(self, kind: str) -> bool:
        if self.faults[kind] > 0:
            self.faults[kind] -= 1
            return True
        return False


# ---------------------------------------------------------------- order and position endpoints

def _create(api: PrivateApi, key: str, order: requests.CreateOrder, now_ms: int) -> Answer:
    code, message, result = api.sim.engine.place(key, requests.as_dict(order), now_ms)
    if code == 0:
        api.created_link_ids.append(result.get("orderLinkId", ""))
    return code, message, result, {}


def _orders_in(path: str, body: bytes) -> int:
    """Rate-limit units a request asks for: the orders of a batch, else one."""
    if path not in BATCH_PATHS:
        return 1
    try:
        items = orjson.loads(body).get("request")
    except (orjson.JSONDecodeError, AttributeError):
        return 1  # refused as malformed after the limit check
    return max(1, len(items)) if isinstance(items, list) else 1


RATE_LIMITED = (10006, "Too many visits!", {})


def _create_batch(api: PrivateApi, key: str, batch: requests.CreateBatch, now_ms: int) -> Answer:
    """Items are placed one by one; each gets its own code in retExtInfo (bybit-v5.md §3.5); the
    ones past the rate limit's remaining units get 10006."""
    if len(batch.request) > BATCH_MAX:
        return 10001, f"params error: request must hold 1 to {BATCH_MAX} orders", {}, {}
    results, statuses = [], []
    for n, item in enumerate(batch.request):
        fields = {**requests.as_dict(item), "category": batch.category}
        code, message, result = api.sim.engine.place(key, fields, now_ms) if n < api.granted else RATE_LIMITED
        if code == 0:
            api.created_link_ids.append(result.get("orderLinkId", ""))
        results.append({"category": batch.category, "symbol": item.symbol, "orderId": result.get("orderId", ""),
                        "orderLinkId": result.get("orderLinkId", item.orderLinkId or ""), "createAt": str(now_ms)})
        statuses.append({"code": code, "msg": message})
    return 0, "OK", {"list": results}, {"list": statuses}


def _cancel(api: PrivateApi, key: str, cancel: requests.CancelOrder, now_ms: int) -> Answer:
    if not cancel.orderId and not cancel.orderLinkId:
        return 10001, "params error: orderId or orderLinkId is required", {}, {}
    return (*api.sim.engine.cancel(key, requests.as_dict(cancel), now_ms), {})


def _amend(api: PrivateApi, key: str, amend: requests.AmendOrder, now_ms: int) -> Answer:
    if not amend.orderId and not amend.orderLinkId:
        return 10001, "params error: orderId or orderLinkId is required", {}, {}
    return (*api.sim.engine.amend(key, requests.as_dict(amend), now_ms), {})


def _per_item(category: str, items: list[Any], act: Callable[[dict[str, Any]], tuple[int, str, dict[str, Any]]],
              granted: int) -> Answer:
    """An amend- or cancel-batch: each item acted on in order, its own code and message in
    retExtInfo.list (a failed item has orderId ""), retCode 0 for the request (batch-cancel.mdx)."""
    limit = AMEND_CANCEL_BATCH_MAX.get(category, 10)
    if len(items) > limit:
        return 10001, f"params error: request must hold 1 to {limit} orders for {category}", {}, {}
    results, statuses = [], []
    for n, item in enumerate(items):
        fields = {**requests.as_dict(item), "category": category}
        if n >= granted:
            code, message, result = RATE_LIMITED
        elif not item.orderId and not item.orderLinkId:
            code, message, result = 10001, "params error: orderId or orderLinkId is required", {}
        else:
            code, message, result = act(fields)
        results.append({"category": category, "symbol": item.symbol, "orderId": result.get("orderId", ""),
                        "orderLinkId": result.get("orderLinkId", item.orderLinkId or "")})
        statuses.append({"code": code, "msg": message})
    return 0, "OK", {"list": results}, {"list": statuses}


def _amend_batch(api: PrivateApi, key: str, batch: requests.AmendBatch, now_ms: int) -> Answer:
    return _per_item(batch.category, batch.request, lambda fields: api.sim.engine.amend(key, fields, now_ms),
                     api.granted)


def _cancel_batch(api: PrivateApi, key: str, batch: requests.CancelBatch, now_ms: int) -> Answer:
    return _per_item(batch.category, batch.request, lambda fields: api.sim.engine.cancel(key, fields, now_ms),
                     api.granted)


def _cancel_all(api: PrivateApi, key: str, body: requests.CancelAll, now_ms: int) -> Answer:
    return (*api.sim.engine.cancel_all(key, requests.as_dict(body), now_ms), {})


def _realtime(api: PrivateApi, key: str, query: requests.OrdersQuery, now_ms: int) -> Answer:
    return (*api.sim.engine.open_orders(key, requests.as_dict(query)), {})


def _history(api: PrivateApi, key: str, query: requests.OrdersQuery, now_ms: int) -> Answer:
    return (*api.sim.engine.order_history(key, requests.as_dict(query)), {})


def _executions(api: PrivateApi, key: str, query: requests.ExecutionsQuery, now_ms: int) -> Answer:
    return (*api.sim.engine.executions(key, requests.as_dict(query)), {})


def _positions(api: PrivateApi, key: str, query: requests.PositionsQuery, now_ms: int) -> Answer:
    return (*api.sim.engine.positions(key, requests.as_dict(query)), {})


def _set_leverage(api: PrivateApi, key: str, body: requests.SetLeverage, now_ms: int) -> Answer:
    return (*api.sim.engine.set_leverage(key, requests.as_dict(body), now_ms), {})


ROUTES: dict[str, Route] = {
    "/v5/order/create": Route("POST", requests.CreateOrder, 10, _create),
    "/v5/order/cancel": Route("POST", requests.CancelOrder, 10, _cancel),
    "/v5/order/create-batch": Route("POST", requests.CreateBatch, 10, _create_batch),
    "/v5/order/amend": Route("POST", requests.AmendOrder, 10, _amend),
    "/v5/order/amend-batch": Route("POST", requests.AmendBatch, 10, _amend_batch),
    "/v5/order/cancel-batch": Route("POST", requests.CancelBatch, 10, _cancel_batch),
    "/v5/order/cancel-all": Route("POST", requests.CancelAll, 10, _cancel_all),
    "/v5/order/realtime": Route("GET", requests.OrdersQuery, 50, _realtime),
    "/v5/order/history": Route("GET", requests.OrdersQuery, 50, _history),
    "/v5/execution/list": Route("GET", requests.ExecutionsQuery, 50, _executions),
    "/v5/position/list": Route("GET", requests.PositionsQuery, 50, _positions),
    "/v5/position/set-leverage": Route("POST", requests.SetLeverage, 10, _set_leverage),
    **{path: Route(*endpoint) for path, endpoint in account.ENDPOINTS.items()},
}
LIMITS = {path: route.limit for path, route in ROUTES.items()}
BATCH_PATHS = frozenset({"/v5/order/create-batch", "/v5/order/amend-batch", "/v5/order/cancel-batch"})


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> HttpResponse:
    return HttpResponse(status, orjson.dumps(body), headers or {})
