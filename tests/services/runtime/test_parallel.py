"""How `hean replay` deals partitions to workers, which services it may split, and its GC setting
(no broker)."""

from __future__ import annotations

import gc

from services.accounting.shell import definition as accounting
from services.registry import definition
from services.runtime.parallel import can_split, deal
from services.runtime.run import _fewer_gc_passes


def test_partitions_are_dealt_by_record_count_heaviest_first() -> None:
    groups = deal({0: 0, 1: 500, 2: 100, 3: 400, 4: 0, 5: 300}, workers=2)
    assert groups == [{1, 2, 0, 4}, {3, 5}]  # 600 / 700 records; the empty ones go along with the first


def test_never_more_workers_than_busy_partitions() -> None:
    assert deal({0: 10, 1: 0, 2: 0}, workers=3) == [{0, 1, 2}]
    assert deal({0: 0, 1: 0}, workers=3) == [{0, 1}]


def test_only_shards_that_cannot_meet_are_split() -> None:
    assert can_split(accounting())  # order-free, and its parts combine
    assert can_split(definition("strategy"))  # one state per partition
    assert not can_split(definition("risk"))  # one state whose decisions depend on the interleaving


def test_nested_replays_restore_the_gc_thresholds_once_the_last_ends() -> None:
    before = gc.get_threshold()
    _fewer_gc_passes(True)
    _fewer_gc_passes(True)  # a second replay in the same process
    _fewer_gc_passes(False)
    assert gc.get_threshold()[0] == 70_000, "the other replay is still running"
    _fewer_gc_passes(False)
    assert gc.get_threshold() == before
