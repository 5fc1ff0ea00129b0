"""The costspan_file exporter: the Collector's OTLP JSON format, rotation, several processes appending,
and `opentelemetry-instrument --traces_exporter costspan_file`."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
from decimal import Decimal
from importlib.metadata import entry_points
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from conftest import ROOT, Scenario, clean_env, costspan_report, report_json
from costspan.exporters.file import OtlpJsonFileExporter


def test_lines_are_otlp_json_as_the_collector_writes(scenario: Scenario) -> None:
    lines = scenario.path.read_text().splitlines()
    spans = []
    for line in lines:
        request = json.loads(line)
        assert list(request) == ["resourceSpans"]
        for resource_spans in request["resourceSpans"]:
            assert any(a["key"] == "service.name" for a in resource_spans["resource"]["attributes"])
            for scope_spans in resource_spans["scopeSpans"]:
                spans += scope_spans["spans"]
    call = next(s for s in spans if s["name"] == "chat gpt-4o-mini")
    assert len(call["traceId"]) == 32 and int(call["traceId"], 16)
    assert len(call["spanId"]) == 16 and len(call["parentSpanId"]) == 16
    assert call["kind"] == 3  # SPAN_KIND_CLIENT as a number
    assert isinstance(call["startTimeUnixNano"], str) and int(call["startTimeUnixNano"]) > 0
    values = {a["key"]: a["value"] for a in call["attributes"]}
    assert values["gen_ai.usage.input_tokens"] == {"intValue": "1200"}
    assert values["gen_ai.usage.cost"] == {"doubleValue": 0.00036}
    assert values["costspan.customer_id"] == {"stringValue": "cus_a"}
    failed = next(s for s in spans if s["name"] == "summarize" and s.get("status", {}).get("code") == 2)
    assert failed["status"]["message"].startswith("RuntimeError")


def test_entry_point() -> None:
    (found,) = entry_points(group="opentelemetry_traces_exporter", name="costspan_file")
    assert found.load() is OtlpJsonFileExporter


def _spans(path: Path, count: int, name: str, max_bytes: int = 0) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OtlpJsonFileExporter(path, max_bytes=max_bytes)))
    tracer = provider.get_tracer("t")
    for index in range(count):
        with tracer.start_as_current_span(name, attributes={"i": index, "pad": "x" * 200}):
            pass
    provider.shutdown()


def _count(paths: list[Path]) -> dict[str, int]:
    names: dict[str, int] = {}
    for path in paths:
        for line in path.read_text().splitlines():
            request = json.loads(line)  # every line whole
            for rs in request["resourceSpans"]:
                for ss in rs["scopeSpans"]:
                    for span in ss["spans"]:
                        names[span["name"]] = names.get(span["name"], 0) + 1
    return names


def test_a_directory_that_does_not_exist_yet_is_made(tmp_path: Path) -> None:
    path = tmp_path / "not" / "yet" / "spans.jsonl"
    _spans(path, 3, "s")
    assert _count([path]) == {"s": 3}


def test_rotation_keeps_every_span(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    _spans(path, 60, "s", max_bytes=4000)
    files = sorted(tmp_path.glob("spans.jsonl*"))
    files = [f for f in files if not f.name.endswith(".lock")]
    assert [f.name for f in files] == ["spans.jsonl", *[f"spans.jsonl.{i}" for i in range(1, 6)]]
    assert all(f.stat().st_size <= 4000 for f in files)
    assert sum(_count(files).values()) <= 60  # older files past the 5 backups are dropped
    assert min(json.loads(f.read_text().splitlines()[0]) is not None for f in files)


def test_several_processes_append_to_one_file(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_spans, args=(path, 300, f"worker-{n}")) for n in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    assert _count([path]) == {f"worker-{n}": 300 for n in range(4)}


def test_rotation_with_several_processes(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_spans, args=(path, 100, f"w{n}", 100_000)) for n in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    files = [p for p in tmp_path.glob("spans.jsonl*") if not p.name.endswith(".lock")]
    assert len(files) >= 3  # it rotated
    assert _count(files) == {f"w{n}": 100 for n in range(3)}  # 300 lines of ~1 kB < 6 x 100 kB: none dropped


def test_under_opentelemetry_instrument(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "opentelemetry-instrument"),
            "--traces_exporter",
            "costspan_file",
            "--metrics_exporter",
            "none",
            sys.executable,
            str(ROOT / "examples" / "lead_enrichment.py"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env=clean_env(COSTSPAN_FILE=str(path)),
    )
    assert done.returncode == 0, done.stderr
    assert report_json(str(path))["lead-enrichment"]["cost_usd"] == Decimal("0.12072")
    assert "$0.120720" in costspan_report(str(path)).stdout
