"""HEAN services: one folder per service (core, shell, config) plus the shared runtime."""
