"""Accounting settings (env prefix ACCOUNTING_)."""

from __future__ import annotations

from decimal import Decimal

import msgspec


class AccountingConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    starting_balance: Decimal = Decimal("100000")
