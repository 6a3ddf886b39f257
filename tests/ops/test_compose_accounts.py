"""`hean compose accounts`: the override it writes is valid compose, serves every account once, and its
services are the base file's services plus their accounts (checked resolved, without a Docker engine)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.cli.main import main
from services.exchange_sim.server import SimConfig

ROOT = Path(__file__).resolve().parents[2]
SETS = "acc-a,acc-b+acc-c,acc_d"
ACCOUNTS = ("acc-a", "acc-b", "acc-c", "acc_d")
PER_ACCOUNT_ENV = {"EXECUTION_ACCOUNT", "EXECUTION_API_KEY", "EXECUTION_API_SECRET"}


def generate(capsys: pytest.CaptureFixture[str], sets: str) -> tuple[int, str, str]:
    code = main(["compose", "accounts", sets])
    out = capsys.readouterr()
    return code, out.out, out.err


def resolved(*files: Path) -> dict[str, Any]:
    tool = shutil.which("docker-compose")
    if tool is None:
        pytest.fail("docker-compose is not installed; `make install` installs Debian's docker-compose package")
    args = [a for f in (ROOT / "docker-compose.yml", *files) for a in ("-f", str(f))]
    done = subprocess.run([tool, *args, "config"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)["services"]


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    """The base file resolved, and the base file with the override of SETS resolved."""
    override = tmp_path_factory.mktemp("compose") / "accounts.yml"
    assert main(["compose", "accounts", SETS, "--out", str(override)]) == 0
    return resolved(), resolved(override)


def test_every_account_is_served_once_by_each_service(stacks: tuple[dict[str, Any], dict[str, Any]]) -> None:
    _base, services = stacks
    for name in ("risk", "accounting", "execution"):
        assert services[name]["scale"] == 0, f"the base {name} (every account) is off"
    for name in ("risk", "accounting"):
        sets = [s["environment"]["HEAN_ACCOUNTS"].split(",") for key, s in services.items()
                if key.startswith(f"{name}-")]
        assert sorted(a for s in sets for a in s) == sorted(ACCOUNTS), f"{name}: each account in one set"
        assert sorted(map(tuple, sets)) == [("acc-a",), ("acc-b", "acc-c"), ("acc_d",)]
    executors = {k: s for k, s in services.items() if k.startswith("execution-")}
    assert sorted(s["environment"]["EXECUTION_ACCOUNT"] for s in executors.values()) == sorted(ACCOUNTS)
    venue_keys = SimConfig(api_keys=tuple(services["exchange-sim"]["environment"]["EXCHANGE_SIM_API_KEYS"]
                                          .split(","))).secrets()
    for executor in executors.values():
        env = executor["environment"]
        assert venue_keys[env["EXECUTION_API_KEY"]] == env["EXECUTION_API_SECRET"], "the simulator knows its key"
    assert len(venue_keys) == len(ACCOUNTS), "one venue account per HEAN account"


def test_generated_services_are_the_base_services_plus_their_accounts(
        stacks: tuple[dict[str, Any], dict[str, Any]]) -> None:
    base, services = stacks
    for key, service in services.items():
        name = key.split("-", 1)[0]
        if name not in ("risk", "accounting", "execution") or key == name:
            continue
        expected = {k: v for k, v in base[name].items() if k != "environment"}
        assert {k: v for k, v in service.items() if k not in ("environment", "networks")} == expected, key
        env, base_env = service["environment"], base[name]["environment"]
        extra = {"HEAN_ACCOUNTS"} if name != "execution" else PER_ACCOUNT_ENV
        assert {k: v for k, v in env.items() if k not in extra} == \
            {k: v for k, v in base_env.items() if k not in extra}, f"{key}: only its accounts differ"
        assert service["networks"]["default"]["aliases"] == [name], f"{key}: Prometheus finds it as {name}"
        assert "container_name" not in service and not service.get("ports"), key


@pytest.mark.parametrize(("sets", "said"), [("acc-a,acc-a", "two sets"), ("acc-a,,acc-b", "letters, digits"),
                                            ("acc-a+acc b", "letters, digits")])
def test_bad_account_sets_are_refused(capsys: pytest.CaptureFixture[str], sets: str, said: str) -> None:
    code, out, err = generate(capsys, sets)
    assert code == 2 and not out and said in err
