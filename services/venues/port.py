"""What a venue adapter provides, named once so ingest (and later execution) work against any venue.

So far the port has one part, reference data: the instruments a venue lists, as domain
Instruments (services/venues/bybit/instruments.py implements it for Bybit V5). The market-data
parsing, REST and private-stream parts of issue 14 §3 join it here as they move under
services/venues/<venue>/.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import httpx

from services.domain.instrument import Instrument


class InstrumentsRefused(ValueError):
    """A reference-data answer HEAN cannot read: says which item and field, and what was found."""


class InstrumentSource(Protocol):
    """A venue's instruments: `read` answers the rules of every listed instrument among `symbols`.

    Raises InstrumentsRefused for an answer it cannot read, and httpx.HTTPError when the venue
    cannot be reached; both are retried by the caller (ingest's InstrumentFeed)."""

    venue: str

    async def read(self, client: httpx.AsyncClient, symbols: Sequence[str]) -> list[Instrument]: ...
