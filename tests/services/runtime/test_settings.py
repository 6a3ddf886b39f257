"""Settings load from prefixed env variables and fail at startup, by name, on bad values."""

from __future__ import annotations

import pytest

import services.runtime as runtime
from services.runtime.errors import ConfigError
from services.runtime.settings import RuntimeSettings, Secret, load_settings


def test_env_values_are_converted_to_declared_types() -> None:
    settings = load_settings(RuntimeSettings, "HEAN", env={"HEAN_SNAPSHOT_EVERY_EVENTS": "500",
                                                           "HEAN_SNAPSHOT_EVERY_SECONDS": "0.5",
                                                           "HEAN_KAFKA_BOOTSTRAP": "k:1"})
    assert settings.snapshot_every_events == 500
    assert settings.snapshot_every_seconds == 0.5
    assert settings.kafka_bootstrap == "k:1"


def test_overrides_beat_env_and_none_is_ignored() -> None:
    settings = load_settings(RuntimeSettings, "HEAN", env={"HEAN_INSTANCE": "a"}, instance="b", metrics_port=None)
    assert settings.instance == "b"
    assert settings.metrics_port == 0


def test_a_wrong_value_names_the_setting() -> None:
    with pytest.raises(ConfigError, match="snapshot_every_events"):
        load_settings(RuntimeSettings, "HEAN", env={"HEAN_SNAPSHOT_EVERY_EVENTS": "lots"})
    with pytest.raises(ConfigError, match="metrics_port"):
        load_settings(RuntimeSettings, "HEAN", env={"HEAN_METRICS_PORT": "70000"})
    with pytest.raises(ConfigError, match="commit_interval_ms"):
        load_settings(RuntimeSettings, "HEAN", env={"HEAN_COMMIT_INTERVAL_MS": "-1"})
    with pytest.raises(ConfigError, match="commit_mode"):
        load_settings(RuntimeSettings, "HEAN", env={"HEAN_COMMIT_MODE": "optimistic"})
    assert load_settings(RuntimeSettings, "HEAN", env={"HEAN_COMMIT_MODE": "idempotent"}).commit_mode == "idempotent"


def test_secret_never_prints() -> None:
    key = Secret("abc123")
    assert "abc123" not in repr(key) and "abc123" not in str(key) and "abc123" not in f"{key}"
    assert key.reveal() == "abc123"


def test_runtime_all_is_honest() -> None:
    """Every name the runtime's modules publish is re-exported by the package, and exists."""
    from services.runtime import codec, run, service, settings

    for name in runtime.__all__:
        assert hasattr(runtime, name), name
    for module in (codec, run, service, settings):
        missing = set(module.__all__) - set(runtime.__all__)
        assert not missing, f"{module.__name__} publishes {missing} but services.runtime does not"


def test_lists_from_env() -> None:
    from services.ingest.shell import IngestConfig

    config = load_settings(IngestConfig, "INGEST", env={"INGEST_SYMBOLS": "BTCUSDT, ETHUSDT"})
    assert config.symbols == ("BTCUSDT", "ETHUSDT")
    config = load_settings(IngestConfig, "INGEST", env={"INGEST_SYMBOLS": '["SOLUSDT"]'})
    assert config.symbols == ("SOLUSDT",)
    with pytest.raises(ConfigError, match="INGEST_DEPTH"):
        load_settings(IngestConfig, "INGEST", env={"INGEST_DEPTH": "7"})


def test_secret_settings_load_masked() -> None:
    import msgspec

    class WithKey(msgspec.Struct, frozen=True, kw_only=True):
        api_secret: Secret = Secret("")

    config = load_settings(WithKey, "X", env={"X_API_SECRET": "hunter2"})
    assert isinstance(config.api_secret, Secret) and config.api_secret.reveal() == "hunter2"
    assert "hunter2" not in repr(config)
