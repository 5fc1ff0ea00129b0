"""A day of work for the report tests, run in a child process: real openai / anthropic SDK calls to
costspan's fake provider, set up with `costspan.configure()` and the `costspan_file` exporter in code.

    python tests_report/scenario.py SPANS_FILE [--dearer]

Fake usage per call: OpenAI 1,200 in / 300 out, Anthropic 1,500 in / 400 out. Runs:
- summarize (cus_a, feature notes) x2: one gpt-4o-mini call each ($0.00036; `--dearer`: gpt-4o, $0.006)
- summarize (cus_b): one gpt-4o call ($0.006), then the task raises: not successful
- research (cus_a, feature lead-gen): agent planner gpt-4o ($0.006), agent writer claude-haiku-4-5
  ($0.0035), tool enrich at $0.10; its task span says outcome=success, retry cost $0.006
- classify (cus_b): one call to `mystery-model-1` (unknown: unpriced), and a span marked
  `costspan.cost.status=duplicate` carrying $5 that is counted elsewhere (never counted here);
  its task span says outcome=refused though its status is not ERROR
Prints each task span's trace id (`trace <task> <hex>`).
"""

from __future__ import annotations

import sys

from anthropic import Anthropic
from openai import OpenAI
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import costspan
from costspan.exporters.file import OtlpJsonFileExporter
from costspan.testing.all_providers import AllProvidersServer


def main(argv: list[str]) -> int:
    path, dearer = argv[0], "--dearer" in argv
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OtlpJsonFileExporter(path)))
    trace.set_tracer_provider(provider)
    costspan.configure()
    tracer = trace.get_tracer("scenario")
    with AllProvidersServer() as fake:
        gpt = OpenAI(base_url=fake.openai_base_url, api_key="fake", max_retries=0)
        claude = Anthropic(base_url=fake.anthropic_base_url, api_key="fake", max_retries=0)

        def chat(model: str) -> None:
            gpt.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])

        def show(name: str, span: trace.Span) -> None:
            print(f"trace {name} {span.get_span_context().trace_id:032x}")

        for _ in range(2):
            with costspan.task("summarize", customer_id="cus_a", feature="notes") as span:
                chat("gpt-4o" if dearer else "gpt-4o-mini")
        try:
            with costspan.task("summarize", customer_id="cus_b", feature="notes"):
                chat("gpt-4o")
                raise RuntimeError("the summary was empty")
        except RuntimeError:
            pass
        with costspan.task("research", customer_id="cus_a", feature="lead-gen") as span:
            show("research", span)
            span.set_attribute("costspan.task.outcome", "success")
            span.set_attribute("costspan.rollup.retry_cost_usd", 0.006)
            with costspan.agent("planner"):
                chat("gpt-4o")
            with costspan.agent("writer"):
                claude.messages.create(
                    model="claude-haiku-4-5", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
                )
            with costspan.tool("enrich", cost_usd=0.10):
                pass
        with costspan.task("classify", customer_id="cus_b", feature="notes") as span:
            span.set_attribute("costspan.task.outcome", "refused")
            chat("mystery-model-1")
            with tracer.start_as_current_span("chat gpt-4o (recorded twice)") as twin:
                twin.set_attribute("gen_ai.operation.name", "chat")
                twin.set_attribute("gen_ai.request.model", "gpt-4o")
                twin.set_attribute("gen_ai.usage.input_tokens", 999)
                twin.set_attribute("gen_ai.usage.output_tokens", 999)
                twin.set_attribute("gen_ai.usage.cost", 5.0)
                twin.set_attribute("costspan.cost.status", "duplicate")
    provider.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
