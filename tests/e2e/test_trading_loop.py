"""The whole loop on the local stack, over real sockets: simulator → ingest → strategy → risk →
execution → simulator fills → accounting. Accounting must equal the simulator's own account."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from schemas.events import IntentApproved, OrderAcknowledged, OrderFilled, OrderPartiallyFilled, SubmitOrder
from services.runtime.codec import decode
from tests.conftest import read_topic
from tests.e2e.loop import running_loop

pytestmark = pytest.mark.integration
KEY, SECRET, ACCOUNT = "e2e-key", "e2e-secret", "sim-1"


async def test_full_loop_trades_and_accounting_equals_the_venue(bootstrap: str, redis_url: str, prefix: str) -> None:
    async with running_loop(bootstrap, redis_url, prefix, key=KEY, secret=SECRET, account=ACCOUNT) as loop:
        await asyncio.sleep(10)
        await loop.quiesce()
    sim, accounting = loop.sim, loop.accounting

    intents = [decode(r.value) for r in await read_topic(bootstrap, prefix + "orders.intents")]
    decisions = [decode(r.value) for r in await read_topic(bootstrap, prefix + "orders.decisions")]
    events = [decode(r.value) for r in await read_topic(bootstrap, prefix + "orders.events")]
    approved = [d for d in decisions if isinstance(d, IntentApproved) and isinstance(d.intent, SubmitOrder)]
    assert intents and approved, "the strategies traded"
    placed = sim.private.created_link_ids
    assert len(placed) == len(set(placed)) == len(approved), "each approved intent became exactly one order"
    fills = [e for e in events if isinstance(e, OrderFilled | OrderPartiallyFilled)]
    assert fills and any(isinstance(e, OrderAcknowledged) for e in events)
    assert len({e.id for e in events}) == len(events), "no event reported twice"
    dead = [decode(r.value) for r in await read_topic(bootstrap, prefix + "dlq")]
    assert not dead, f"nothing in the loop is dead-lettered: {dead[:3]}"

    state = accounting.states[0]
    venue = sim.engine.accounts[KEY]
    for symbol, market in sim.symbols.items():
        position = state.positions.get(ACCOUNT, {}).get(symbol)
        venue_position = venue.positions.get(symbol)
        venue_qty = market.instrument.qty_step * (venue_position.size if venue_position else 0)
        assert (position.qty if position else 0) == venue_qty, symbol
        if venue_position is not None and position is not None:
            assert abs(position.realized - venue_position.realized) < Decimal("1e-12"), symbol
    assert sum((p.fees for p in state.positions[ACCOUNT].values()), Decimal(0)) == venue.fees_paid
