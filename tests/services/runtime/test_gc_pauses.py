"""Garbage-collection pauses are timed per generation while watched, and not after."""

from __future__ import annotations

import gc

from services.runtime.metrics import ServiceMetrics


def test_collections_are_timed_per_generation_until_unwatched() -> None:
    metrics = ServiceMetrics("gc-test")

    def count(generation: int) -> float:
        labels = {"service": "gc-test", "generation": str(generation)}
        return metrics.registry.get_sample_value("hean_gc_pause_seconds_count", labels) or 0.0

    unwatch = metrics.watch_gc()
    gc.collect(0)
    gc.collect()
    assert count(0) >= 1 and count(2) >= 1
    assert (metrics.registry.get_sample_value("hean_gc_pause_seconds_sum",
                                              {"service": "gc-test", "generation": "2"}) or 0.0) > 0
    unwatch()
    before = count(2)
    gc.collect()
    assert count(2) == before, "no longer watched"
