"""Batch endpoints through execution's client against the simulator over real sockets: a batch
costs one rate-limit unit per order, the client paces by orders, and the orders the venue refused
for its limit (10006 item by item) are sent again, so every order is placed once."""

from __future__ import annotations

import time

from services.exchange_sim.server import Simulator
from services.venues.bybit.rest import BybitRest
from tests.services.venues.test_bybit_rest import KEY, client, created, order, sim  # noqa: F401 (fixtures)

CREATE_BATCH = "/v5/order/create-batch"


async def test_orders_past_the_units_left_are_sent_again(client: BybitRest, sim: Simulator) -> None:  # noqa: F811
    sim.private._rate(KEY, CREATE_BATCH, int(time.time() * 1000), 7)  # another client spent 7 of 10 units
    outcomes = await client.place_orders("linear", [order(f"q-{i}") for i in range(5)])
    assert outcomes == [(0, "OK")] * 5
    assert all(created(sim, f"q-{i}") == 1 for i in range(5))
    assert sim.private.requests[CREATE_BATCH] == 2  # 3 fitted, the other 2 went again after the reset


async def test_a_burst_of_batches_is_paced_by_orders(client: BybitRest, sim: Simulator) -> None:  # noqa: F811
    outcomes = await client.place_orders("linear", [order(f"p-{i}") for i in range(25)])
    assert outcomes == [(0, "OK")] * 25 and all(created(sim, f"p-{i}") == 1 for i in range(25))
    # 25 orders at 10 units a second: the pacer waited rather than letting the venue refuse any
    assert sim.private.requests[CREATE_BATCH] == 3 and client.paced_seconds > 0
