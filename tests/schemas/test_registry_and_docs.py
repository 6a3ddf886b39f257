"""The topic registry and the generated event docs."""

from __future__ import annotations

import orjson
import pytest

from schemas.events import EVENT_TYPES, event_tag
from schemas.topics import BY_NAME, TOPICS, spec
from services.cli.schemas_export import json_schema, markdown


def test_every_design_topic_is_registered() -> None:
    design = {"md.trades", "md.book", "md.tickers", "orders.intents", "orders.decisions", "orders.events",
              "accounting.positions", "control", "dlq"}
    assert design <= set(BY_NAME)


def test_symbol_keyed_topics_are_co_partitioned() -> None:
    """Per-partition state needs partition p of every symbol topic to hold the same symbols."""
    counts = {t.partitions for t in TOPICS if t.key == "symbol"}
    assert len(counts) == 1


def test_unknown_topic_fails_loudly() -> None:
    with pytest.raises(KeyError, match="Unknown topic"):
        spec("md.trade")


def test_tags_are_unique() -> None:
    tags = [event_tag(t) for t in EVENT_TYPES]
    assert len(tags) == len(set(tags))


def test_markdown_export_lists_every_event_and_field() -> None:
    text = markdown()
    for event_type in EVENT_TYPES:
        assert f"`{event_tag(event_type)}`" in text
    assert "| price | Decimal |" in text
    assert "| side | Literal['Buy', 'Sell'] |" in text


def test_json_schema_export_covers_every_event() -> None:
    schema = orjson.loads(json_schema())
    assert {ref["$ref"].split("/")[-1] for ref in schema["anyOf"]} == {t.__name__ for t in EVENT_TYPES}
    trade = schema["$defs"]["TradeReceived"]
    assert trade["properties"]["type"]["enum"] == ["md.trade"]
    assert "price" in trade["required"]


def test_committed_event_docs_are_current() -> None:
    """docs/EVENTS.md is generated; regenerate with `make schemas` when schemas/events.py changes."""
    from pathlib import Path

    committed = (Path(__file__).resolve().parents[2] / "docs" / "EVENTS.md").read_text()
    assert committed == markdown() + "\n"
