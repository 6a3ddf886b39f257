"""Venue adapters: one folder per venue; each holds all code that knows that venue's protocol."""
