"""What costspan adds to a framework-wrapped LLM call (issue 22's performance row).

One pydantic-ai agent run making one OpenAI chat request (`framework_workloads`), three ways: bare
pydantic-ai, pydantic-ai's own instrumentation, and that plus `costspan.configure()`. Instructions
per run from callgrind, calling thread only, the difference of `small` and `large` runs in one
process (`callgrind.per_op_in_process`), median over hash seeds (one process's count moves with its
heap layout). Prints a markdown table for benchmarks/RESULTS-frameworks.md.

    python benchmarks/bench_frameworks.py [small large [seeds]]     # default 10 40 3
"""

from __future__ import annotations

import statistics
import sys
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import callgrind
from framework_workloads import CONTENDERS

LABELS = {
    "bare": "(c) bare pydantic-ai, no tracing",
    "pydantic_ai": "(a) pydantic-ai's instrumentation only",
    "costspan": "(b) (a) + `costspan.configure()`",
}
PACKAGES = ("costspan", "pydantic-ai-slim", "openai", "opentelemetry-sdk", "genai-prices")


def main(small: int, large: int, seeds: int) -> None:
    if not callgrind.available():
        raise SystemExit("valgrind is not installed")
    jobs = [(contender, seed) for contender in CONTENDERS for seed in range(seeds)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        counts = list(
            pool.map(
                lambda job: callgrind.per_op_in_process(
                    f"framework_workloads:pydantic_ai_chat:{job[0]}", small, large, hash_seed=job[1]
                ),
                jobs,
            )
        )
    by_contender: dict[str, list[float]] = {c: [] for c in CONTENDERS}
    for (contender, _), count in zip(jobs, counts, strict=True):
        by_contender[contender].append(count)
    median = {c: statistics.median(v) for c, v in by_contender.items()}
    print("- Versions: " + ", ".join(f"{p} {version(p)}" for p in PACKAGES))
    print(f"- Python {sys.version.split()[0]}; {small} vs {large} runs; hash seeds 0..{seeds - 1}")
    print()
    print("| contender | instr/run (median) | spread | vs bare | vs (a) |")
    print("|---|---|---|---|---|")
    for contender in ("bare", "pydantic_ai", "costspan"):
        values = by_contender[contender]
        row = [
            LABELS[contender],
            f"{median[contender]:,.0f}",
            f"{max(values) - min(values):,.0f}",
            f"{median[contender] - median['bare']:+,.0f}" if contender != "bare" else "",
            f"{median[contender] - median['pydantic_ai']:+,.0f}" if contender == "costspan" else "",
        ]
        print("| " + " | ".join(row) + " |")
    print()
    print("raw:", {c: [round(v) for v in values] for c, values in by_contender.items()})


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    main(*(args + [10, 40, 3][len(args) :]))
