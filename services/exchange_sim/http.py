"""The simulator's REST transport: HTTP/1.1 on aiohttp's low-level server, with request limits.

Why aiohttp: the hand-written h11 loop had no limits at all (a 1 GB body, a 100 kB header or a
client trickling bytes each held a socket), and it answered 500 when a handler raised. aiohttp's
server is well kept, has a C parser, and gives:
  - line and header limits, answered 414 (request line), 431 (header fields) instead of its 400;
  - a body limit, answered 413;
  - a read timeout: its keep-alive timer is armed from the moment a connection opens and after
    each answer, and closes the connection while no complete request has arrived, so headers sent
    byte by byte are cut off after `read_timeout`; a body that does not arrive in time gets 408.
The handler still gets the raw request target and body bytes, because signatures are checked over
the exact bytes sent. Faults: `drop` closes the connection without answering, `delay` answers late.
Any exception a handler lets out is answered with Bybit's 10016 "Server error." and counted in
`unhandled` (the fuzz test requires it to stay 0), never a bare 500.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import http_exceptions, web
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger(__name__)

SERVER_ERROR = 10016


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    target: str  # path and raw query string, exactly as sent
    headers: dict[str, str]
    body: bytes


@dataclass(slots=True)
class HttpResponse:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # close the connection without answering (a lost ack)
    delay: float = 0.0  # answer late (a venue timeout)


Handler = Callable[[HttpRequest], Awaitable[HttpResponse]]


def bybit_error(ret_code: int, ret_msg: str) -> bytes:
    """A V5 envelope without a clock read: transport errors are answered before any handler runs."""
    return orjson.dumps({"retCode": ret_code, "retMsg": ret_msg, "result": {}, "retExtInfo": {}, "time": 0})


class _Protocol(RequestHandler):
    """aiohttp's connection handler, answering parser errors with the status that names them."""

    def handle_error(self, request: Any, status: int = 500, exc: Exception | None = None,
                     message: str | None = None) -> web.StreamResponse:
        text = str(exc) if exc is not None else (message or "")
        if isinstance(exc, http_exceptions.LineTooLong):
            # The C parser raises it with the first bytes of the request target or of the header
            # field that was too long; a target starts like an origin- or absolute-form URL.
            line = exc.args[0] if exc.args else b""
            status = 414 if bytes(line).startswith((b"/", b"http", b"*")) else 431
        elif isinstance(exc, http_exceptions.BadHttpMessage) and "header" in text.lower() and "too" in text.lower():
            status = 431
        if status >= 500:  # aiohttp's own failure, not a handler's (those are caught in _serve)
            log.warning("HTTP server error %s: %s", status, text)
            status = 400
        response = web.Response(status=status, body=bybit_error(10001, f"bad request: {text[:200]}"),
                                content_type="application/json")
        response.force_close()  # the parser's state is unknown after a bad message
        return response


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return _Protocol(self, loop=self._loop, **self._kwargs)


class HttpServer:
    """Serves `handler` on host:port until `stop()`."""

    def __init__(self, handler: Handler, host: str = "127.0.0.1", port: int = 0, max_body: int = 1 << 20,
                 max_line: int = 8190, max_field: int = 8190, max_headers: int = 64,
                 read_timeout: float = 10.0) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self.max_body = max_body
        self.read_timeout = read_timeout
        self.limits = {"max_line_size": max_line, "max_field_size": max_field, "max_headers": max_headers}
        self.unhandled = 0  # handler exceptions answered with 10016: a bug each, the fuzz test wants none
        self.server: asyncio.Server | None = None
        self._web: _Server | None = None

    async def start(self) -> int:
        self._web = _Server(self._serve, keepalive_timeout=self.read_timeout, access_log=None, **self.limits)
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(self._web, self.host, self.port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        if self._web is not None:
            await self._web.shutdown(1.0)
        if self.server is not None:
            await self.server.wait_closed()

    async def _serve(self, request: web.BaseRequest) -> web.StreamResponse:
        request._client_max_size = self.max_body  # BaseRequest's own limit; read() raises 413 past it
        if (request.content_length or 0) > self.max_body:  # refuse before waiting for the body
            return self._close(request, 413, f"request body exceeds {self.max_body} bytes")
        try:
            body = await asyncio.wait_for(request.read(), self.read_timeout)
        except web.HTTPRequestEntityTooLarge:
            return self._close(request, 413, f"request body exceeds {self.max_body} bytes")
        except TimeoutError:
            return self._close(request, 408, f"request body not received within {self.read_timeout} s")
        headers = {k.lower(): v for k, v in request.headers.items()}
        raw = HttpRequest(request.method, request.raw_path, headers, body)
        try:
            response = await self.handler(raw)
        except Exception:
            self.unhandled += 1
            log.exception("handler failed for %s %s; answered 10016", request.method, request.raw_path[:200])
            response = HttpResponse(200, bybit_error(SERVER_ERROR, "Server error."))
        if response.drop:
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError  # aiohttp ends the request without writing an answer
        if response.delay:
            await asyncio.sleep(response.delay)
        out = web.Response(status=response.status, body=response.body, headers=response.headers)
        if "content-type" not in {k.lower() for k in response.headers}:
            out.content_type = "application/json"
        return out

    @staticmethod
    def _close(request: web.BaseRequest, status: int, message: str) -> web.Response:
        """A transport-limit answer; the connection closes after it (the rest of the body is unread)."""
        response = web.Response(status=status, body=bybit_error(10001, message), content_type="application/json")
        response.force_close()
        return response
