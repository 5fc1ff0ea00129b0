"""Fixtures of the Prometheus suite (helpers in prometheus_server.py)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_server import Prometheus, start_prometheus


@pytest.fixture
def prometheus_factory(tmp_path: Path) -> Iterator[Any]:
    started: list[Prometheus] = []

    def start(scrape_targets: dict[str, str], rule_files: list[Path]) -> Prometheus:
        server = start_prometheus(tmp_path, scrape_targets, rule_files)
        started.append(server)
        return server

    yield start
    for server in started:
        server.process.terminate()
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
