"""LLM spans made the way an instrumentor makes them (CLIENT span, GenAI semconv attributes)."""

from __future__ import annotations

from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer


def llm_call(
    tracer: Tracer,
    model: str,
    input_tokens: int | None,
    output_tokens: int | None,
    *,
    provider: str = "openai",
    cache_read: int = 0,
    cache_write: int = 0,
    reasoning: int = 0,
    name: str | None = None,
    error: str | None = None,
) -> None:
    attributes: dict[str, object] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
    }
    if input_tokens is not None:
        attributes["gen_ai.usage.input_tokens"] = input_tokens
    if output_tokens is not None:
        attributes["gen_ai.usage.output_tokens"] = output_tokens
    if cache_read:
        attributes["gen_ai.usage.cache_read.input_tokens"] = cache_read
    if cache_write:
        attributes["gen_ai.usage.cache_creation.input_tokens"] = cache_write
    if reasoning:
        attributes["gen_ai.usage.reasoning.output_tokens"] = reasoning
    span = tracer.start_span(name or f"chat {model}", kind=SpanKind.CLIENT, attributes=attributes)
    if error:
        span.set_attribute("error.type", error)
        span.set_status(Status(StatusCode.ERROR))
    span.end()
