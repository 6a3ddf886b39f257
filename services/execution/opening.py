"""The account's opening: what the venue already holds when HEAN first trades an account. Pure.

A real account has a wallet balance, and may hold positions, before HEAN's first session on it.
At the start of that session (nothing in orders.events describes the account yet) execution
reads both from the venue (services/venues/bybit/account.py) and logs them: one PositionAdopted
per position held, then one AccountOpened with the wallet balance in the settle coin. Accounting
folds them into equity and positions, risk into exposure and position limits, execution into what
its checks expect of the venue. Ids derive from the account (and symbol), so a restart that finds
them in the log, or logs them again after a crash between the two, never adopts twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from schemas.events import AccountOpened, PositionAdopted
from services.domain.ids import account_opened_id, position_adopted_id
from services.venues.bybit.account import Held

__all__ = ["SETTLE_COIN", "opening_events"]

SETTLE_COIN = "USDT"  # linear USDT perpetuals settle in USDT (the position and order queries ask for it too)


def opening_events(account: str, coin: str, balance: Decimal, held: Mapping[str, Held], venue_ms: int,
                   now_ns: int) -> tuple[list[PositionAdopted], AccountOpened]:
    """The positions to adopt (by symbol) and the opening that follows them. `venue_ms` is the
    venue's time of the reading (its answer's `time`): it is the events' time."""
    ts = venue_ms * 1_000_000
    adopted = [PositionAdopted(id=position_adopted_id(account, symbol), ts_event=ts, ts_ingest=now_ns,
                               account=account, symbol=symbol, qty=h.qty, avg_entry_price=h.avg_entry_price,
                               venue_seq=h.seq)
               for symbol, h in sorted(held.items())]
    opened = AccountOpened(id=account_opened_id(account), ts_event=ts, ts_ingest=now_ns, account=account, coin=coin,
                           wallet_balance=balance, positions=len(adopted))
    return adopted, opened
