"""Binance USDⓈ-M futures: public market data (aggregate trades, diff depth, best bid/offer)."""
