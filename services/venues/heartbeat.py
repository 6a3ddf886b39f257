"""When a venue's WebSocket is to be given up: one rule for the public feed (ingest) and the private
stream (execution). Pure: the shells keep the clocks and close the socket.

A venue may keep pushing on a session it no longer answers, or go quiet without closing it; so a
connection is live only while it answers its pings and while something at all arrives. Bybit asks
for a ping every 20 s and cuts a connection silent for 10 minutes (bybit-v5.md §1.3).
"""

from __future__ import annotations

from typing import Literal

__all__ = ["Verdict", "verdict"]

Verdict = Literal["stale", "pong_timeout"]


def verdict(now: float, last_message: float, ping_unanswered_since: float | None, stale_after: float,
            pong_timeout: float) -> Verdict | None:
    """Why the connection is to be closed now, or None while it is live: "stale" when nothing
    arrived for `stale_after` seconds (checked first: a silent socket answers no ping either),
    "pong_timeout" when the oldest unanswered ping is older than `pong_timeout` seconds."""
    if now - last_message > stale_after:
        return "stale"
    if ping_unanswered_since is not None and now - ping_unanswered_since > pong_timeout:
        return "pong_timeout"
    return None
