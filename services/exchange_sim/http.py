"""A small HTTP/1.1 server for the simulator's REST (public and signed private), on h11.

Why h11 over asyncio streams: the private endpoints are POSTs with bodies, which the websockets
HTTP hook does not read, and h11 (already here as httpx's dependency) is a well-kept sans-IO
HTTP/1.1 parser. Keep-alive, Content-Length bodies; the handler gets the raw body bytes, because
signatures are checked over the exact bytes sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import h11

log = logging.getLogger(__name__)


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


class HttpServer:
    """Serves `handler` on host:port until `stop()`."""

    def __init__(self, handler: Handler, host: str = "127.0.0.1", port: int = 0, max_body: int = 1 << 20) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self.max_body = max_body
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = h11.Connection(h11.SERVER)
        try:
            while True:
                request = await self._read_request(connection, reader)
                if request is None:
                    return
                try:
                    response = await self.handler(request)
                except Exception:
                    log.exception("handler failed for %s %s", request.method, request.target)
                    response = HttpResponse(500, b'{"retCode":10016,"retMsg":"Server error."}')
                if response.drop:
                    return
                if response.delay:
                    await asyncio.sleep(response.delay)
                headers = [("content-type", "application/json"), ("content-length", str(len(response.body))),
                           *response.headers.items()]
                writer.write(connection.send(h11.Response(status_code=response.status, headers=headers)))
                writer.write(connection.send(h11.Data(data=response.body)))
                writer.write(connection.send(h11.EndOfMessage()))
                await writer.drain()
                if connection.our_state is h11.MUST_CLOSE:
                    return
                connection.start_next_cycle()
        except (h11.RemoteProtocolError, ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _read_request(self, connection: h11.Connection, reader: asyncio.StreamReader) -> HttpRequest | None:
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                connection.receive_data(data)
                if not data and connection.their_state is h11.IDLE:
                    return None
                continue
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > self.max_body:
                    raise h11.RemoteProtocolError("body too large")
            elif isinstance(event, h11.EndOfMessage):
                assert request is not None
                headers = {k.decode().lower(): v.decode() for k, v in request.headers}
                return HttpRequest(request.method.decode(), request.target.decode(), headers, bytes(body))
            elif isinstance(event, h11.ConnectionClosed):
                return None
