"""`hean run exchange-sim`: the simulator as a process (settings from EXCHANGE_SIM_* variables)."""

from __future__ import annotations

import asyncio

from services.exchange_sim.server import SimConfig, Simulator
from services.runtime.settings import RuntimeSettings, load_settings


async def run(settings: RuntimeSettings, stop: asyncio.Event) -> None:
    simulator = Simulator(load_settings(SimConfig, "EXCHANGE_SIM"))
    port = await simulator.start()
    print(f"exchange-sim: ws://{simulator.config.host}:{port}/v5/public/linear (REST on the same port)", flush=True)
    try:
        await stop.wait()
    finally:
        await simulator.stop()
