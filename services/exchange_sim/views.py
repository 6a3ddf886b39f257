"""The matching engine's state as Bybit V5 JSON: order, position and wallet rows.

Every field Bybit's docs list for the row is present (docs/v5/order/open-order, order-list,
position/position, account/wallet-balance), with the values a one-way, cross-margin USDT account
without TP/SL or conditional orders has, so a stock client that reads e.g. `tpslMode`,
`positionStatus` or `totalEquity` finds them. The simulator's own facts (status, quantities,
money) come from the engine; the rest are Bybit's neutral values ("UNKNOWN", "", "0", "None").
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from services.exchange_sim.matching import Account, MatchingEngine, SimOrder


def text(value: Decimal) -> str:
    """A Decimal as the venue prints it: plain notation, no exponent, trailing zeros trimmed."""
    formatted = format(value, "f")
    return formatted.rstrip("0").rstrip(".") if "." in formatted else formatted


def order_view(engine: MatchingEngine, order: SimOrder) -> dict[str, Any]:
    """One order as /v5/order/realtime, /v5/order/history and the `order` stream give it."""
    inst = engine.markets[order.symbol].instrument
    avg = order.cum_value / (inst.qty_step * order.cum_qty) if order.cum_qty else Decimal(0)
    price = inst.tick_size * order.price if order.price is not None else Decimal(0)
    leaves = inst.qty_step * order.leaves
    fee = text(order.cum_fee)
    return {"category": "linear", "symbol": order.symbol, "orderId": order.order_id,
            "orderLinkId": order.order_link_id, "blockTradeId": "", "side": order.side,
            "orderType": order.order_type, "price": inst.price_text(order.price) if order.price is not None else "0",
            "qty": inst.qty_text(order.qty), "isLeverage": "", "positionIdx": 0, "orderStatus": order.status,
            "createType": "CreateByUser", "cancelType": order.cancel_type, "rejectReason": order.reject_reason,
            "avgPrice": text(avg), "leavesQty": inst.qty_text(order.leaves), "leavesValue": text(price * leaves),
            "cumExecQty": inst.qty_text(order.cum_qty), "cumExecValue": text(order.cum_value),
            "cumExecFee": fee, "cumFeeDetail": {"USDT": fee} if order.cum_qty else {},
            "timeInForce": order.time_in_force, "stopOrderType": "UNKNOWN", "orderIv": "", "triggerPrice": "0.00",
            "takeProfit": "0.00", "stopLoss": "0.00", "tpTriggerBy": "UNKNOWN", "slTriggerBy": "UNKNOWN",
            "triggerDirection": 0, "triggerBy": "UNKNOWN", "lastPriceOnCreated": order.last_price_on_created,
            "reduceOnly": order.reduce_only, "closeOnTrigger": False, "smpType": "None", "smpGroup": 0,
            "smpOrderId": "", "tpslMode": "", "tpLimitPrice": "", "slLimitPrice": "", "placeType": "",
            "slippageToleranceType": "UNKNOWN", "slippageTolerance": "", "marketUnit": "", "closedPnl": "0",
            "feeCurrency": "", "extraFees": "", "rpiTakerAccess": False, "rpiMatchedQty": "0",
            "createdTime": str(order.created_ms), "updatedTime": str(order.updated_ms)}


def position_view(engine: MatchingEngine, account: Account, symbol: str) -> dict[str, Any]:
    """One symbol's one-way position as /v5/position/list and the `position` stream give it
    (`side` "" and size "0" when flat, as Bybit lists a symbol asked for by name)."""
    from services.exchange_sim.matching import Position

    market = engine.markets[symbol]
    inst = market.instrument
    position = account.positions.get(symbol, Position())
    mark = inst.tick_size * market.mark_ticks()
    size = inst.qty_step * abs(position.size)
    avg = position.entry_value / size if size else Decimal(0)
    unrealized = (mark * size - position.entry_value) * (1 if position.size > 0 else -1) if size else Decimal(0)
    leverage = account.leverage.get(symbol, Decimal(10))
    margin = position.entry_value / leverage
    return {"category": "linear", "symbol": symbol, "positionIdx": 0, "riskId": 1, "riskLimitValue": "2000000",
            "side": "" if position.size == 0 else ("Buy" if position.size > 0 else "Sell"),
            "size": inst.qty_text(abs(position.size)), "avgPrice": text(avg), "entryPrice": text(avg),
            "positionValue": text(position.entry_value), "tradeMode": 0, "positionStatus": "Normal",
            "autoAddMargin": 0, "adlRankIndicator": 2 if size else 0, "leverage": text(leverage),
            "breakEvenPrice": text(avg), "positionBalance": text(margin),
            "markPrice": inst.price_text(int(mark / inst.tick_size)), "liqPrice": "", "bustPrice": "",
            "positionMM": "0", "positionMMByMp": "0", "positionIM": text(margin), "positionIMByMp": text(margin),
            "tpslMode": "Full", "takeProfit": "0.00", "stopLoss": "0.00", "trailingStop": "0.00",
            "unrealisedPnl": text(unrealized), "curRealisedPnl": text(position.realized),
            "cumRealisedPnl": text(position.realized), "sessionAvgPrice": "", "seq": position.seq,
            "isReduceOnly": False, "mmrSysUpdatedTime": "", "leverageSysUpdatedTime": "",
            "createdTime": str(position.created_ms), "updatedTime": str(position.updated_ms)}


def wallet_view(engine: MatchingEngine, account: Account) -> dict[str, Any]:
    """The unified account as /v5/account/wallet-balance and the `wallet` stream give it: one
    coin (USDT), the balance the engine keeps, equity including unrealised PnL."""
    unrealized = Decimal(0)
    for symbol in account.positions:
        unrealized += Decimal(position_view(engine, account, symbol)["unrealisedPnl"])
    balance, equity = account.balance, account.balance + unrealized
    realized = sum((p.realized for p in account.positions.values()), Decimal(0))
    coin = {"coin": "USDT", "equity": text(equity), "usdValue": text(equity), "walletBalance": text(balance),
            "availableToWithdraw": text(balance), "availableToBorrow": "", "borrowAmount": "0",
            "accruedInterest": "0", "totalOrderIM": "0", "totalPositionIM": "0", "totalPositionMM": "0",
            "unrealisedPnl": text(unrealized), "cumRealisedPnl": text(realized), "bonus": "0",
            "collateralSwitch": True, "marginCollateral": True, "locked": "0", "spotHedgingQty": "0",
            "spotBorrow": "0", "totalFee": text(account.fees_paid)}
    return {"accountType": "UNIFIED", "accountIMRate": "0", "accountIMRateByMp": "0", "accountMMRate": "0",
            "accountMMRateByMp": "0", "accountLTV": "0", "totalEquity": text(equity),
            "totalWalletBalance": text(balance), "totalMarginBalance": text(equity),
            "totalAvailableBalance": text(balance), "totalPerpUPL": text(unrealized), "totalInitialMargin": "0",
            "totalInitialMarginByMp": "0", "totalMaintenanceMargin": "0", "totalMaintenanceMarginByMp": "0",
            "coin": [coin]}
