"""Start and stop rotel (PyPI `rotel`: the `rotel-agent` collector binary) for end-to-end tests.

rotel is configured by collector-config/rotel.env (the documented setup) with this test's ports: it
receives OTLP over gRPC and HTTP on 127.0.0.1 and exports everything over OTLP/HTTP to the
endpoint given (the tests' `OtlpHttpSink`): the same path as an app -> collector -> backend
deployment. Run in the foreground (no `--daemon`) so the test owns the process and kills it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sysconfig
import time
from pathlib import Path

import rotel.agent

ROTEL_ENV = Path(__file__).resolve().parents[2] / "collector-config" / "rotel.env"
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0


def agent_path() -> Path:
    """The `rotel-agent` binary the `rotel` wheel ships inside its package."""
    path = Path(rotel.agent.__file__).parent / "rotel-agent"
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"rotel-agent not found or not executable at {path}")
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def documented_settings() -> dict[str, str]:
    """The ROTEL_* settings in collector-config/rotel.env (KEY=VALUE lines, `#` comment lines)."""
    settings: dict[str, str] = {}
    for number, line in enumerate(ROTEL_ENV.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.startswith("ROTEL_") or not value:
            raise ValueError(f"{ROTEL_ENV}:{number}: expected ROTEL_KEY=value, got {line!r}")
        settings[key] = value
    return settings


def settings(grpc_port: int, http_port: int, export_to: str, workdir: Path) -> dict[str, str]:
    """collector-config/rotel.env with this test's endpoints, files and a shorter batch wait."""
    return {
        **documented_settings(),
        "ROTEL_OTLP_GRPC_ENDPOINT": f"127.0.0.1:{grpc_port}",
        "ROTEL_OTLP_HTTP_ENDPOINT": f"127.0.0.1:{http_port}",
        "ROTEL_OTLP_EXPORTER_ENDPOINT": export_to,
        "ROTEL_PID_FILE": str(workdir / "rotel-agent.pid"),
        "ROTEL_LOG_FILE": str(workdir / "rotel-agent.log"),
        # 200 ms in the documented file; shorter keeps each test short.
        "ROTEL_BATCH_TIMEOUT": "50ms",
    }


class RotelCollector:
    """`with RotelCollector(export_to=sink.endpoint, workdir=tmp_path) as rotel:` then send OTLP
    to `rotel.grpc_endpoint` or `rotel.http_endpoint`. The process is killed on exit."""

    def __init__(self, export_to: str, workdir: Path) -> None:
        self.export_to = export_to
        self.workdir = workdir
        self.grpc_port = 0
        self.http_port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.output_path = workdir / "rotel-agent.out"

    @property
    def grpc_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def output(self) -> str:
        """What rotel printed (it logs to stdout in the foreground)."""
        try:
            return self.output_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def __enter__(self) -> RotelCollector:
        # A port picked free can be taken before rotel binds it: try again with new ports.
        for _attempt in range(3):
            if self._start():
                return self
        raise RuntimeError(f"rotel-agent did not start: {self.output()}")

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start(self) -> bool:
        self.grpc_port, self.http_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROTEL_")}
        env.update(settings(self.grpc_port, self.http_port, self.export_to, self.workdir))
        # rotel-agent links libpython (for its Python processor SDK); prefer the running
        # interpreter's shared library over the system's, which may not be installed.
        libdir = sysconfig.get_config_var("LIBDIR")
        if libdir:
            env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (libdir, env.get("LD_LIBRARY_PATH")) if p)
        with self.output_path.open("wb") as out:
            self.process = subprocess.Popen(
                [str(agent_path()), "start"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if _accepts(self.grpc_port) and _accepts(self.http_port):
                return True
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"rotel-agent did not listen within {START_TIMEOUT_S}s: {self.output()}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_TIMEOUT_S)
