"""Run a script the way a user does: `opentelemetry-instrument python app.py`, in a child process.

The child gets a clean environment (no OTEL_* / COSTSPAN_* from the test run) plus what the test
gives. `distro_path()` installs opentelemetry-distro (the version matching the installed
opentelemetry-instrumentation, no dependencies) into a directory that a child puts on PYTHONPATH, so
the same test runs with and without a distro while the test environment itself has none.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from costspan.setup.configure import costspan_entry_points

BIN = Path(sys.executable).parent
TIMEOUT_S = 30


# HTTP client instrumentations installed for tests/test_cost_across_services.py: under
# opentelemetry-instrument they would add an HTTP span under every provider SDK call (openai sends with
# httpx2, google-genai with httpx or aiohttp), so other tests' children run without them.
HTTP_CLIENT_INSTRUMENTATIONS = "httpx,httpx2,aiohttp-client"


def clean_env(*, http_clients: bool = False, **extra: str) -> dict[str, str]:
    """A child's environment; `http_clients=False` disables the httpx/httpx2/aiohttp instrumentations."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "COSTSPAN_")) and k != "PYTHONPATH"
    }
    # Short export intervals so a child's shutdown does not wait on them; no stray exports.
    env.update(
        PYTHONUNBUFFERED="1",
        OTEL_BSP_SCHEDULE_DELAY="100",
        OTEL_METRIC_EXPORT_INTERVAL="60000",
        OTEL_TRACES_EXPORTER="none",
        OTEL_METRICS_EXPORTER="none",
        OTEL_LOGS_EXPORTER="none",
    )
    env.update(extra)
    if not http_clients:
        disabled = env.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "")
        env["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"] = ",".join(
            filter(None, (disabled, HTTP_CLIENT_INSTRUMENTATIONS))
        )
    return env


def write_app(directory: Path, source: str, name: str = "app.py") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(source))
    return path


def instrument_cmd(app: Path, *options: str) -> list[str]:
    return [str(BIN / "opentelemetry-instrument"), *options, sys.executable, str(app)]


def run_instrumented(
    app: Path, env: dict[str, str], *options: str, distro: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`opentelemetry-instrument [options] python app`; `distro`: a directory holding opentelemetry-distro."""
    if distro is not None:
        env = {**env, "PYTHONPATH": str(distro)}
    return subprocess.run(
        instrument_cmd(app, *options),
        env=env,
        cwd=app.parent,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )


def install_distro(target: Path) -> Path:
    """opentelemetry-distro for the installed opentelemetry-instrumentation, into `target`."""
    try:
        instrumentation = version("opentelemetry-instrumentation")
    except PackageNotFoundError as exc:  # pragma: no cover - a dependency of costspan
        raise AssertionError("opentelemetry-instrumentation is not installed") from exc
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--target",
            str(target),
            f"opentelemetry-distro=={instrumentation}",
        ],
        check=True,
        timeout=180,
    )
    assert (target / "opentelemetry" / "distro").is_dir()
    return target


def uninstrument_all() -> None:
    """Undo what configure() instrumented in this process (costspan's instrumentors, threading)."""
    from opentelemetry.instrumentation.threading import ThreadingInstrumentor

    for entry_point in costspan_entry_points():
        try:
            instrumentor = entry_point.load()()
        except ImportError:
            continue
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()
    if ThreadingInstrumentor().is_instrumented_by_opentelemetry:
        ThreadingInstrumentor().uninstrument()
