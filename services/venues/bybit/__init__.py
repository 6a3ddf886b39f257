"""Bybit V5: endpoints and credential rules (more of the adapter moves here, DESIGN.md §9)."""
