"""A framework-wrapped LLM call: one pydantic-ai agent run making one OpenAI chat request.

The agent (`OpenAIChatModel("gpt-4o")`, no tools) talks to the real `openai` SDK over an in-process
`httpx2.MockTransport` answering with the same canned chat completion as `llm_workloads` (2,480
input tokens, 1,024 cached, 514 output). Every run is `agent.run(...)` awaited on one event loop that
lives for the whole workload, so all the work is on the calling thread (callgrind's in-process count
sees it all).

Contenders:
- `bare`: pydantic-ai, no tracing at all.
- `pydantic_ai`: pydantic-ai's own instrumentation (`InstrumentationSettings` on a TracerProvider
  with a BatchSpanProcessor): its `invoke_agent` and `chat gpt-4o` spans.
- `costspan`: the same plus `costspan.configure(tracer_provider=...)`: costspan's OpenAI span under
  pydantic-ai's `chat` span, the CostSpanProcessor pricing it, rolling it up and matching the two
  (pydantic-ai's span is marked `duplicate`). (costspan) - (pydantic_ai) is what costspan adds to
  an instrumented framework call, matching included.
- `processor`: pydantic-ai's instrumentation plus `costspan.configure(instrument=False)`: the
  CostSpanProcessor alone, pricing pydantic-ai's `chat` span (no costspan span, nothing to match).
  Splits the row above: what the processor does with the framework's spans, and what costspan's
  own call span and its matching add on top.

No MeterProvider anywhere (pydantic-ai and costspan both get the global no-op one).

    python benchmarks/callgrind.py framework_workloads:pydantic_ai_chat:costspan 10 40
    python benchmarks/bench_frameworks.py        # all three, several hash seeds, a markdown table
"""

from __future__ import annotations

import asyncio
import functools
import gc
from collections.abc import Callable
from typing import Any

from llm_workloads import MESSAGES, MODEL, _openai_handler
from opentelemetry.sdk.trace import TracerProvider
from span_workloads import Workload, batch_processor, queue_of

CONTENDERS = ("bare", "pydantic_ai", "costspan", "processor")
PROMPT = str(MESSAGES[0]["content"])


class FrameworkSetup:
    """One contender: the agent, and the TracerProvider its spans go to (None for `bare`)."""

    def __init__(self, contender: str) -> None:
        if contender not in CONTENDERS:
            raise ValueError(f"unknown contender {contender!r}; one of {CONTENDERS}")
        import httpx2
        import openai
        from pydantic_ai import Agent
        from pydantic_ai.models.instrumented import InstrumentationSettings
        from pydantic_ai.models.openai import OpenAIChatModel
        from pydantic_ai.providers.openai import OpenAIProvider

        self.contender = contender
        self.tracer_provider: TracerProvider | None = None
        self.drain: Callable[[], None] = lambda: None
        instrument: Any = False
        if contender != "bare":
            self.tracer_provider = TracerProvider()
            if contender in ("costspan", "processor"):
                import costspan

                # Adds the CostSpanProcessor first and (costspan) instruments the installed SDKs.
                costspan.configure(tracer_provider=self.tracer_provider, instrument=contender == "costspan")
            batch = batch_processor()
            self.tracer_provider.add_span_processor(batch)
            self.drain = queue_of(batch).clear
            instrument = InstrumentationSettings(tracer_provider=self.tracer_provider)
        client = openai.AsyncOpenAI(
            api_key="bench",
            base_url="https://api.openai.com/v1",
            http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(_openai_handler)),
        )
        model = OpenAIChatModel(MODEL, provider=OpenAIProvider(openai_client=client))
        self.agent: Any = Agent(model, name="bench_agent")
        self.agent.instrument = instrument  # per agent (not `Agent.instrument_all`): nothing global
        self.loop = asyncio.new_event_loop()

    def run(self, n: int) -> None:
        """`n` agent runs, one chat request each; each run's spans leave the export queue after it."""

        async def runs() -> None:
            for _ in range(n):
                result = await self.agent.run(PROMPT)
                assert result.output == "The printer is on fire."
                self.drain()

        self.loop.run_until_complete(runs())


def framework_workload(contender: str) -> Workload:
    setup = FrameworkSetup(contender)
    setup.run(20)  # warm-up: lazy imports, pricing caches, matching's first framework span
    gc.collect()
    gc.freeze()  # as llm_workloads: the set-up heap stays out of the measured collections
    return setup.run


WORKLOADS: dict[str, Callable[[], Workload]] = {
    f"pydantic_ai_chat:{contender}": functools.partial(framework_workload, contender)
    for contender in CONTENDERS
}
