"""Bybit V5 request signing (bybit-v5.md §2.1, §3.2-3.3), shared by the REST client (rest.py) and the
simulator's verifier so both sides compute the same string from the same bytes.

REST: HMAC-SHA256(secret, timestamp + api_key + recv_window + payload) as lowercase hex, where the
payload is the exact query string of a GET or the exact body of a POST: never re-serialized.
Private WebSocket auth: HMAC-SHA256(secret, "GET/realtime" + expires).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

__all__ = ["query_string", "rest_signature", "verify_rest_signature", "ws_auth_signature"]


def rest_signature(secret: str, timestamp_ms: int | str, api_key: str, recv_window_ms: int | str,
                   payload: str) -> str:
    """The X-BAPI-SIGN value of one request."""
    plain = f"{timestamp_ms}{api_key}{recv_window_ms}{payload}"
    return hmac.new(secret.encode(), plain.encode(), hashlib.sha256).hexdigest()


def verify_rest_signature(secret: str, timestamp_ms: str, api_key: str, recv_window_ms: str, payload: str,
                          signature: str) -> bool:
    """Constant-time check of a received X-BAPI-SIGN."""
    expected = rest_signature(secret, timestamp_ms, api_key, recv_window_ms, payload)
    return hmac.compare_digest(expected, signature.lower())


def ws_auth_signature(secret: str, expires_ms: int | str) -> str:
    """The signature of the private WebSocket `auth` op for `expires` (ms, in the future)."""
    return hmac.new(secret.encode(), f"GET/realtime{expires_ms}".encode(), hashlib.sha256).hexdigest()


def query_string(params: Mapping[str, Any]) -> str:
    """A GET query as signed and sent: keys sorted, None skipped, `k=v` joined by `&` (as pybit)."""
    return "&".join(f"{key}={value}" for key, value in sorted(params.items()) if value is not None)
