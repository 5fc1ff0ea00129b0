"""The application the backend tests run in a child process, as a user's service would run.

Real `openai` SDK calls (gpt-4o, then the custom acme-llm-1) against costspan's fake OpenAI
servers, inside a costspan task, set up with `costspan.configure()` from the COSTSPAN_* variables
(COSTSPAN_PRICES, COSTSPAN_COST_ATTRIBUTES). Spans go over OTLP/HTTP to each endpoint given as an
argument (`URL` or `URL|header=value`), and to memory, from which it prints one JSON line: the trace
id and the cost costspan put on each span and on the task.
"""

from __future__ import annotations

import json
import sys

from openai import OpenAI
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from scenario import ACME_USAGE, CUSTOMER_ID, GPT4O_USAGE, TASK

import costspan
from costspan.testing import FakeProviderServer
from costspan.testing.openai import add_openai_routes


def exporter(target: str) -> OTLPSpanExporter:
    endpoint, *headers = target.split("|")
    return OTLPSpanExporter(endpoint=endpoint, headers=dict(h.split("=", 1) for h in headers), timeout=90)


def main(targets: list[str]) -> None:
    provider = TracerProvider()  # resource from OTEL_RESOURCE_ATTRIBUTES / OTEL_SERVICE_NAME
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    for target in targets:  # one export request per backend, at shutdown, as a service batches
        provider.add_span_processor(BatchSpanProcessor(exporter(target)))
    trace.set_tracer_provider(provider)
    costspan.configure(tracer_provider=provider)
    with FakeProviderServer() as gpt4o_server, FakeProviderServer() as acme_server:
        add_openai_routes(gpt4o_server, usage=GPT4O_USAGE)
        add_openai_routes(acme_server, usage=ACME_USAGE, response_model="acme-llm-1")
        gpt4o = OpenAI(base_url=gpt4o_server.base_url + "/v1", api_key="test", max_retries=0)
        acme = OpenAI(base_url=acme_server.base_url + "/v1", api_key="test", max_retries=0)
        with costspan.task(TASK, customer_id=CUSTOMER_ID) as span:
            gpt4o.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Who?"}])
            acme.chat.completions.create(
                model="acme-llm-1", messages=[{"role": "user", "content": "Sum up."}]
            )
    provider.shutdown()
    spans = memory.get_finished_spans()
    print(
        json.dumps(
            {
                "trace_id": format(span.get_span_context().trace_id, "032x"),
                "span_cost": {s.name: s.attributes.get("gen_ai.usage.cost") for s in spans if s.parent},
                "trace_cost": next(s for s in spans if s.parent is None).attributes[
                    "costspan.rollup.cost_usd"
                ],
                "attributes": {s.name: dict(s.attributes) for s in spans},
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
