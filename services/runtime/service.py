"""What a service hands the runtime: its name, inputs, state type and pure `step`.

A service = a pure core + this definition; `run.py` is the one loop that drives every core.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

import msgspec

from schemas.events import Event
from services.runtime.codec import encode_sorted

__all__ = ["Emit", "Reading", "ServiceDef", "StartFrom", "join_disjoint", "state_hash"]

S = TypeVar("S")
K = TypeVar("K")
V = TypeVar("V")


def join_disjoint(parts: Iterable[Mapping[K, V]], what: str) -> dict[K, V]:
    """One map from maps that must share no key (the accounts of instances serving disjoint
    accounts); a key in two parts is refused, not guessed."""
    joined: dict[K, V] = {}
    for part in parts:
        if shared := joined.keys() & part.keys():
            raise ValueError(f"{what} {sorted(map(str, shared))} are held by two instances")
        joined.update(part)
    return joined


@dataclass(frozen=True, slots=True)
class Emit:
    """One output of a step: an event for `topic`, partitioned by `key`."""

    topic: str
    key: str
    event: Event


@dataclass(frozen=True, slots=True)
class Reading:
    """One gauge sample read off a state at scrape time (positions, PnL): for dashboards only.

    The state stays exact (Decimal); the float here is what Prometheus can hold.
    """

    name: str
    help: str
    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True)
class ServiceDef(Generic[S]):
    """A service as the runtime sees it.

    `step(state, event) -> (state, emits)` must be pure and deterministic: no I/O, no clock, no
    randomness, and the input state is never mutated (a new state is returned), so a failed step
    leaves the old state intact and a replay gives the same result twice.
    `partitioned`: one state per input partition index (inputs must be co-partitioned); else one
    state for all inputs, and the service runs as a single active instance.
    """

    name: str
    inputs: tuple[str, ...]
    accepts: Any
    state_type: type[S]
    initial_state: Callable[[], S]
    step: Callable[[S, Any], tuple[S, Sequence[Emit]]]
    partitioned: bool = True
    summarize: Callable[[S], Mapping[str, Any]] = field(default=lambda state: {})
    gauges: Callable[[S], Sequence[Reading]] = field(default=lambda state: ())
    # A label for each committed output, counted as hean_outputs_total{service, kind}: how risk
    # shows rejections by rule and strategy its intents by strategy, without metrics in the core.
    classify: Callable[[Event], str] | None = None
    # `step` without its outputs, where building them is costly: replays and recovery, whose
    # outputs are suppressed, use it. Must give exactly step's state (a test checks accounting's).
    fold: Callable[[S, Any], S] | None = None
    # True when the state does not depend on how the input partitions interleave, only on each
    # partition's own order (accounting: fills per symbol, marks per symbol, folded into separate
    # keys). The runtime then applies records as fetched, without the merge (runtime/merge.py)
    # and its buffering. A test must show it: every interleaving lands on one state.
    order_free: bool = False
    # For an order-free service that is not partitioned: the whole state from the states of
    # disjoint groups of input partitions (folded side by side by `hean replay`); raises
    # ValueError when the parts overlap, i.e. a key was fed by two partition groups.
    combine: Callable[[Sequence[S]], S] | None = None
    # For a service whose state is per account: the account an event belongs to (None: everyone's,
    # e.g. market data). With HEAN_ACCOUNTS set, an instance applies only its accounts' events
    # and the market's, and `merge_accounts` joins the states of instances serving disjoint
    # accounts into the state one instance serving all of them would hold.
    account_of: Callable[[Any], str | None] | None = None
    merge_accounts: Callable[[Sequence[S]], S] | None = None
    # How a batch with outputs commits unless HEAN_COMMIT_MODE says otherwise (docs/COMMITS.md):
    # "idempotent" only for a service whose every output consumer drops ids it already applied
    # (strategy, risk and algos choose it by default; the others keep the transaction).
    commit_mode: Literal["transaction", "idempotent"] = "transaction"

    def scope_name(self, accounts: Sequence[str]) -> str:
        """The name an instance serving `accounts` goes by (its group, transactional id and
        snapshots): "risk" for every account, "risk@acc-a+acc-b" for some."""
        if not accounts or self.account_of is None:
            return self.name
        return f"{self.name}@{'+'.join(sorted(accounts))}"

    def state_after(self, state: S, event: Any) -> S:
        """The state after `event`, outputs not built: `fold` where the service has one, else step's state."""
        return self.fold(state, event) if self.fold is not None else self.step(state, event)[0]

    def encode_state(self, state: S) -> bytes:
        return msgspec.msgpack.encode(state)

    def decode_state(self, raw: bytes) -> S:
        return msgspec.msgpack.decode(raw, type=self.state_type)


@dataclass(frozen=True, slots=True)
class StartFrom:
    """Where a service starts reading: its snapshot (default) or an explicit rebuild point.

    `offset` and `time` apply to every input partition (time in ms since the epoch); a rebuild
    ignores snapshots and re-folds state, with outputs suppressed below the committed offsets.
    """

    mode: Literal["snapshot", "beginning", "offset", "time"] = "snapshot"
    value: int | None = None

    def __post_init__(self) -> None:
        if self.mode in ("offset", "time") and (self.value is None or self.value < 0):
            raise ValueError(f"StartFrom({self.mode!r}) needs a non-negative value, got {self.value!r}")


def state_hash(states: Mapping[int, Any]) -> str:
    """A hash of all shards' states that is equal iff the states are equal (canonical msgpack)."""
    digest = hashlib.sha256()
    for shard in sorted(states):
        digest.update(shard.to_bytes(4, "big"))
        digest.update(encode_sorted(states[shard]))
    return digest.hexdigest()
