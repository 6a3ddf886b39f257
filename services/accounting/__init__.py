"""accounting: fills and marks → positions, PnL, fees and equity (accounting.positions)."""
