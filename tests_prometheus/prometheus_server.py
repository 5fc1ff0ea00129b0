"""A real Prometheus server (Debian's `prometheus` package) started by a test on 127.0.0.1."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
RULES_DIR = ROOT / "collector-config" / "prometheus"
RULE_FILES = ("costspan-task-runs.rules.yml", "costspan-thresholds.rules.yml", "costspan-alerts.rules.yml")


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(
            f"{name} not found: install Debian's prometheus package (.ci/stages/60-prometheus.sh does)"
        )
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Prometheus:
    """A running server; `query` runs PromQL through its HTTP API."""

    def __init__(self, url: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.url = url
        self.process = process
        self.log = log

    def api(self, path: str, **params: Any) -> Any:
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str, at: float) -> list[dict[str, Any]]:
        data = self.api("query", query=expr, time=f"{at:.3f}")
        assert data["resultType"] == "vector", (expr, data)
        return list(data["result"])

    def scrape_times(self, job: str) -> list[float]:
        data = self.api("query", query=f'up{{job="{job}"}}[5m]')
        return [float(t) for result in data["result"] for t, _v in result["values"]]

    def wait_for_scrape_after(self, job: str, moment: float, timeout_s: float = 60.0) -> float:
        """The timestamp of the first scrape of `job` that started after `moment` (wall clock)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            later = [t for t in self.scrape_times(job) if t > moment]
            if later:
                return min(later)
            time.sleep(0.2)
        raise AssertionError(f"no scrape of {job} after {moment}; log:\n{self.log.read_text()[-3000:]}")


def start_prometheus(tmp: Path, scrape_targets: dict[str, str], rule_files: list[Path]) -> Prometheus:
    port = free_port()
    config = tmp / "prometheus.yml"
    lines = [
        "global:",
        "  scrape_interval: 1s",
        "  evaluation_interval: 1s",
        "rule_files:",
        *(f"  - {path}" for path in rule_files),
        "scrape_configs:",
    ]
    for job, target in scrape_targets.items():
        lines += [f"  - job_name: {job}", "    static_configs:", f"      - targets: ['{target}']"]
    config.write_text("\n".join(lines) + "\n")
    log = tmp / "prometheus.log"
    process = subprocess.Popen(
        [
            tool("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    server = Prometheus(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"prometheus exited: {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{server.url}/-/ready", timeout=2) as response:
                if response.status == 200:
                    return server
        except OSError:
            pass
        time.sleep(0.2)
    process.kill()
    raise AssertionError(f"prometheus not ready: {log.read_text()[-3000:]}")
