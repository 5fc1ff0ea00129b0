"""`costspan report` on 1,000,000 spans: wall time and peak memory (RSS) of the whole command.

    python benchmarks/bench_report.py [--spans 1000000] [--file /tmp/costspan-bench-spans.jsonl]

The span file is made once (kept for later runs): task runs of 5 spans each (task span, agent
span, 3 LLM calls on 3 models), across 500 customers, 20 task types and 5 features, one request
of 512 spans per line, in exactly the format the `costspan_file` exporter writes (the first line's
spans are checked against the exporter's own encoding of the same spans). Then `costspan report
FILE --by customer --format json` runs in a child process; its wall time and peak RSS are printed,
and the exact total is checked against the total known from generation. CPU time is printed with
the wall time: on a shared machine (load average above the core count) the wall time measures the
neighbours; CPU seconds / cores is what the command needs of an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

MODELS = (
    ("openai", "gpt-4o-mini", Decimal("0.00045")),
    ("openai", "gpt-4o", Decimal("0.006")),
    ("anthropic", "claude-haiku-4-5", Decimal("0.0035")),
)
T0 = 1_790_000_000_000_000_000


def _s(key: str, value: str) -> dict:
    return {"key": key, "value": {"stringValue": value}}


def _i(key: str, value: int) -> dict:
    return {"key": key, "value": {"intValue": str(value)}}


def _d(key: str, value: Decimal) -> dict:
    return {"key": key, "value": {"doubleValue": float(value)}}


def _span(trace: str, span: str, parent: str, name: str, start: int, attributes: list, kind: int = 1) -> dict:
    found = {
        "traceId": trace,
        "spanId": span,
        "name": name,
        "kind": kind,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + 1_000_000),
        "attributes": attributes,
        "status": {},
    }
    if parent:
        found["parentSpanId"] = parent
    return found


def make_file(path: Path, spans: int, seed: int = 7) -> Decimal:
    rng = random.Random(seed)
    total = Decimal(0)
    runs = spans // 5
    batch: list[dict] = []
    with path.open("w") as out:
        for run in range(runs):
            trace = f"{rng.getrandbits(128):032x}"
            ids = [f"{rng.getrandbits(64) | 1:016x}" for _ in range(5)]
            task = f"task-{run % 20}"
            labels = [
                _s("costspan.customer_id", f"cus_{rng.randrange(500)}"),
                _s("costspan.task", task),
                _s("costspan.task_id", f"{run:032x}"),
                _s("costspan.feature", f"feature-{run % 5}"),
            ]
            start = T0 + run * 1_000_000_000
            calls_cost = Decimal(0)
            spans_of_run = []
            for index in range(3):
                provider, model, cost = MODELS[(run + index) % 3]
                calls_cost += cost
                spans_of_run.append(
                    _span(
                        trace,
                        ids[2 + index],
                        ids[1],
                        f"chat {model}",
                        start + index,
                        [
                            *labels,
                            _s("costspan.agent", "researcher"),
                            _s("gen_ai.operation.name", "chat"),
                            _s("gen_ai.provider.name", provider),
                            _s("gen_ai.request.model", model),
                            _s("gen_ai.response.model", model),
                            _i("gen_ai.usage.input_tokens", 1200),
                            _i("gen_ai.usage.output_tokens", 300),
                            _d("gen_ai.usage.cost", cost),
                            _s("costspan.cost.status", "priced"),
                        ],
                        kind=3,
                    )
                )
            rollup = [
                _d("costspan.rollup.cost_usd", calls_cost),
                _i("costspan.rollup.llm_calls", 3),
                _i("costspan.rollup.input_tokens", 3600),
                _i("costspan.rollup.output_tokens", 900),
            ]
            spans_of_run.append(
                _span(
                    trace,
                    ids[1],
                    ids[0],
                    "invoke_agent researcher",
                    start,
                    [
                        *labels,
                        _s("costspan.agent", "researcher"),
                        _s("gen_ai.operation.name", "invoke_agent"),
                        _s("gen_ai.agent.name", "researcher"),
                        *rollup,
                    ],
                )
            )
            spans_of_run.append(_span(trace, ids[0], "", task, start, [*labels, *rollup]))
            total += calls_cost
            batch += spans_of_run
            if len(batch) >= 510 or run == runs - 1:
                resource = {"attributes": [_s("service.name", "bench")]}
                scope_spans = [{"scope": {"name": "costspan"}, "spans": batch}]
                request = {"resourceSpans": [{"resource": resource, "scopeSpans": scope_spans}]}
                out.write(json.dumps(request, separators=(",", ":")) + "\n")
                batch = []
    return total


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--file", default="/tmp/costspan-bench-spans.jsonl")
    parser.add_argument("--by", default="customer")
    args = parser.parse_args()
    path = Path(args.file)
    marker = path.with_suffix(".total")
    if not path.exists() or not marker.exists() or marker.read_text().split()[0] != str(args.spans):
        started = time.perf_counter()
        total = make_file(path, args.spans)
        marker.write_text(f"{args.spans} {total}\n")
        print(f"made {path} ({path.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - started:.0f} s")
    expected = Decimal(marker.read_text().split()[1])
    command = [sys.executable, "-m", "costspan", "report", str(path), "--by", args.by, "--format", "json"]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak_mib, cpu = usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime
    load = os.getloadavg()[0]
    rows = json.loads(done.stdout, parse_float=Decimal)
    got = sum((row["cost_usd"] for row in rows), Decimal(0))
    runs = sum(row["runs"] for row in rows)
    status = "exact" if got == expected else f"WRONG (expected {expected})"
    print(
        f"{args.spans:,} spans ({path.stat().st_size / 1e9:.2f} GB), --by {args.by}: {elapsed:.1f} s wall, "
        f"{cpu:.1f} s CPU (user+sys), load average {load:.1f}, "
        f"peak RSS {peak_mib:.0f} MiB, {len(rows)} groups, {runs:,} runs, total ${got} {status}, "
        f"{os.cpu_count()} cores"
    )
    return 0 if got == expected else 1


if __name__ == "__main__":
    raise SystemExit(main())
