"""Settings: one frozen, keyword-only struct per service, loaded from prefixed env variables.

Values arrive as strings and are converted once, at startup, to the declared types (int,
Decimal, bool…); a wrong value fails by name before the service touches the log. Secrets use
`Secret`, whose repr is masked so they never reach a log line.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any, TypeVar, get_origin

import msgspec
import orjson

from services.runtime.errors import ConfigError

__all__ = ["RuntimeSettings", "Secret", "load_settings"]

T = TypeVar("T", bound=msgspec.Struct)
COMMIT_MODES = frozenset({"", "transaction", "idempotent"})


class Secret(str):
    """A string that never prints its value (API keys, passwords)."""

    def __repr__(self) -> str:
        return "Secret('********')"

    def __str__(self) -> str:
        return "********"

    def __format__(self, spec: str) -> str:  # str's own would format the value: f"{key:>20}"
        return format("********", spec)

    def reveal(self) -> str:
        """The real value, for the one place that signs with it."""
        return str.__str__(self)


class RuntimeSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What every service shell needs: where the log and Redis are, and how often to snapshot."""

    kafka_bootstrap: str = "127.0.0.1:9092"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Unique per process of one service (it names the transactional id). "hostname" takes the
    # host's name: each container replica of `docker compose --scale` has its own.
    instance: str = "0"
    metrics_port: int = 0
    snapshot_every_events: int = 20_000
    snapshot_every_seconds: float = 5.0
    batch_max_records: int = 10_000
    topic_prefix: str = ""
    session_timeout_ms: int = 10_000
    # Offsets of batches without outputs are committed plainly (no transaction) at most this
    # often; a batch with outputs commits every pending offset in its transaction. 0 = at once.
    commit_interval_ms: int = 50
    # The accounts this instance serves (HEAN_ACCOUNTS=a,b), for services whose state is per
    # account (risk, accounting): each set of accounts is its own consumer group, transactional
    # id and snapshot, so more accounts run on more instances. Empty: every account.
    accounts: tuple[str, ...] = ()
    # How a batch with outputs commits (docs/COMMITS.md): "transaction" (outputs and offsets in one
    # Kafka transaction), "idempotent" (outputs sent by an idempotent producer and acknowledged,
    # offsets committed plainly afterwards, off the hot path; consumers drop repeated ids), or ""
    # for the service's own choice (ServiceDef.commit_mode).
    commit_mode: str = ""
    # Chaos only: while the file named after the service's scope ("strategy", "risk@acc-a") exists
    # in this directory, the next batch with outputs SIGKILLs its own process once they are
    # acknowledged and before its offsets are committed (the file is removed first): the kill
    # point "output sent, offset not committed" (services/supervisor/chaos.py arms it).
    chaos_crash_dir: str = ""

    def __post_init__(self) -> None:
        if self.instance == "hostname":
            msgspec.structs.force_setattr(self, "instance", socket.gethostname())
        if self.snapshot_every_events < 1:
            raise ConfigError(f"snapshot_every_events must be >= 1, was {self.snapshot_every_events}")
        if self.commit_mode not in COMMIT_MODES:
            raise ConfigError(f"commit_mode must be one of {sorted(COMMIT_MODES)}, was {self.commit_mode!r}")
        if self.commit_interval_ms < 0:
            raise ConfigError(f"commit_interval_ms must be >= 0, was {self.commit_interval_ms}")
        if any(not a or not all(c.isalnum() or c in "-_" for c in a) for a in self.accounts):
            raise ConfigError(f"accounts must be names of letters, digits, '-' or '_', were {list(self.accounts)}")
        if not 0 <= self.metrics_port < 65536:
            raise ConfigError(f"metrics_port must be 0..65535, was {self.metrics_port}")


def _secret_hook(target: type, value: Any) -> Any:
    """Builds `Secret` fields from strings (msgspec does not convert str subclasses itself)."""
    if target is Secret and isinstance(value, str):
        return Secret(value)
    raise NotImplementedError(f"cannot convert {type(value).__name__} to {target}")


def _parse_env(text: str, annotation: Any) -> Any:
    """Lists come as "a,b,c" (or a JSON array); everything else is converted by msgspec."""
    if get_origin(annotation) in (tuple, list):
        stripped = text.strip()
        if stripped.startswith("["):
            try:
                return orjson.loads(stripped)
            except orjson.JSONDecodeError:
                return text
        return [part.strip() for part in stripped.split(",") if part.strip()]
    return text


def load_settings(cls: type[T], prefix: str, env: Mapping[str, str] | None = None, **overrides: Any) -> T:
    """Build `cls` from `{PREFIX}_{FIELD}` variables, then keyword overrides (CLI flags).

    Why convert here: a typo'd number must stop the service at start with the variable's name,
    not surface later as a type error deep in the core.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for field in msgspec.structs.fields(cls):
        name = f"{prefix}_{field.name}".upper()
        if name in env:
            values[field.name] = _parse_env(env[name], field.type)
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return msgspec.convert(values, cls, strict=False, dec_hook=_secret_hook)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"Bad {prefix} setting: {exc} (env prefix {prefix.upper()}_)") from None
    except ConfigError:
        raise
