"""`hean kill-switch on|off --account A --reason R`: an operator's halt or resume, as a control event."""

from __future__ import annotations

import asyncio
import getpass
import time

from schemas.events import TradingHalted, TradingResumed
from schemas.topics import CONTROL
from services.cli.topics import bootstrap
from services.domain.ids import operator_control_id
from services.runtime.bus import make_producer
from services.runtime.codec import encode


def kill_switch(state: str, account: str, reason: str, prefix: str = "", flatten: bool = False) -> int:
    now = time.time_ns()
    actor = f"operator:{getpass.getuser()}"
    common = {"id": operator_control_id(account, state, now), "ts_event": now, "ts_ingest": now,
              "account": account, "reason": reason, "actor": actor}
    event = TradingHalted(**common, flatten=flatten) if state == "on" else TradingResumed(**common)

    async def send() -> None:
        producer = make_producer(bootstrap())
        await producer.start()
        try:
            await (await producer.send(prefix + CONTROL, encode(event), key=account.encode()))
        finally:
            await producer.stop()

    asyncio.run(send())
    done = ("; risk cancels every working order" + (" and closes every position" if flatten else "")) \
        if state == "on" else ""
    print(f"kill switch {state} for {account}: {reason} ({event.id}){done}")
    return 0
