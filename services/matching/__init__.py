"""Matching rules shared by the exchange simulator and the backtester's fill model. Pure.

One home for how an order meets a book, so the simulator's venue and the backtest cannot drift
apart: `book.py` (a taker walking the opposite side, crossing tests, liquidity at or better than a
limit) and `queue.py` (a resting order's place in its price level and when the market reaches it).
Generic over the number type: the simulator counts integer ticks and lot steps, the backtester
Decimal prices and sizes; both only add, subtract, compare and take minima.
"""
