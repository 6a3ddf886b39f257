"""HEAN's schemas: event definitions (events.py), the topic registry (topics.py) and the
ClickHouse DDL (clickhouse/*.sql). The single source of truth every service reads."""
