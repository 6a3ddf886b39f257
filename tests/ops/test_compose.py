"""docker-compose.yml is valid and complete, checked without a Docker engine.

Validation is Debian's docker-compose (`config` parses, interpolates and checks the file against
the compose schema, no engine needed); the rest reads the file it resolves.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HEAN_SERVICES = {"exchange-sim", "ingest", "recorder", "strategy", "risk", "execution", "accounting", "algos"}
SCALABLE = {"strategy", "recorder", "execution"}  # by partition; execution's extra replicas wait on the lease


def _compose(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.fail("docker-compose is not installed; `make install` installs Debian's docker-compose package")
    return subprocess.run([tool, "-f", "docker-compose.yml", *args], cwd=cwd, capture_output=True, text=True)


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    done = _compose("config")
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_compose_file_validates() -> None:
    done = _compose("config", "--quiet")
    assert done.returncode == 0, done.stderr


def test_a_broken_compose_file_is_refused(tmp_path: Path) -> None:
    raw = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    raw["services"]["strategy"]["depends_on"] = {"redis": {"condition": "when_it_feels_like_it"}}
    (tmp_path / "docker-compose.yml").write_text(yaml.safe_dump(raw))
    assert _compose("config", "--quiet", cwd=tmp_path).returncode != 0


def test_the_whole_stack_is_there(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    assert {"redpanda", "console", "clickhouse", "redis", "prometheus", "grafana", "topics"} | HEAN_SERVICES \
        <= set(services)
    for name in HEAN_SERVICES | {"topics"}:
        assert services[name]["image"] == "hean:local" and services[name]["build"]["context"] == str(ROOT), name
    assert services["recorder"]["environment"]["RECORDER_STORE"].startswith("clickhouse://")
    assert services["topics"]["command"] == ["topics", "create"]


def test_health_checks_and_ordered_start(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    for name, service in services.items():
        if name not in ("topics", "console"):
            assert service.get("healthcheck") and not service["healthcheck"].get("disable"), name
    for name in HEAN_SERVICES - {"exchange-sim"}:
        needs = services[name]["depends_on"]
        assert needs["redpanda"]["condition"] == "service_healthy", name
        assert needs["topics"]["condition"] == "service_completed_successfully", name
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"


def test_scaled_services_have_no_fixed_names_or_host_ports(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    for name in HEAN_SERVICES:
        assert "container_name" not in services[name], name
        assert services[name]["environment"]["HEAN_INSTANCE"] == "hostname", name
    for name in SCALABLE:
        assert not services[name].get("ports"), f"{name} publishes a host port: --scale would collide"


def test_volumes_are_named_and_config_mounts_read_only(resolved: dict[str, Any]) -> None:
    for name, service in resolved["services"].items():
        for volume in service.get("volumes", []):  # source:target:mode, as docker-compose prints them
            source, _target, mode = volume.split(":")
            if source.startswith("/"):
                assert source.startswith(str(ROOT)) and mode == "ro", f"{name}: {volume}"
            else:
                assert source in resolved["volumes"], f"{name}: {volume}"


def test_prometheus_scrapes_every_service_with_metrics() -> None:
    config = yaml.safe_load((ROOT / "infra/prometheus/prometheus.yml").read_text())
    names = {n for job in config["scrape_configs"] for sd in job.get("dns_sd_configs", []) for n in sd["names"]}
    assert names == HEAN_SERVICES - {"exchange-sim"}


def test_env_example_lists_every_variable_the_compose_file_reads() -> None:
    used = set(re.findall(r"\$\{([A-Z_]+)", (ROOT / "docker-compose.yml").read_text()))
    documented = {line.split("=", 1)[0] for line in (ROOT / ".env.example").read_text().splitlines()
                  if line and not line.startswith("#")}
    assert used and used <= documented, sorted(used - documented)


def test_dockerfile_is_slim_and_runs_as_a_user() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    user = re.findall(r"^USER (\S+)$", text, re.M)
    assert user and user[-1] not in ("root", "0")
    assert 'ENTRYPOINT ["hean"]' in text
