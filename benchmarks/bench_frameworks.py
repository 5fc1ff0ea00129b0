"""What costspan adds to a framework-wrapped LLM call (issue 22's performance row).

One pydantic-ai agent run making one OpenAI chat request (`framework_workloads`), four ways: bare
pydantic-ai, pydantic-ai's own instrumentation, that plus `costspan.configure()`, and that plus only
the CostSpanProcessor (`configure(instrument=False)`). Instructions per run from callgrind: the
difference of two processes (`small` and `large` runs, all threads; `callgrind.per_op`), repeated
`repeats` times. Prints a markdown table for benchmarks/RESULTS-frameworks.md.

Not `callgrind.per_op_in_process`: it toggles collection on and dumps after every call of the C
function `functools_reduce`, and the costspan contender read ~0 instructions a run that way (hash
seeds 0-2: -1, -3, 0), which a nested `reduce` call inside the measured block would explain; not
tracked down (no Python-level `functools.reduce` call shows on that path). The other two read
17.35M and 20.82M there.

    python benchmarks/bench_frameworks.py [small large [repeats]]     # default 10 40 1
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
    "processor": "(d) (a) + `costspan.configure(instrument=False)`",
}
OVER_A = ("costspan", "processor")  # rows that add to (a)
PACKAGES = ("costspan", "pydantic-ai-slim", "openai", "opentelemetry-sdk", "genai-prices")


def main(small: int, large: int, repeats: int) -> None:
    if not callgrind.available():
        raise SystemExit("valgrind is not installed")
    jobs = [(contender, repeat) for contender in CONTENDERS for repeat in range(repeats)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        counts = list(
            pool.map(
                lambda job: callgrind.per_op(f"framework_workloads:pydantic_ai_chat:{job[0]}", small, large),
                jobs,
            )
        )
    by_contender: dict[str, list[float]] = {c: [] for c in CONTENDERS}
    for (contender, _), count in zip(jobs, counts, strict=True):
        by_contender[contender].append(count)
    median = {c: statistics.median(v) for c, v in by_contender.items()}
    print("- Versions: " + ", ".join(f"{p} {version(p)}" for p in PACKAGES))
    print(f"- Python {sys.version.split()[0]}; {small} vs {large} runs in two processes, x{repeats}")
    print()
    print("| contender | instr/run (median) | spread | vs bare | vs (a) |")
    print("|---|---|---|---|---|")
    for contender in ("bare", "pydantic_ai", "costspan", "processor"):
        values = by_contender[contender]
        row = [
            LABELS[contender],
            f"{median[contender]:,.0f}",
            f"{max(values) - min(values):,.0f}",
            f"{median[contender] - median['bare']:+,.0f}" if contender != "bare" else "",
            f"{median[contender] - median['pydantic_ai']:+,.0f}" if contender in OVER_A else "",
        ]
        print("| " + " | ".join(row) + " |")
    print()
    print("raw:", {c: [round(v) for v in values] for c, values in by_contender.items()})


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    main(*(args + [10, 40, 1][len(args) :]))
