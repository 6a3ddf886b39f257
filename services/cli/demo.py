"""`hean demo`: the runtime end to end on the local stack, with a live terminal summary.

Starts the tally service as its own process (`hean run tally`), feeds demo.trades with synthetic
trades at a fixed rate, and reads demo.tallies (read_committed) to show what the service folded.
The main job until the trading services replace it.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from decimal import Decimal

from aiokafka import AIOKafkaProducer

from schemas.events import TallyUpdated
from schemas.topics import DEMO_TALLIES, DEMO_TRADES
from services.cli.topics import bootstrap
from services.runtime.bus import ensure_topics, make_consumer
from services.runtime.codec import decode_as, encode
from services.tally.feed import synthetic_trades


async def _demo(duration: float, rate: int) -> int:
    await ensure_topics(bootstrap())
    service = subprocess.Popen([sys.executable, "-m", "services.cli.main", "run", "tally"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap(), enable_idempotence=True, linger_ms=5)
    consumer = make_consumer(bootstrap(), None, DEMO_TALLIES)
    await producer.start()
    await consumer.start()
    await consumer.seek_to_end()
    totals: dict[str, TallyUpdated] = {}
    counters = {"sent": 0, "seen": 0}
    started = time.monotonic()
    seed = int(time.time())

    async def feed() -> None:
        trades = synthetic_trades(10**12, seed=seed, start_ns=time.time_ns())
        tick = 0.05
        while not stop.is_set():
            for trade in (next(trades) for _ in range(max(1, int(rate * tick)))):
                await producer.send(DEMO_TRADES, encode(trade), key=trade.symbol.encode())
                counters["sent"] += 1
            await asyncio.sleep(tick)

    async def watch() -> None:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    update = decode_as(record.value, TallyUpdated)
                    totals[update.symbol] = update
                    counters["seen"] += 1

    async def show() -> None:
        tty = sys.stdout.isatty()
        last_seen, last_t = 0, time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(1)
            now = time.monotonic()
            rate_seen = (counters["seen"] - last_seen) / (now - last_t)
            last_seen, last_t = counters["seen"], now
            alive = "up" if service.poll() is None else f"exited {service.returncode}"
            lines = [f"hean demo  {now - started:6.1f}s  tally: {alive}  sent {counters['sent']}  "
                     f"folded {counters['seen']}  ({rate_seen:,.0f} ev/s)",
                     f"{'symbol':<10} {'trades':>8} {'qty':>14} {'notional':>20}"]
            lines += [f"{s:<10} {t.count:>8} {t.total_qty:>14} {t.total_notional.quantize(Decimal('0.01')):>20}"
                      for s, t in sorted(totals.items())]
            if tty:
                sys.stdout.write("\x1b[2J\x1b[H" + "\n".join(lines) + "\n(Ctrl-C to stop)\n")
            else:
                sys.stdout.write(lines[0] + "\n")
            sys.stdout.flush()
            if duration and now - started >= duration:
                stop.set()

    tasks = [asyncio.create_task(t()) for t in (feed, watch, show)]
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await producer.stop()
    await consumer.stop()
    service.send_signal(signal.SIGTERM)
    rc = service.wait(timeout=30)
    print(f"summary: sent {counters['sent']} trades, tally folded {counters['seen']} "
          f"across {len(totals)} symbols; tally exited {rc}")
    return 0 if rc == 0 and counters["seen"] > 0 else 1


def run_demo(duration: float, rate: int) -> int:
    """Run the demo until Ctrl-C, or for `duration` seconds; exit 0 when the tally kept up."""
    return asyncio.run(_demo(duration, rate))
