"""`hean compose accounts SETS`: a compose override that scales risk, accounting and execution by account.

`docker compose up --scale risk=3` cannot give each replica its own accounts: replicas share one
environment. Risk and accounting scale by account instead (HEAN_ACCOUNTS per instance; each set
is its own consumer group, transactional id and snapshot), execution runs one active executor per
account. So this writes one service per account set (risk, accounting) and per account
(execution) into an override file, and turns the single base services off (scale 0):

    hean compose accounts acc-a,acc-b,acc-c > infra/compose/accounts.yml      one set per account
    hean compose accounts acc-a+acc-b,acc-c > infra/compose/accounts.yml      acc-a and acc-b share one
    docker compose -f docker-compose.yml -f infra/compose/accounts.yml up -d

Compose's `extends` refuses services with depends_on, so each generated service is written out
whole, from the base file's x-hean block (tests/ops/test_compose.py compares the two resolved).
Each executor reads its keys from EXECUTION_API_KEY_<ACCOUNT> / EXECUTION_API_SECRET_<ACCOUNT>
(account upper-cased, '-' as '_'), defaulting to simulator keys that the simulator is given too.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from services.runtime.errors import ConfigError
from services.runtime.settings import RuntimeSettings

HEAN_ENV = {"HEAN_KAFKA_BOOTSTRAP": "redpanda:9092", "HEAN_REDIS_URL": "redis://redis:6379/0",
            "HEAN_INSTANCE": "hostname", "HEAN_LOG_LEVEL": "${HEAN_LOG_LEVEL:-INFO}"}
HEALTHCHECK = {"test": ["CMD", "python", "-c", "import urllib.request; "
                        "urllib.request.urlopen('http://127.0.0.1:9100/metrics', timeout=3)"],
               "interval": "10s", "timeout": "5s", "retries": 6, "start_period": "20s"}
DEPENDS_ON = {"redpanda": {"condition": "service_healthy"}, "redis": {"condition": "service_healthy"},
              "topics": {"condition": "service_completed_successfully"}}
EXECUTION_ENV = {"EXECUTION_REST_URL": "${EXECUTION_REST_URL:-http://exchange-sim:8802}",
                 "EXECUTION_WS_URL": "${EXECUTION_WS_URL:-ws://exchange-sim:8801/v5/private}"}
BY_ACCOUNT = ("risk", "accounting", "execution")


def parse_sets(text: str) -> list[tuple[str, ...]]:
    """"a,b+c" → [("a",), ("b", "c")]: sets split by ',', accounts in a set joined by '+'.
    Raises ConfigError for an empty set, a bad name or an account in two sets."""
    sets = [tuple(a.strip() for a in part.split("+")) for part in text.split(",")]
    seen: set[str] = set()
    for accounts in sets:
        try:
            RuntimeSettings(accounts=accounts)
        except ConfigError:
            raise ConfigError(f"account set {'+'.join(accounts)!r}: accounts are names of letters, digits, '-' "
                              "or '_', joined by '+' within a set and ',' between sets") from None
        twice = seen & set(accounts)
        if twice:
            raise ConfigError(f"account {sorted(twice)[0]!r} is in two sets: each account is served by one instance")
        seen |= set(accounts)
    return sets


def _key_name(account: str) -> str:
    return account.upper().replace("-", "_")


def _service(name: str, env: dict[str, str]) -> dict[str, Any]:
    """One instance of `name`. Its network alias is the base service's name, so Prometheus' DNS
    discovery (infra/prometheus/prometheus.yml) finds it under the same job as a replica."""
    return {"build": ".", "image": "hean:local", "restart": "unless-stopped", "command": ["run", name],
            "environment": {**HEAN_ENV, **env}, "healthcheck": HEALTHCHECK, "depends_on": DEPENDS_ON,
            "networks": {"default": {"aliases": [name]}}}


def accounts_override(sets: list[tuple[str, ...]]) -> dict[str, Any]:
    """The override's `services`: the base risk, accounting and execution off, one per set / account on."""
    services: dict[str, Any] = {name: {"scale": 0} for name in BY_ACCOUNT}
    keys = []
    for accounts in sets:
        tag = "-".join(accounts)
        for name in ("risk", "accounting"):
            services[f"{name}-{tag}"] = _service(name, {"HEAN_ACCOUNTS": ",".join(accounts)})
    for accounts in sets:
        for account in accounts:
            key, secret = f"EXECUTION_API_KEY_{_key_name(account)}", f"EXECUTION_API_SECRET_{_key_name(account)}"
            services[f"execution-{account}"] = _service("execution", {
                "EXECUTION_ACCOUNT": account, **EXECUTION_ENV,
                "EXECUTION_API_KEY": f"${{{key}:-hean-sim-key-{account}}}",
                "EXECUTION_API_SECRET": f"${{{secret}:-hean-sim-secret-{account}}}"})
            keys.append(f"${{{key}:-hean-sim-key-{account}}}:${{{secret}:-hean-sim-secret-{account}}}")
    services["exchange-sim"] = {"environment": {"EXCHANGE_SIM_API_KEYS": ",".join(keys)}}
    return {"services": services}


def to_yaml(value: Any, indent: int = 0) -> str:
    """Block YAML of dicts, lists and scalars; strings double-quoted (JSON escapes are YAML's), so no
    value is read as a number, a boolean or a YAML tag."""
    pad = "  " * indent
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            if isinstance(item, list) and all(not isinstance(i, dict | list) for i in item):
                lines.append(f"{pad}{key}: [{', '.join(_scalar(i) for i in item)}]")
            elif isinstance(item, dict | list) and item:
                lines.append(f"{pad}{key}:\n{to_yaml(item, indent + 1)}")
            else:
                lines.append(f"{pad}{key}: {_scalar(item)}")
        return "\n".join(lines)
    if isinstance(value, list):
        if all(not isinstance(i, dict | list) for i in value):
            return f"{pad}[{', '.join(_scalar(i) for i in value)}]"
        return "\n".join(f"{pad}- {to_yaml(i, indent + 1).lstrip()}" for i in value)
    return pad + _scalar(value)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict | list):
        return "{}" if isinstance(value, dict) else "[]"
    return json.dumps(str(value))


def render(sets: list[tuple[str, ...]], argv: str) -> str:
    accounts = [a for s in sets for a in s]
    header = [
        f"# Generated by `hean compose accounts {argv}`; edit the command, not this file.",
        "# docker compose -f docker-compose.yml -f infra/compose/accounts.yml up -d",
        "# Risk and accounting: one instance per account set (HEAN_ACCOUNTS); execution: one per account",
        "# (add standbys with another copy of its service). The base risk, accounting and execution are off.",
        f"# Orders must name one of {', '.join(accounts)} (STRATEGY_ACCOUNT, hean order --account);",
        "# an account no instance serves is traded by none. Keys: EXECUTION_API_KEY_<ACCOUNT>, _SECRET_.",
    ]
    return "\n".join(header) + "\n" + to_yaml(accounts_override(sets)) + "\n"


def add_parser(sub: Any) -> None:
    compose = sub.add_parser("compose", help="write a docker compose override: risk, accounting and execution "
                                             "scaled by account")
    what = compose.add_subparsers(dest="compose_command", required=True)
    accounts = what.add_parser("accounts", help="one risk and accounting per account set, one execution per "
                                                "account (print to infra/compose/accounts.yml)")
    accounts.add_argument("sets", help="account sets: ',' between sets, '+' within one (acc-a+acc-b,acc-c)")
    accounts.add_argument("--out", type=Path, help="write the override here instead of printing it")


def main(args: argparse.Namespace) -> int:
    try:
        sets = parse_sets(args.sets)
    except ConfigError as exc:
        print(f"hean compose accounts: {exc}", file=sys.stderr)
        return 2
    text = render(sets, args.sets)
    if args.out:
        args.out.write_text(text)
    else:
        sys.stdout.write(text)
    return 0
