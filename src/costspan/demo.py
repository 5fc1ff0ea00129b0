"""An offline multi-agent demo: `python -m costspan.demo` prints a priced cost tree.

No API keys, no servers, no network. LLM spans are made the way an instrumentor makes them (a
CLIENT span per call with GenAI semantic-convention attributes) with fixed token counts, so the
printed totals are the same on every run. The task: enrich a sales lead.

```
lead-enrichment                      task, customer cus_8821, feature lead-gen
├─ invoke_agent company-research     gpt-4o (openai) + clearbit.enrich tool ($0.10 rate-card override)
├─ invoke_agent person-research      gpt-4o-mini plan, then 3 contacts enriched in parallel threads
└─ invoke_agent summariser           claude-sonnet-4-6 (anthropic), with prompt caching
```
"""

from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor
from typing import TextIO

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Tracer

import costspan
from costspan import attributes as attrs
from costspan.exporters import ConsoleCostTreeExporter

RATE_CARD_OVERRIDES = {"tools": {"clearbit.enrich": 0.10}}
CONTACTS = ("ceo@acme.example", "cto@acme.example", "vp-sales@acme.example")


def fake_llm_call(
    tracer: Tracer,
    provider: str,
    model: str,
    input_tokens: int,
    output_tokens: int,
    cache_read: int = 0,
    cache_write: int = 0,
) -> None:
    """One chat call as an instrumentor records it; `input_tokens` includes cached tokens."""
    request = {
        attrs.GEN_AI_OPERATION_NAME: "chat",
        attrs.GEN_AI_PROVIDER_NAME: provider,
        attrs.GEN_AI_REQUEST_MODEL: model,
    }
    with tracer.start_as_current_span(f"chat {model}", kind=SpanKind.CLIENT, attributes=request) as span:
        # ... the request would go out here; the usage comes back with the response.
        response: dict[str, str | int] = {
            attrs.GEN_AI_RESPONSE_MODEL: model,
            attrs.GEN_AI_USAGE_INPUT_TOKENS: input_tokens,
            attrs.GEN_AI_USAGE_OUTPUT_TOKENS: output_tokens,
        }
        if cache_read:
            response[attrs.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = cache_read
        if cache_write:
            response[attrs.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS] = cache_write
        span.set_attributes(response)


def _enrich_contact(tracer: Tracer, provider: TracerProvider, contact: str) -> None:
    with costspan.step(f"enrich {contact}", tracer_provider=provider):
        fake_llm_call(tracer, "openai", "gpt-4o-mini", 3200, 450, cache_read=2048)


def run_task(provider: TracerProvider) -> None:
    """The lead-enrichment task, traced through `provider`."""
    tracer = provider.get_tracer("costspan.demo")
    with costspan.task(
        "lead-enrichment", customer_id="cus_8821", feature="lead-gen", tracer_provider=provider
    ):
        with costspan.agent("company-research", tracer_provider=provider):
            fake_llm_call(tracer, "openai", "gpt-4o", 2480, 514, cache_read=1024)
            with costspan.tool("clearbit.enrich", tracer_provider=provider):
                pass  # the enrichment API call; priced per call by the rate card

        with costspan.agent("person-research", tracer_provider=provider):
            with costspan.step("plan", tracer_provider=provider):
                fake_llm_call(tracer, "openai", "gpt-4o-mini", 1800, 220)
            # Fan out: OTel context (parent span, baggage) lives in contextvars, which threads do not
            # inherit; run each worker in a copy of the caller's context. One copy per worker: a
            # Context cannot be entered by two threads at once.
            with ThreadPoolExecutor(max_workers=len(CONTACTS)) as pool:
                futures = [
                    pool.submit(contextvars.copy_context().run, _enrich_contact, tracer, provider, contact)
                    for contact in CONTACTS
                ]
                for future in futures:
                    future.result()

        with costspan.agent("summariser", tracer_provider=provider):
            fake_llm_call(
                tracer, "anthropic", "claude-sonnet-4-6", 6000, 900, cache_read=4000, cache_write=1500
            )


def run(out: TextIO | None = None) -> None:
    """Run the demo on a private TracerProvider, printing the cost tree to `out` (default stdout)."""
    provider = TracerProvider()
    rate_card = costspan.RateCard.default().with_overrides(RATE_CARD_OVERRIDES)
    provider.add_span_processor(costspan.CostSpanProcessor(rate_card=rate_card))
    provider.add_span_processor(SimpleSpanProcessor(ConsoleCostTreeExporter(out)))
    try:
        run_task(provider)
    finally:
        provider.shutdown()


def main() -> int:
    run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
