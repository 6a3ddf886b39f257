"""The `hean` command: one CLI for the whole platform."""
