"""The backtester: strategy → risk → fill model → accounting in one process, on the live cores.

`sources.py` reads recorded market data (the chDB store, a ClickHouse server, or a topic range of
the log) back into events; `loop.py` runs the cores over an in-process log in the order live
services would meet the events; `venue.py` is the fill model (services/matching rules on the
recorded book); `metrics.py` and `report.py` sum a run up; `runs.py` stores it; `cli.py` is
`hean backtest`.
"""
