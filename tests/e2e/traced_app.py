"""The application the end-to-end export tests run in a child process.

It does what a user's service does: real `openai` SDK calls and a priced tool inside a costspan
task with two agents. The research agent calls gpt-4o on the fake OpenAI server at
`RESEARCH_OPENAI_URL`, the writer agent calls gpt-4o-mini on the one at `WRITER_OPENAI_URL`.

Telemetry setup, chosen by the first argument:
- `manual`: the README's setup by hand (TracerProvider + CostSpanProcessor +
  BatchSpanProcessor(OTLPSpanExporter) + OpenAIInstrumentor), exporter picked from
  `OTEL_EXPORTER_OTLP_PROTOCOL`;
- `zero-code`: nothing; run it as `opentelemetry-instrument python traced_app.py zero-code`.
Either way the standard OTEL_* variables say where spans go and what the service is called.

Prints one JSON line: the trace id and the task id of the task it ran.
"""

from __future__ import annotations

import json
import os
import sys

from openai import OpenAI
from opentelemetry import trace

import costspan

CUSTOMER_ID = "cus_e2e_8821"
TASK = "enrich_lead"
TOOL = "clearbit.enrich"
TOOL_COST_USD = 0.10


def configure_manually() -> trace.TracerProvider:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from costspan.instrumentation.openai import OpenAIInstrumentor

    protocol = os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    elif protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[assignment]
            OTLPSpanExporter,
        )
    else:
        raise SystemExit(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: expected grpc or http/protobuf")

    provider = TracerProvider()  # resource from OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES
    # A manual setup reads no COSTSPAN_* variable: the cost parts are asked for in code.
    provider.add_span_processor(costspan.CostSpanProcessor(cost_attributes=["parts"]))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # endpoint from OTEL_*
    trace.set_tracer_provider(provider)
    OpenAIInstrumentor().instrument(tracer_provider=provider)
    return provider


def enrich_lead() -> dict[str, str]:
    research = OpenAI(base_url=os.environ["RESEARCH_OPENAI_URL"] + "/v1", api_key="test", max_retries=0)
    writer = OpenAI(base_url=os.environ["WRITER_OPENAI_URL"] + "/v1", api_key="test", max_retries=0)
    with costspan.task(TASK, customer_id=CUSTOMER_ID) as span:
        with costspan.agent("research"):
            research.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "Who runs acme.example?"}]
            )
            with costspan.tool(TOOL, cost_usd=TOOL_COST_USD):
                pass  # a paid enrichment API would be called here
        with costspan.agent("writer"):
            writer.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "Summarise the lead."}]
            )
        return {
            "trace_id": format(span.get_span_context().trace_id, "032x"),
            "task_id": costspan.current_attribution()["costspan.task_id"],
        }


def main(setup: str) -> None:
    provider = configure_manually() if setup == "manual" else None
    ran = enrich_lead()
    if provider is not None:
        provider.shutdown()  # flushes the batch; zero-code setups flush at exit
    print(json.dumps(ran), flush=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "zero-code")
