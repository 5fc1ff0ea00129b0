"""What an instrumented LLM call costs once its spans are exported: OTLP/HTTP to a real collector.

The same in-process SDK calls as `llm_workloads` (mock transport, canned bodies), with each
contender's spans sent by the SDK's real `OTLPSpanExporter` (http/protobuf) through a
`BatchSpanProcessor` in batches of 64 to the collector at `$BENCH_OTLP_ENDPOINT` (rotel, blackhole
exporter, started by `bench_export.py`). The batch thread wakes only when 64 spans are queued (and at
exit), so the count does not depend on wall time.

Calls:
- `chat`: one OpenAI chat completion.
- `stream`: one OpenAI chat stream whose caller asks for usage (every contender gets the same
  events and can report tokens: like for like).
- `agent_task`: a task > 3 agents > 4 chat calls each (16 spans). costspan's task/agent spans carry
  attribution (customer, task, task id, feature, agent); the other contenders' app spans are the
  same tree made with the plain OpenTelemetry API (`invoke_agent` spans with `gen_ai.agent.name`).

Contenders: `bare` (no instrumentation, nothing exported), `costspan` (its instrumentor and
CostSpanProcessor), `openai_v2`, `openllmetry`, `openlit` (each from its own virtualenv).

With `BENCH_COUNT_BYTES=1` the exporter also adds up the size of each OTLP request body it sends
(the protobuf, uncompressed) and prints it at exit: `otlp_bytes=N spans=M` on stderr.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from llm_workloads import MESSAGES, MODEL, openai_client
from span_workloads import Workload

BATCH = 64
WARM_UP = 4
CALLS: dict[str, Callable[[Any, Any], None]] = {}
CONTENDERS = ("bare", "costspan", "openai_v2", "openllmetry", "openlit")
COUNT_BYTES = os.environ.get("BENCH_COUNT_BYTES") == "1"


def _chat(client: Any, _tracer: Any) -> None:
    client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=600)


def _stream(client: Any, _tracer: Any) -> None:
    for _ in client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=600, stream=True, stream_options={"include_usage": True}
    ):
        pass


AGENTS = ("company-research", "person-research", "writer")
CALLS_PER_AGENT = 4


def _costspan_task(client: Any, tracer_provider: Any) -> None:
    import costspan

    with costspan.task(
        "lead-enrichment", customer_id="cus_8821", feature="lead-gen", tracer_provider=tracer_provider
    ):
        for name in AGENTS:
            with costspan.agent(name, tracer_provider=tracer_provider):
                for _ in range(CALLS_PER_AGENT):
                    _chat(client, None)


def _plain_task(client: Any, tracer_provider: Any) -> None:
    tracer = tracer_provider.get_tracer("app") if tracer_provider is not None else None
    if tracer is None:  # bare: the same calls, no spans
        for _ in range(len(AGENTS) * CALLS_PER_AGENT):
            _chat(client, None)
        return
    with tracer.start_as_current_span("lead-enrichment"):
        for name in AGENTS:
            with tracer.start_as_current_span(
                f"invoke_agent {name}",
                attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": name},
            ):
                for _ in range(CALLS_PER_AGENT):
                    _chat(client, None)


CALLS = {"chat": _chat, "stream": _stream}


class _ByteCount:
    total = 0
    spans = 0


def _print_byte_count() -> None:
    print(f"otlp_bytes={_ByteCount.total} spans={_ByteCount.spans}", file=sys.stderr)


if COUNT_BYTES:
    # Registered at import, before any TracerProvider: atexit runs last-in first-out, so this prints
    # after the providers' own exit handlers have flushed the last partial batch.
    atexit.register(_print_byte_count)


def _exporter(endpoint: str) -> Any:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    if not COUNT_BYTES:
        return OTLPSpanExporter(endpoint=endpoint)

    class CountingExporter(OTLPSpanExporter):  # type: ignore[misc]
        def export(self, spans: Sequence[Any]) -> Any:
            _ByteCount.total += len(encode_spans(spans).SerializeToString())
            _ByteCount.spans += len(spans)
            return super().export(spans)

    return CountingExporter(endpoint=endpoint)


def _instrument(contender: str, tracer_provider: Any) -> None:
    if contender == "costspan":
        from costspan.instrumentation.openai import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=tracer_provider)
    elif contender == "openai_v2":
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=tracer_provider)
    elif contender == "openllmetry":
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor

        OpenAIInstrumentor().instrument(tracer_provider=tracer_provider)
    elif contender == "openlit":
        import openlit

        # Its defaults otherwise: no metrics (no MeterProvider here for anyone), no content capture
        # (costspan records none), only the openai instrumentation.
        openlit.init(
            tracer=tracer_provider.get_tracer("openlit"),
            disable_metrics=True,
            capture_message_content=False,
            disabled_instrumentors=[],
            collect_gpu_stats=False,
        )


def export_workload(call: str, contender: str) -> Workload:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    tracer_provider = None
    if contender != "bare":
        tracer_provider = TracerProvider()
        if contender == "costspan":
            from costspan import CostSpanProcessor

            tracer_provider.add_span_processor(CostSpanProcessor())
        endpoint = os.environ["BENCH_OTLP_ENDPOINT"].rstrip("/") + "/v1/traces"
        tracer_provider.add_span_processor(
            BatchSpanProcessor(
                _exporter(endpoint),
                max_queue_size=1 << 16,
                max_export_batch_size=BATCH,
                schedule_delay_millis=1e9,
            )
        )
        trace.set_tracer_provider(tracer_provider)
        _instrument(contender, tracer_provider)
    client = openai_client()
    if call == "agent_task":
        task = _costspan_task if contender == "costspan" else _plain_task

        def one(c: Any) -> None:
            task(c, tracer_provider)
    else:
        do_call = CALLS[call]

        def one(c: Any) -> None:
            do_call(c, None)

    def run(n: int) -> None:
        for _ in range(n):
            one(client)

    run(WARM_UP)  # lazy imports, pricing caches, the exporter's first connection
    gc.collect()
    gc.freeze()
    return run


WORKLOADS: dict[str, Callable[[], Workload]] = {
    f"{call}:{contender}": (lambda c=call, k=contender: export_workload(c, k))
    for call in ("chat", "stream", "agent_task")
    for contender in CONTENDERS
}
