"""`hean order` input checks and the order table's fold, without a broker."""

from __future__ import annotations

from decimal import Decimal

import pytest

from schemas.events import (
    IntentApproved,
    OrderAcknowledged,
    OrderAmended,
    OrderCancelled,
    OrderPartiallyFilled,
)
from services.cli.orders import UsageError, fold_orders, manual_cancel, manual_submit, render
from services.risk.core import OPERATOR_STRATEGY

D = Decimal


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"qty": "-1"}, "--qty must be a positive number"),
    ({"qty": "NaN"}, "--qty must be a positive number"),
    ({"side": "long"}, "--side must be Buy or Sell"),
    ({"symbol": "btc-usdt"}, "--symbol must be an uppercase venue symbol"),
    ({"price": None, "order_type": "Limit"}, "a Limit order needs --price"),
    ({"order_type": "Market"}, "a Market order takes no --price"),
    ({"time_in_force": "GTD"}, "--tif must be GTC, IOC, FOK or PostOnly"),
])
def test_bad_submit_input_is_refused_by_name(kwargs: dict, message: str) -> None:
    args = {"account": "a", "symbol": "BTCUSDT", "side": "Buy", "qty": "0.01", "price": "50000.0",
            "order_type": None, "time_in_force": "GTC", "reduce_only": False, "now_ns": 1, **kwargs}
    with pytest.raises(UsageError, match=message):
        manual_submit(**args)


def test_manual_intents_are_the_operators() -> None:
    submit = manual_submit("a", "BTCUSDT", "sell", "0.01", None, None, "GTC", True, 5)
    assert (submit.strategy, submit.side, submit.order_type, submit.time_in_force) == (OPERATOR_STRATEGY, "Sell",
                                                                                       "Market", "IOC")
    assert submit.id == manual_submit("a", "BTCUSDT", "sell", "0.01", None, None, "GTC", True, 5).id
    with pytest.raises(UsageError, match="either --intent ID or --all"):
        manual_cancel("a", "BTCUSDT", "x", True, 5)


def test_the_table_folds_decisions_then_reports() -> None:
    submit = manual_submit("a", "BTCUSDT", "Buy", "0.02", "50000.0", None, "GTC", False, 5)
    order = {"ts_ingest": 0, "account": "a", "symbol": "BTCUSDT", "intent_id": submit.id, "order_link_id": "l"}
    events = [OrderAcknowledged(id="1", ts_event=6, **order, side="Buy", order_type="Limit", qty=D("0.02")),
              OrderAmended(id="2", ts_event=7, **order, price=D("50010.0")),
              OrderPartiallyFilled(id="3", ts_event=8, **order, exec_id="x", side="Buy", fill_qty=D("0.005"),
                                   fill_price=D("50010"), fee=D(0), is_maker=True, cum_qty=D("0.005"),
                                   leaves_qty=D("0.015")),
              OrderCancelled(id="4", ts_event=9, **order, reason="CancelByUser"),
              OrderAcknowledged(id="5", ts_event=10, **order, side="Buy", order_type="Limit", qty=D("0.02"))]
    [row] = fold_orders([IntentApproved(id="d", ts_event=5, ts_ingest=5, intent=submit)], events).values()
    assert (row.state, row.price, row.filled, row.open) == ("Cancelled", D("50010.0"), D("0.005"), False)
    assert render([row]).splitlines()[1].split()[:2] == [submit.id, "a"]
