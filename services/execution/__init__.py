"""execution: approved intents → Bybit V5 REST orders; private WS → orders.events."""
