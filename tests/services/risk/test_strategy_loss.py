"""max_strategy_loss: a strategy's PnL (its fills' cash plus holdings at mid) stops its new orders,
not the account's other strategies, and the same fills give the same state in any interleaving."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from schemas.events import IntentApproved, OrderFilled, SubmitOrder
from services.risk.config import RiskConfig
from services.risk.core import RiskState, step
from services.runtime.settings import load_settings
from tests.services.risk.test_core import PARAMS, S, decide, mid

D = Decimal
LIMITED = msgspec.structs.replace(PARAMS, max_strategy_loss=D("100"))


def order(n: int, strategy: str, side: str = "Buy", qty: str = "0.1", reduce_only: bool = False,
          price: str = "50000.0") -> SubmitOrder:
    return SubmitOrder(id=f"{strategy}{n}", ts_event=n * S, ts_ingest=n, account="acc", strategy=strategy,
                       symbol="BTCUSDT", side=side, order_type="Limit", qty=D(qty),  # type: ignore[arg-type]
                       price=D(price), reduce_only=reduce_only)


def fill(intent: SubmitOrder, price: str) -> OrderFilled:
    return OrderFilled(id=f"f-{intent.id}", ts_event=intent.ts_event + 1, ts_ingest=0, account="acc",
                       symbol="BTCUSDT", intent_id=intent.id, order_link_id=f"h-{intent.id}", exec_id=f"x{intent.id}",
                       side=intent.side, fill_qty=intent.qty, fill_price=D(price), fee=D("1"), is_maker=True,
                       cum_qty=intent.qty)


def test_a_losing_strategy_is_stopped_and_the_others_go_on() -> None:
    state = mid(RiskState(accounts={}, mids={}), "50000.0")
    bought = order(1, "ema")
    state, outcome = decide(state, bought, LIMITED)
    assert outcome == "approved"
    state, _ = step(state, fill(bought, "50000"), LIMITED)
    assert decide(state, order(2, "ema"), LIMITED)[1] == "approved"  # -1 fee so far
    state = mid(state, "49000.0")  # 0.1 held, 100 down at mid, plus the fee: 101 lost
    assert decide(state, order(3, "ema", price="49000.0"), LIMITED)[1] == "strategy_loss"
    assert decide(state, order(4, "ema", side="Sell", reduce_only=True, price="49000.0"), LIMITED)[1] == "approved"
    assert decide(state, order(5, "maker", price="49000.0"), LIMITED)[1] == "approved"
    assert state.accounts["acc"].strategy_of == {}  # ema1 filled: no fill can follow, its owner is dropped


def test_fills_before_their_approval_give_the_same_state() -> None:
    start = mid(RiskState(accounts={}, mids={}), "50000.0")
    intent = order(1, "ema")
    decided, [emit] = step(start, intent, LIMITED)
    approval = emit.event
    assert isinstance(approval, IntentApproved)
    live = step(step(decided, approval, LIMITED)[0], fill(intent, "50100"), LIMITED)[0]
    replayed = step(step(decided, fill(intent, "50100"), LIMITED)[0], approval, LIMITED)[0]
    assert msgspec.msgpack.encode(live) == msgspec.msgpack.encode(replayed)
    assert live.accounts["acc"].strategy_flows["ema"].pnl({"BTCUSDT": D("50000.0")}) == D("-11.0")


def test_the_limit_comes_from_the_environment() -> None:
    config = load_settings(RiskConfig, "RISK", env={"RISK_MAX_STRATEGY_LOSS": "250.5"})
    assert config.params().max_strategy_loss == D("250.5")
