"""recorder: md.* topics → ClickHouse tables (chDB in-process, or a server), exactly once."""
