"""Execution algorithms: parent orders (TWAP, VWAP, iceberg) worked as ordinary child orders."""
