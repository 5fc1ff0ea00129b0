"""costspan reads the OpenTelemetry context directly where it can (`costspan.otel_internals.context`):
the same spans come out when it cannot, with another runtime context (`OTEL_PYTHON_CONTEXT`) or an API
without the context keys it reads."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from costspan import attributes as A

pytest.importorskip("openai")

HERE = Path(__file__).parent
RUNTIME_MODULE = '''
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext


class CountingRuntimeContext(ContextVarsRuntimeContext):
    """A runtime context of another type, as a third-party OTEL_PYTHON_CONTEXT would be."""

    attached = 0

    def attach(self, context):
        CountingRuntimeContext.attached += 1
        return super().attach(context)
'''
MTOK = Decimal(1_000_000)
# gpt-4o: $2.50 input, $1.25 cached input, $10 output per million tokens; two calls.
CALL_COST = ((1200 - 200) * Decimal("2.50") + 200 * Decimal("1.25") + 400 * Decimal("10")) / MTOK


@pytest.fixture(scope="module")
def runtime_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with a runtime context registered under the `opentelemetry_context` entry point."""
    path = tmp_path_factory.mktemp("runtime")
    (path / "counting_context.py").write_text(RUNTIME_MODULE)
    dist = path / "counting_context-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: counting-context\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[opentelemetry_context]\ncounting = counting_context:CountingRuntimeContext\n"
    )
    return path


def run_app(runtime_path: Path, *args: str, context: str | None = None) -> dict[str, Any]:
    env = {"PYTHONPATH": str(runtime_path), "PATH": "/usr/bin:/bin"}
    if context is not None:
        env["OTEL_PYTHON_CONTEXT"] = context
    done = subprocess.run(
        [sys.executable, str(HERE / "context_fallback_app.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_same_spans_with_another_runtime_context_and_without_the_context_keys(runtime_path: Path) -> None:
    fast = run_app(runtime_path)
    assert (fast["runtime"], fast["fast_context"]) == ("ContextVarsRuntimeContext", True)
    spans = {span["name"]: span for span in fast["spans"]}
    assert [span["name"] for span in fast["spans"]] == [
        "http request",
        "chat gpt-4o",
        "http request",
        "chat gpt-4o",
        "triage",
    ]
    assert [span["parent"] for span in fast["spans"][::2]] == ["chat gpt-4o", "chat gpt-4o", None]
    first, second = fast["spans"][1], fast["spans"][3]
    for call in (first, second):
        assert call["parent"] == "triage"
        assert call["attributes"][A.CUSTOMER_ID] == "cus_1"
        assert call["attributes"][A.TASK] == "triage"
        assert call["attributes"]["gen_ai.usage.input_tokens"] == 1200
        assert Decimal(str(call["attributes"]["gen_ai.usage.cost"])) == CALL_COST
    assert A.FEATURE not in first["attributes"]
    assert second["attributes"][A.FEATURE] == "summary"
    task = spans["triage"]["attributes"]
    assert task[A.ROLLUP_LLM_CALLS] == 2
    assert Decimal(str(task[A.ROLLUP_COST_USD])) == 2 * CALL_COST

    other_runtime = run_app(runtime_path, context="counting")
    assert (other_runtime["runtime"], other_runtime["fast_context"]) == ("CountingRuntimeContext", False)
    keys_missing = run_app(runtime_path, "keys-missing", context="counting")
    for fallback in (other_runtime, keys_missing):
        assert fallback["spans"] == fast["spans"]
        assert fallback["chunks"] == fast["chunks"]
