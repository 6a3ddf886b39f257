"""ingest: Bybit V5 public WebSocket → normalized md.trades / md.book / md.tickers events."""
