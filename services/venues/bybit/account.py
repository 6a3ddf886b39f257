"""Bybit's account views as values: the wallet balance of a coin and the positions held. Pure.

The rows (docs/v5/account/wallet-balance, docs/v5/position; bybit-v5.md §3), annotated:
    wallet   {"list": [{"accountType": "UNIFIED", "coin": [{"coin": "USDT", "walletBalance":
              "12345.67" (cash: deposits + realized PnL - fees - funding; no unrealized PnL), …}]}]}
    position {"symbol": "BTCUSDT", "side": "Buy" | "Sell" | "" (flat), "size": "0.020",
              "avgPrice": "60000" (average entry), "seq": 42, "updatedTime": "1767225600000", …}
A row that is not Bybit's shape raises ValueError naming the field: the caller retries or skips
its check, it never folds a guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = ["Held", "held_positions", "position_sizes", "wallet_balance"]

ZERO = Decimal(0)


@dataclass(frozen=True)
class Held:
    """One position the venue holds: signed quantity (short < 0) at its average entry price."""

    qty: Decimal
    avg_entry_price: Decimal
    seq: int
    updated_ms: int


def _number(row: Mapping[str, Any], field: str) -> Decimal:
    value = row.get(field)
    try:
        number = Decimal(str(value if value not in (None, "") else "0"))
    except InvalidOperation:
        raise ValueError(f"Expected a number in {field!r} of {row.get('symbol', row.get('coin'))!r}, "
                         f"found {value!r}") from None
    if not number.is_finite():
        raise ValueError(f"Expected a finite {field!r}, found {value!r}")
    return number


def wallet_balance(result: Mapping[str, Any], coin: str) -> Decimal:
    """`walletBalance` of `coin` in a /v5/account/wallet-balance result; an account without the
    coin holds none of it."""
    accounts = result.get("list")
    if not isinstance(accounts, list) or not accounts or not isinstance(accounts[0], dict):
        raise ValueError(f"Expected a wallet-balance result with a list of accounts, found {str(result)[:200]!r}")
    coins = accounts[0].get("coin") or []
    if not isinstance(coins, list):
        raise ValueError(f"Expected a list of coins in the wallet, found {str(coins)[:200]!r}")
    for row in coins:
        if isinstance(row, dict) and row.get("coin") == coin:
            return _number(row, "walletBalance")
    return ZERO


def held_positions(rows: list[dict[str, Any]]) -> dict[str, Held]:
    """/v5/position/list rows as symbol → Held; flat rows are left out."""
    held: dict[str, Held] = {}
    for row, qty in _open_positions(rows):
        avg = _number(row, "avgPrice")
        if avg <= 0:
            raise ValueError(f"position of {row.get('symbol')!r} has size {abs(qty)} and average price {avg}")
        held[str(row["symbol"])] = Held(qty, avg, int(str(row.get("seq") or 0)), int(str(row.get("updatedTime") or 0)))
    return held


def position_sizes(rows: list[dict[str, Any]]) -> dict[str, tuple[Decimal, int]]:
    """/v5/position/list rows as symbol → (signed size, seq), what the position check compares;
    flat rows are left out."""
    return {str(row["symbol"]): (qty, int(str(row.get("seq") or 0))) for row, qty in _open_positions(rows)}


def _open_positions(rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], Decimal]]:
    """The rows that hold a position, each with its signed size (short < 0)."""
    out = []
    for row in rows:
        size = _number(row, "size")
        if size == 0:
            continue
        side = row.get("side")
        if side not in ("Buy", "Sell"):
            raise ValueError(f"position of {row.get('symbol')!r} has size {size} and side {side!r}")
        out.append((row, size if side == "Buy" else -size))
    return out
