"""Order operations through the real stack (broker, Redis, risk, execution, the simulator over
sockets): an operator's manual orders with `hean order` (submit, amend, cancel, cancel-all),
risk's rejections, a strategy's two amends that arrive together going out as one amend-batch,
and `hean orders` listing what the log says, checked against the venue's own books."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from schemas.events import AmendOrder, CancelOrder, OrderAmended
from schemas.topics import TOPICS
from services.cli.main import main
from services.exchange_sim.server import SimConfig, Simulator
from services.execution.config import ExecutionConfig
from services.execution.shell import Execution
from services.risk.config import RiskConfig
from services.risk.shell import definition as risk_definition
from services.runtime.codec import decode, encode
from services.runtime.run import ServiceRunner
from services.runtime.settings import RuntimeSettings, Secret
from tests.conftest import create_topics, read_topic, sim_get, wait_consumed

pytestmark = pytest.mark.integration
KEY, SECRET, ACCOUNT = "ops-key", "ops-secret", "acc-ops"


async def hean(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """The `hean` command in-process (in a thread: it runs its own event loop); code, out, err."""
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


async def send_together(bootstrap: str, prefix: str, intents: list[Any]) -> None:
    """Intents in one produce request, so risk reads (and decides) them in one batch."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for intent in intents:
            await producer.send(prefix + "orders.intents", encode(intent), key=intent.symbol.encode())
        await producer.flush()
    finally:
        await producer.stop()


async def test_manual_orders_amends_and_cancel_all(bootstrap: str, redis_url: str, prefix: str,
                                                   capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEAN_KAFKA_BOOTSTRAP", bootstrap)
    await create_topics(bootstrap, prefix, [t.name for t in TOPICS])
    sim = Simulator(SimConfig(port=0, rest_port=0, rate=20, symbols=("BTCUSDT",), seed=9,
                              api_keys=(f"{KEY}:{SECRET}",)))
    port = await sim.start()
    sim.stalled_until = float("inf")  # a still market: the resting prices below stay unfilled
    settings = RuntimeSettings(kafka_bootstrap=bootstrap, redis_url=redis_url, topic_prefix=prefix)
    rules = RiskConfig(instruments=("BTCUSDT=0.10/0.001/0.001/5",))  # no ingest here to publish ref.instruments
    risk = ServiceRunner(risk_definition(rules), settings)
    execution = Execution(ExecutionConfig(account=ACCOUNT, rest_url=f"http://127.0.0.1:{sim.rest_port}",
                                          ws_url=f"ws://127.0.0.1:{port}/v5/private", api_key=KEY,
                                          api_secret=Secret(SECRET)), settings)
    stops = {"risk": asyncio.Event(), "execution": asyncio.Event()}
    tasks = [asyncio.create_task(risk.run(stops["risk"])), asyncio.create_task(execution.run(stops["execution"]))]
    order = ("order", "--account", ACCOUNT, "--symbol", "BTCUSDT", "--topic-prefix", prefix)
    try:
        await asyncio.wait_for(execution.active.wait(), 30)
        # bad input: one line, exit code 2, nothing sent
        code, _, err = await hean(capsys, *order[:1], "submit", *order[1:], "--side", "Buy", "--qty", "abc")
        assert (code, err.count("\n")) == (2, 1) and "--qty must be a decimal number" in err

        code, out, _ = await hean(capsys, *order[:1], "submit", *order[1:], "--side", "Buy", "--qty", "0.010",
                                  "--price", "50000.0")
        assert code == 0 and "approved by risk" in out and "venue: OrderAcknowledged" in out, out
        first = out.split()[1]
        code, out, _ = await hean(capsys, *order[:1], "submit", *order[1:], "--side", "Sell", "--qty", "0.010",
                                  "--price", "90000.0")
        second = out.split()[1]
        code, out, _ = await hean(capsys, *order[:1], "submit", *order[1:], "--side", "Buy", "--qty", "50",
                                  "--price", "50000.0")
        assert "rejected by risk: max_order_qty" in out, out

        code, out, _ = await hean(capsys, *order[:1], "amend", *order[1:], "--intent", first, "--qty", "0.020")
        assert code == 0 and "venue: OrderAmended" in out, out
        code, out, _ = await hean(capsys, *order[:1], "amend", *order[1:], "--intent", "nothing", "--price", "1.0")
        assert "rejected by risk: unknown_order" in out, out

        # a strategy's two amends sent together: risk approves both in one step, execution batches them
        now = time.time_ns()
        await send_together(bootstrap, prefix, [
            AmendOrder(id=f"am-{n}-{now}", ts_event=now, ts_ingest=now, account=ACCOUNT, strategy="maker",
                       symbol="BTCUSDT", intent_id=target, price=Decimal(price))
            for n, (target, price) in enumerate(((first, "50010.0"), (second, "89990.0")))])
        await wait_consumed(bootstrap, risk.group_id, prefix + "orders.intents")
        await wait_consumed(bootstrap, execution.group_id, prefix + "orders.decisions")
        reports = [decode(r.value) for r in await read_topic(bootstrap, prefix + "orders.events")]
        assert {e.intent_id for e in reports if isinstance(e, OrderAmended) and e.price is not None} == {first,
                                                                                                       second}
        # ... and two cancels together go out as one cancel-batch
        await send_together(bootstrap, prefix, [
            CancelOrder(id=f"cx-{target}", ts_event=now, ts_ingest=now, account=ACCOUNT, strategy="maker",
                        symbol="BTCUSDT", intent_id=target) for target in (first, second)])

        code, out, _ = await hean(capsys, *order[:1], "submit", *order[1:], "--side", "Buy", "--qty", "0.010",
                                  "--price", "48000.0")
        third = out.split()[1]
        code, out, _ = await hean(capsys, *order[:1], "submit", *order[1:], "--side", "Buy", "--qty", "0.010",
                                  "--price", "47000.0")
        fourth = out.split()[1]
        code, out, _ = await hean(capsys, *order[:1], "cancel", *order[1:], "--intent", fourth)
        assert "venue: OrderCancelled (CancelByUser)" in out, out
        code, out, _ = await hean(capsys, *order[:1], "cancel", *order[1:], "--all")
        assert code == 0 and "approved by risk" in out, out

        ledger: dict[str, Any] = {}
        for _ in range(50):  # the cancel-all's reports come over the private stream
            ledger = {o["orderLinkId"]: o for o in (await sim_get(sim, "/sim/ledger")).json()[KEY]["orders"]}
            if all(o["orderStatus"] == "Cancelled" for o in ledger.values()):
                break
            await asyncio.sleep(0.1)
        assert (ledger[f"h-{first}"]["price"], ledger[f"h-{first}"]["qty"]) == ("50010.00", "0.020")
        assert ledger[f"h-{second}"]["price"] == "89990.00"
        assert {o["orderStatus"] for o in ledger.values()} == {"Cancelled"} and len(ledger) == 4
        requests = (await sim_get(sim, "/sim/stats")).json()["requests"]
        assert [requests[f"/v5/order/{r}"] for r in ("amend", "amend-batch", "cancel", "cancel-batch", "cancel-all")
                ] == [1, 1, 1, 1, 1]

        await wait_consumed(bootstrap, execution.group_id, prefix + "orders.decisions")
        await asyncio.sleep(0.5)  # the last private reports
        code, out, _ = await hean(capsys, "orders", "--account", ACCOUNT, "--topic-prefix", prefix)
        states = {line.split()[0]: line for line in out.splitlines()[1:]}
        assert "Cancelled" in states[first] and "0.020" in states[first] and "50010.0" in states[first], out
        assert all("Cancelled" in states[i] for i in (second, third, fourth))
        assert "rejected by risk" in out and "max_order_qty" in out
        code, out, _ = await hean(capsys, "orders", "--account", ACCOUNT, "--open", "--topic-prefix", prefix)
        assert out.strip() == f"no orders for {ACCOUNT} open"
    finally:
        for name, task in zip(stops, tasks, strict=True):
            stops[name].set()
            await asyncio.wait_for(task, 30)
        await sim.stop()
