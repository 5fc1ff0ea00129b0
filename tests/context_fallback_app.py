"""Child process for test_context_fallbacks: one task with a chat call and a chat stream through the
OpenAI instrumentor and the CostSpanProcessor, printed as JSON (span names, parents, attributes).

argv[1] `keys-missing`: costspan's context shortcuts behave as if the API had no `_BAGGAGE_KEY` /
`_SPAN_KEY`. Which runtime context is used is the environment's `OTEL_PYTHON_CONTEXT`.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from openai import DefaultHttpxClient, OpenAI
from opentelemetry import context as context_api
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import costspan
from costspan import CostSpanProcessor
from costspan import attributes as A
from costspan.instrumentation.openai import OpenAIInstrumentor
from costspan.otel_internals import context as context_access
from costspan.testing import FakeProviderServer
from costspan.testing.openai import OpenAIUsage, add_openai_routes

if sys.argv[1:] == ["keys-missing"]:
    context_access._BAGGAGE_KEY = None
    context_access._SPAN_KEY = None

provider = TracerProvider()
provider.add_span_processor(CostSpanProcessor())
exporter = InMemorySpanExporter()
provider.add_span_processor(SimpleSpanProcessor(exporter))
OpenAIInstrumentor().instrument(tracer_provider=provider)

messages = [{"role": "user", "content": "hi"}]
with FakeProviderServer() as server:
    add_openai_routes(server, usage=OpenAIUsage(prompt_tokens=1200, completion_tokens=400, cached_tokens=200))
    tracer = provider.get_tracer("http")

    def http_request(request: Any) -> None:
        # As an HTTP client instrumentation would: a span inside the LLM call's span.
        tracer.start_span("http request").end()

    client = OpenAI(
        base_url=server.base_url + "/v1",
        api_key="test",
        http_client=DefaultHttpxClient(event_hooks={"request": [http_request]}),
    )
    with costspan.task("triage", customer_id="cus_1", tracer_provider=provider):
        client.chat.completions.create(model="gpt-4o", messages=messages)
        with costspan.attribute(feature="summary"):
            chunks = list(client.chat.completions.create(model="gpt-4o", messages=messages, stream=True))

names = {span.context.span_id: span.name for span in exporter.get_finished_spans()}


VARIES = (A.TASK_ID, "server.port")  # from one process to the next


def shown(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


spans = [
    {
        "name": span.name,
        "parent": names.get(span.parent.span_id) if span.parent else None,
        "attributes": {
            key: "<varies>" if key in VARIES else shown(value) for key, value in span.attributes.items()
        },
    }
    for span in exporter.get_finished_spans()
]
print(
    json.dumps(
        {
            "runtime": type(context_api._RUNTIME_CONTEXT).__name__,
            "fast_context": context_access._CONTEXT_VAR is not None,
            "chunks": len(chunks),
            "spans": spans,
        }
    )
)
