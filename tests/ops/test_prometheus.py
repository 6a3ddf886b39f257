"""The shipped Prometheus configs are valid (promtool), and a real Prometheus server (Debian's
package) scraping the local stack finds every metric the dashboards and alerts read."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from services.supervisor.stack import StackConfig, free_port, run_stack
from tests.ops.catalog import alert_queries, dashboard_queries, metric_names_in

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "infra/prometheus"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; `make install` installs Debian's prometheus package")
    return path


@pytest.mark.parametrize("config", ["prometheus.yml", "local.yml"])
def test_promtool_accepts_the_shipped_config(config: str) -> None:
    done = subprocess.run([_tool("promtool"), "check", "config", str(PROMETHEUS / config)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout and "7 rules found" in done.stdout


def test_promtool_refuses_a_broken_rule(tmp_path: Path) -> None:
    """The check above can fail: a rule with bad PromQL is refused."""
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    rules["groups"][0]["rules"][0]["expr"] = "sum by (service (hean_up"
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(rules))
    done = subprocess.run([_tool("promtool"), "check", "rules", str(tmp_path / "alerts.yml")], capture_output=True)
    assert done.returncode != 0


async def test_real_prometheus_scrapes_every_service_of_the_local_stack(bootstrap: str, redis_url: str,
                                                                       prefix: str, tmp_path: Path) -> None:
    # The shipped local config, pointed at this run's targets file and scraping every second.
    config = yaml.safe_load((PROMETHEUS / "local.yml").read_text())
    config["global"]["scrape_interval"] = "1s"
    config["rule_files"] = [str(PROMETHEUS / "alerts.yml")]
    config["scrape_configs"][0]["file_sd_configs"][0]["files"] = [str(tmp_path / "prometheus-targets.json")]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    server = subprocess.Popen([_tool("prometheus"), f"--config.file={tmp_path / 'prometheus.yml'}",
                               f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
                              stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("wb"))
    wanted = {n for _, _, expr in dashboard_queries() for n in metric_names_in(expr)}
    wanted |= {n for _, expr in alert_queries() for n in metric_names_in(expr)}
    stop = asyncio.Event()
    stack_config = StackConfig(home=tmp_path, bootstrap=bootstrap, redis_url=redis_url, prefix=prefix,
                               symbols=("BTCUSDT", "ETHUSDT"), market_rate=40,
                               recorder_store=f"chdb://{tmp_path / 'chdb'}")
    run = asyncio.create_task(run_stack(stack_config, 120.0, lambda stack: None, stop=stop))
    api = f"http://127.0.0.1:{port}/api/v1"
    missing: set[str] = wanted
    targets: list[dict] = []
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            deadline = time.monotonic() + 100
            while time.monotonic() < deadline and not run.done():
                await asyncio.sleep(2)
                try:
                    names = (await client.get(f"{api}/label/__name__/values")).json()["data"]
                    targets = (await client.get(f"{api}/targets")).json()["data"]["activeTargets"]
                except (httpx.HTTPError, KeyError, ValueError):
                    continue  # Prometheus is still starting
                missing = wanted - set(names)
                if not missing and len(targets) == 7 and all(t["health"] == "up" for t in targets):
                    break
            jobs = {t["labels"]["job"] for t in targets if t["health"] == "up"}
            halted = (await client.get(f"{api}/query", params={"query": "hean_trading_halted"})).json()["data"]
    finally:
        stop.set()
        await run
        server.terminate()
        server.wait(timeout=20)
    assert jobs == {"ingest", "recorder", "strategy", "risk", "execution", "accounting", "algos"}, targets
    assert not missing, f"metrics the dashboards or alerts read that Prometheus never scraped: {sorted(missing)}"
    assert halted["result"] and all(r["value"][1] == "0" for r in halted["result"])
