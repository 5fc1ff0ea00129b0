"""Real Phoenix and MLflow servers, each run from its own virtualenv on 127.0.0.1 on a free port.

BACKENDS_PHOENIX_PYTHON and BACKENDS_MLFLOW_PYTHON name the Python of the virtualenv where
`arize-phoenix` and `mlflow` are installed (.ci/stages/70-backends.sh builds them); a test whose
server is missing fails, naming the variable. While developing, BACKENDS_PHOENIX_URL and
BACKENDS_MLFLOW_URL point the tests at servers already running instead. Both servers start when
the session starts (each takes tens of seconds) and are stopped at its end.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

START_TIMEOUT_S = 400.0  # a loaded 2-core machine has taken 224 s to start MLflow beside Phoenix
APP_TIMEOUT_S = 300.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    name: str
    url: str
    python: str
    process: subprocess.Popen[bytes] | None
    log: Path
    health_path: str
    started_s: float | None = None

    def wait_ready(self) -> None:
        if self.process is None:
            return
        begun = time.monotonic()
        deadline = begun + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"{self.name} exited ({self.process.returncode}); log:\n{self.tail()}")
            try:
                with urllib.request.urlopen(self.url + self.health_path, timeout=5) as response:
                    if response.status == 200:
                        if self.started_s is None:
                            self.started_s = time.monotonic() - begun
                            print(f"\n{self.name} ready after {self.started_s:.1f} s more", flush=True)
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        pytest.fail(f"{self.name} not ready after {START_TIMEOUT_S} s; log:\n{self.tail()}")

    def tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def _python(variable: str, module: str) -> str:
    python = os.environ.get(variable)
    if not python or not Path(python).exists():
        pytest.fail(f"set {variable} to the python of a virtualenv with {module} installed")
    return python


def _start(
    name: str, command: list[str], env: dict[str, str], workdir: Path, url: str, health: str
) -> Server:
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    return Server(name, url, command[0], process, log, health)


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    """Both servers, started at once so their start-up times overlap."""
    phoenix_python = _python("BACKENDS_PHOENIX_PYTHON", "arize-phoenix")
    mlflow_python = _python("BACKENDS_MLFLOW_PYTHON", "mlflow")
    root = tmp_path_factory.mktemp("backends")
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "COSTSPAN_", "PHOENIX_"))}
    phoenix_port, phoenix_grpc = free_port(), free_port()
    phoenix_env = {
        **base_env,
        "PHOENIX_WORKING_DIR": str(root / "phoenix"),
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(phoenix_port),
        "PHOENIX_GRPC_PORT": str(phoenix_grpc),
        "PHOENIX_TELEMETRY_ENABLED": "false",
    }
    phoenix_url = f"http://127.0.0.1:{phoenix_port}"
    mlflow_port = free_port()
    mlflow_url = f"http://127.0.0.1:{mlflow_port}"
    started: dict[str, Server] = {}
    if not os.environ.get("BACKENDS_PHOENIX_URL"):
        started["phoenix"] = _start(
            "phoenix",
            [phoenix_python, "-m", "phoenix.server.main", "serve"],
            phoenix_env,
            root / "phoenix",
            phoenix_url,
            "/healthz",
        )
    if not os.environ.get("BACKENDS_MLFLOW_URL"):
        store = ["--backend-store-uri", f"sqlite:///{root / 'mlflow' / 'mlflow.db'}", "--workers", "1"]
        started["mlflow"] = _start(
            "mlflow",
            [
                mlflow_python,
                "-m",
                "mlflow",
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(mlflow_port),
                *store,
            ],
            base_env,
            root / "mlflow",
            mlflow_url,
            "/health",
        )
    for name, python in (("phoenix", phoenix_python), ("mlflow", mlflow_python)):
        if running := os.environ.get(f"BACKENDS_{name.upper()}_URL"):
            started[name] = Server(name, running.rstrip("/"), python, None, root / "none", "")
    try:
        yield started
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture(scope="session")
def phoenix(servers: dict[str, Server]) -> Server:
    servers["phoenix"].wait_ready()
    return servers["phoenix"]


@pytest.fixture(scope="session")
def mlflow_server(servers: dict[str, Server]) -> Server:
    servers["mlflow"].wait_ready()
    return servers["mlflow"]


@pytest.fixture
def prices_file(tmp_path: Path) -> Path:
    from scenario import PRICES_YAML

    path = tmp_path / "prices.yaml"
    path.write_text(PRICES_YAML)
    return path


def run_app(targets: list[str], prices: Path, cost_attributes: str | None, project: str) -> dict:
    """Run priced_app.py; its JSON line (trace id and costspan's costs)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "COSTSPAN_"))}
    env["COSTSPAN_PRICES"] = str(prices)
    if cost_attributes is not None:
        env["COSTSPAN_COST_ATTRIBUTES"] = cost_attributes
    env["OTEL_SERVICE_NAME"] = "backends-test"
    env["OTEL_RESOURCE_ATTRIBUTES"] = f"openinference.project.name={project}"
    env["OTEL_METRICS_EXPORTER"] = "none"
    env["PYTHONPATH"] = str(HERE)
    done = subprocess.run(
        [sys.executable, str(HERE / "priced_app.py"), *targets],
        env=env,
        capture_output=True,
        text=True,
        timeout=APP_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Failed to export" not in done.stderr, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])
