"""The simulator's private WebSocket (/v5/private): auth, subscriptions, and the engine's reports.

    {"op": "auth", "args": [key, expires, signature]}   HMAC of "GET/realtime" + expires
    {"op": "subscribe", "args": ["order", ...]}          after auth
    {"op": "ping"}                                       private pong: {"op": "pong", "args": [ms]}

Topics (bybit-v5.md §2.2): all-in-one `order`, `execution`, `execution.fast`, `position`,
`wallet`, `greeks`, or categorised `order.linear`, `execution.spot`, `execution.fast.linear`,
`position.inverse` .... All-in-one and categorised forms of one stream cannot share a request.
Each message carries the topic the client subscribed to, since stock clients (pybit) look up
their callback by that name: a client that subscribed to `order.linear` and got `order` frames
dropped every one of them. Messages are validated by requests.WsOp like every other input.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import uuid
from typing import TYPE_CHECKING, Any

import orjson
from websockets.asyncio.server import ServerConnection, broadcast
from websockets.exceptions import ConnectionClosed

from services.exchange_sim.requests import ParamsError, WsOp, parse_body
from services.venues.bybit.signing import ws_auth_signature

if TYPE_CHECKING:
    from services.exchange_sim.server import Simulator

log = logging.getLogger(__name__)

STREAMS = {"order": ("spot", "linear", "inverse", "option"), "execution": ("spot", "linear", "inverse", "option"),
           "execution.fast": ("spot", "linear", "inverse", "option"), "position": ("linear", "inverse", "option"),
           "wallet": (), "greeks": ()}
TOPICS = {name: stream for stream, categories in STREAMS.items()
          for name in (stream, *(f"{stream}.{c}" for c in categories))}  # topic → its stream
FAST_FIELDS = ("category", "symbol", "execId", "execPrice", "execQty", "orderId", "isMaker", "orderLinkId",
               "side", "execTime", "seq")


class PrivateSocket:
    """Sessions of /v5/private; `sessions` maps each connection to {"key", "topics", "conn_id"}."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.sessions: dict[ServerConnection, dict[str, Any]] = {}

    async def serve(self, connection: ServerConnection) -> None:
        session: dict[str, Any] = {"key": None, "topics": set(), "conn_id": str(uuid.uuid4())}
        self.sessions[connection] = session
        try:
            async for raw in connection:
                try:
                    reply = self.on_message(session, raw)
                except Exception:  # last resort: a bug here must answer, not drop the socket
                    self.sim.stats["server_errors"] += 1
                    log.exception("private WS message failed")
                    reply = self._reply(session, {}, "", False, "Server error")
                if not reply:
                    continue  # an unanswered ping (fault mute_pongs)
                if self.sim.config.ws_reply_delay_ms:
                    await asyncio.sleep(self.sim.config.ws_reply_delay_ms / 1000)
                await connection.send(reply)
        except ConnectionClosed:
            pass
        finally:
            self.sessions.pop(connection, None)

    def on_message(self, session: dict[str, Any], raw: str | bytes) -> str:
        """auth, then subscribe; pong in the private shape; a Bybit-style failure for anything else.
        "" means no answer (a ping while the mute_pongs fault holds)."""
        try:
            request = parse_body(WsOp, raw.encode() if isinstance(raw, str) else raw)
        except ParamsError as exc:
            self.sim.stats["bad_requests"] += 1
            return self._reply(session, {}, "", False, f"Invalid request: {exc}")
        reply: dict[str, Any] = {"req_id": str(request.req_id)} if request.req_id not in (None, "") else {}
        op, args = request.op, request.args
        if op == "ping":
            if self.sim.pongs_muted():
                self.sim.stats["pings_unanswered"] += 1
                return ""
            return orjson.dumps({**reply, "op": "pong", "args": [str(self.sim._now_ms())],
                                 "conn_id": session["conn_id"]}).decode()
        if op == "auth":
            ok, message = self._check_auth(args)
            if ok:
                session["key"] = str(args[0])  # type: ignore[index]
            return self._reply(session, reply, "auth", ok, message)
        if op not in ("subscribe", "unsubscribe"):
            return self._reply(session, reply, op, False, f"Invalid op: {op}")
        if session["key"] is None:
            return self._reply(session, reply, op, False, "Request not authorized")
        topics = args or []
        unknown = [str(t) for t in topics if not isinstance(t, str) or t not in TOPICS]
        if not topics or unknown:
            return self._reply(session, reply, op, False, f"Invalid topics: {unknown or 'none given'}")
        streams = [TOPICS[t] for t in topics]  # type: ignore[index]
        if op == "subscribe" and len(set(streams)) != len(streams):
            return self._reply(session, reply, op, False, "all-in-one and categorised topics of one stream "
                                                          "cannot be in the same request")
        if op == "subscribe":
            session["topics"].update(topics)
        else:
            session["topics"].difference_update(topics)
        return self._reply(session, reply, op, True, "")

    @staticmethod
    def _reply(session: dict[str, Any], reply: dict[str, Any], op: str, success: bool, message: str) -> str:
        return orjson.dumps({**reply, "success": success, "ret_msg": message, "op": op,
                             "conn_id": session["conn_id"]}).decode()

    def _check_auth(self, args: list[str | int] | None) -> tuple[bool, str]:
        if not isinstance(args, list) or len(args) != 3:
            return False, "Params Error"
        key, expires, signature = args
        secret = self.sim.secrets.get(str(key))
        if secret is None:
            return False, "Invalid apikey"
        if not str(expires).isdigit() or len(str(expires)) > 15:
            return False, "Params Error"
        expires_ms = int(expires)
        if expires_ms <= self.sim._now_ms():
            return False, "Params Error: request expired"
        if not hmac.compare_digest(ws_auth_signature(secret, expires_ms), str(signature)):
            return False, "Invalid sign"
        return True, ""

    def deliver(self, reports: list[tuple[str, str, dict[str, Any]]], now_ms: int) -> None:
        """Push each report to the key's sessions under every topic they subscribed that covers it:
        the all-in-one name, the report's category, and for fills the fast execution stream."""
        for key, stream, data in reports:
            category = data.get("category", "")
            for connection, session in self.sessions.items():
                if session["key"] != key:
                    continue
                for topic in session["topics"]:
                    base = TOPICS[topic]
                    if topic not in (base, f"{base}.{category}"):
                        continue
                    if base == stream:
                        item = data
                    elif base == "execution.fast" and stream == "execution":
                        item = {k: data[k] for k in FAST_FIELDS if k in data}
                    else:
                        continue
                    message = {"id": str(uuid.uuid4()), "topic": topic, "creationTime": now_ms, "data": [item]}
                    broadcast([connection], orjson.dumps(message).decode())
                    self.sim.stats["private_messages"] += 1
