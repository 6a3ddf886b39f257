"""schemas/clickhouse/00N_*.sql is generated from schemas/events.py: a stale file fails here."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from services.recorder.tables import column_type, generated_files

DDL_DIR = Path(__file__).resolve().parents[2] / "schemas" / "clickhouse"


@pytest.mark.parametrize("name", sorted(generated_files()))
def test_committed_ddl_is_what_the_events_generate(name: str) -> None:
    """Regenerate with `python -m services.recorder.tables` after changing schemas/events.py."""
    assert (DDL_DIR / name).read_text() == generated_files()[name], (
        f"schemas/clickhouse/{name} is stale; run python -m services.recorder.tables")


def test_field_types_map_to_columns() -> None:
    assert column_type("ts_event", int, True) == "DateTime64(9, 'UTC') CODEC(DoubleDelta, ZSTD(1))"
    assert column_type("price", Decimal | None, True) == "Nullable(Decimal(38, 18)) CODEC(ZSTD(1))"
    assert column_type("qty", Decimal, False) == "Nullable(Decimal(38, 18)) CODEC(ZSTD(1))"
    assert column_type("symbol", str, False) == "LowCardinality(String)"  # strings stay '' when absent
    with pytest.raises(TypeError, match="Expected a scalar field type"):
        column_type("levels", list[int], True)
