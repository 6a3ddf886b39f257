"""One crash-free lockstep run of the whole loop, shared by every test that compares a run under
faults with it (SIGKILLs, broker and Redis faults, venue faults): the same seed and steps give the
same record on any broker, so it is made once per test session."""

from __future__ import annotations

import uuid

import pytest

from services.supervisor.chaos import RunRecord, lockstep_run

STEPS, SEED = 25, 7


@pytest.fixture(scope="session")
async def clean_run(bootstrap: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> RunRecord:
    prefix = f"t{uuid.uuid4().hex[:10]}clean."
    from tests.conftest import _PREFIXES  # its topics are deleted with the session's others

    _PREFIXES.add(prefix)
    record = await lockstep_run(tmp_path_factory.mktemp("clean-run"), prefix, STEPS, seed=SEED,
                                bootstrap=bootstrap, redis_url=redis_url)
    counts = record.counts()
    assert counts["orders"] >= 10 and counts["fills"] >= 5, f"the run must trade to prove anything: {counts}"
    return record
