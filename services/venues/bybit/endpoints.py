"""Where Bybit V5 lives, and which credentials may be sent there. Pure: no I/O.

`hean up --venue bybit|bybit-testnet` takes its URLs from here, and execution refuses to start
against a real Bybit host with missing or placeholder keys: a typo in an environment variable must
stop the service with a clear message at start, not turn into a stream of signature errors (or,
worse, orders signed with the simulator's well-known test key) once the market is moving.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["VENUES", "Endpoints", "credential_problem", "is_real_bybit"]


@dataclass(frozen=True)
class Endpoints:
    """A venue's three entry points for the linear category (bybit-v5.md §1)."""

    public_ws: str
    private_ws: str
    rest: str


VENUES: dict[str, Endpoints] = {
    "bybit": Endpoints("wss://stream.bybit.com/v5/public/linear", "wss://stream.bybit.com/v5/private",
                       "https://api.bybit.com"),
    "bybit-testnet": Endpoints("wss://stream-testnet.bybit.com/v5/public/linear",
                               "wss://stream-testnet.bybit.com/v5/private", "https://api-testnet.bybit.com"),
}
# Bybit's own domains (main, testnet, demo and the regional mirrors).
_REAL_DOMAINS = ("bybit.com", "bytick.com", "bybit.nl", "bybit-tr.com", "bybit.kz", "bybitglobal.com", "bybit.eu")
# What people leave in a .env template; the simulator's own test key is one of them.
_PLACEHOLDERS = {"", "hean-sim-key", "hean-sim-secret", "changeme", "change-me", "your-api-key", "your-api-secret",
                 "your_api_key", "your_api_secret", "api-key", "api-secret", "key", "secret", "placeholder", "xxx",
                 "todo", "none", "null"}
_MIN_LENGTH = 16  # Bybit's keys are 18 characters and its secrets 36


def is_real_bybit(url: str) -> bool:
    """True when the URL points at one of Bybit's own hosts (live, testnet or demo trading)."""
    host = (urlsplit(url).hostname or "").lower()
    return any(host == d or host.endswith("." + d) for d in _REAL_DOMAINS)


def credential_problem(name: str, value: str) -> str | None:
    """Why `value` cannot be a real Bybit credential, or None. `name` names the setting in the
    message; the value itself is never part of it."""
    lowered = value.strip().lower()
    if not lowered:
        return f"{name} is not set"
    if lowered in _PLACEHOLDERS or set(lowered) <= {"x", "*", "-", "0"} or "placeholder" in lowered:
        return f"{name} holds a placeholder, not a key from the venue"
    if len(value.strip()) < _MIN_LENGTH:
        return f"{name} is {len(value.strip())} characters; Bybit's are at least {_MIN_LENGTH}"
    return None
