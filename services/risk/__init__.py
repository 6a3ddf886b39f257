"""risk: pre-trade checks and the kill switch; orders.intents → orders.decisions."""
