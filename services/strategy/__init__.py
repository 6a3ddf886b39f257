"""strategy: market data and own order events → order intents, per symbol, deterministic."""
