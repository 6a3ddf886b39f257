"""The runtime every HEAN service shares: codec, bus, snapshots, metrics, logs, settings, loop."""

from services.runtime.codec import (
    decode,
    decode_as,
    encode,
    encode_sorted,
    non_finite,
    typed_batch_decoder,
    typed_decoder,
)
from services.runtime.errors import (
    ConfigError,
    DecodeError,
    HeanError,
    InvariantViolation,
    NotAccepted,
    TransientError,
    UnsupportedVersion,
)
from services.runtime.run import ReplayResult, ServiceRunner, replay, run_until_signal
from services.runtime.service import Emit, Reading, ServiceDef, StartFrom, join_disjoint, state_hash
from services.runtime.settings import RuntimeSettings, Secret, load_settings

__all__ = [
    "ConfigError",
    "DecodeError",
    "Emit",
    "HeanError",
    "InvariantViolation",
    "NotAccepted",
    "Reading",
    "ReplayResult",
    "RuntimeSettings",
    "Secret",
    "ServiceDef",
    "ServiceRunner",
    "StartFrom",
    "TransientError",
    "UnsupportedVersion",
    "decode",
    "decode_as",
    "encode",
    "encode_sorted",
    "join_disjoint",
    "load_settings",
    "non_finite",
    "replay",
    "run_until_signal",
    "state_hash",
    "typed_batch_decoder",
    "typed_decoder",
]
