"""Span files made by real SDK calls (tests_report/scenario.py in a child process), shared per session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "COSTSPAN_"))}
    for key in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY"):
        env.pop(key, None)
    env.update(extra)
    return env


def costspan_report(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`costspan report ARGS` as a user runs it (`python -m costspan report`)."""
    done = subprocess.run(
        [sys.executable, "-m", "costspan", "report", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(),
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


@dataclass(frozen=True)
class Scenario:
    path: Path
    traces: dict[str, str]


def run_scenario(path: Path, *flags: str) -> Scenario:
    done = subprocess.run(
        [sys.executable, str(HERE / "scenario.py"), str(path), *flags],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(),
    )
    assert done.returncode == 0, done.stderr
    traces = dict(line.split()[1:] for line in done.stdout.splitlines() if line.startswith("trace "))
    return Scenario(path, traces)


@pytest.fixture(scope="session")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    return run_scenario(tmp_path_factory.mktemp("spans") / "spans.jsonl")


@pytest.fixture(scope="session")
def dearer_scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    return run_scenario(tmp_path_factory.mktemp("spans") / "spans.jsonl", "--dearer")


@pytest.fixture(scope="session")
def chdb_engine(tmp_path_factory: pytest.TempPathFactory, scenario: Scenario) -> Iterator[Any]:
    """ClickHouse's engine in process (chDB) with the Collector clickhouse exporter's `otel_traces`
    table in database `otel`, holding the scenario's spans as the exporter would write them."""
    from clickhouse_table import ChdbServer

    server = ChdbServer(tmp_path_factory.mktemp("chdb"))
    server.load("otel", scenario.path)
    yield server
    server.close()


def report_json(*args: str) -> dict[str, dict[str, object]]:
    from decimal import Decimal

    rows = json.loads(costspan_report(*args, "--format", "json").stdout, parse_float=Decimal)
    return {row["group"]: row for row in rows}
