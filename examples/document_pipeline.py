"""Summarise a document's chunks in parallel threads, then synthesise one summary from them.

    python examples/document_pipeline.py [file.txt] [--workers N]

task summarise-document (customer cus_2207, feature doc-summary)
├─ map          one `summarise chunk N` step per chunk, in a ThreadPoolExecutor (claude-haiku-4-5)
└─ synthesise   one call over the chunk summaries (claude-sonnet-4-6)

Nothing here carries context into the worker threads: `costspan.configure()` turns on
OpenTelemetry's threading instrumentation, so each worker's spans get the task's customer and
feature and their cost rolls up into `map` and the task. (Without it, as with
OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=threading, submit `contextvars.copy_context().run` instead.)

Offline against costspan's fake Anthropic unless ANTHROPIC_API_KEY is set.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _support import Providers, plural, rollup, setup, usd

import costspan

CUSTOMER_ID = "cus_2207"
CHUNK_MODEL = "claude-haiku-4-5"
SYNTHESIS_MODEL = "claude-sonnet-4-6"

SAMPLE = """\
Quarterly report. Revenue grew 18% to $42M, led by the self-serve plan in Europe.

Churn fell to 2.1% after the onboarding rework; enterprise churn was flat.

Gross margin dropped two points because inference costs rose faster than prices.

The sales team closed 31 enterprise deals, 9 of them in the public sector.

Hiring: 24 engineers joined, mostly on the platform and data teams.

Outlook: the company expects 15-20% growth next quarter and a new pricing page in March.
"""


def chunks_of(text: str) -> list[str]:
    """One chunk per paragraph (a real pipeline would split by tokens)."""
    return [part.strip() for part in text.split("\n\n") if part.strip()]


def claude_text(reply: Any) -> str:
    return "".join(block.text for block in reply.content if block.type == "text")


def summarise_chunk(client: Any, index: int, chunk: str) -> str:
    # Runs in a worker thread: still inside the task, the `map` step and its baggage.
    with costspan.step(f"summarise chunk {index}"):
        reply = client.messages.create(
            model=CHUNK_MODEL,
            max_tokens=300,
            messages=[{"role": "user", "content": f"Summarise in one sentence:\n\n{chunk}"}],
        )
        return claude_text(reply)


def summarise_document(client: Any, text: str, workers: int) -> tuple[str, dict[str, Any]]:
    spans: dict[str, Any] = {}
    chunks = chunks_of(text)
    with costspan.task("summarise-document", customer_id=CUSTOMER_ID, feature="doc-summary") as spans["task"]:
        with costspan.step("map") as spans["map"], ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(summarise_chunk, client, i, chunk) for i, chunk in enumerate(chunks, 1)]
            summaries = [future.result() for future in futures]
        with costspan.step("synthesise") as spans["synthesise"]:
            joined = "\n".join(f"- {summary}" for summary in summaries)
            reply = client.messages.create(
                model=SYNTHESIS_MODEL,
                max_tokens=600,
                messages=[{"role": "user", "content": f"One paragraph from these summaries:\n{joined}"}],
            )
    return claude_text(reply), spans


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("file", nargs="?", type=Path, help="a text file (default: a sample report)")
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args(argv)
    text = args.file.read_text() if args.file else SAMPLE

    setup()
    providers = Providers()
    try:
        summary, spans = summarise_document(providers.anthropic(), text, args.workers)
    finally:
        providers.close()
    cost, calls = rollup(spans["task"])
    print(f"\nsummary: {summary}")
    print(f"summarise-document for {CUSTOMER_ID}: {usd(cost)} in {plural(calls, 'LLM call')}")
    for name in ("map", "synthesise"):
        step_cost, step_calls = rollup(spans[name])
        print(f"  {name:<11} {usd(step_cost)}  ({plural(step_calls, 'LLM call')})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
