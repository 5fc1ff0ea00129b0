"""The shared scenarios (`conformance.py`) for the openai, anthropic and google-genai instrumentors."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from conformance import MESSAGES, MTOK, PROMPT, SCENARIOS, Provider
from costspan.testing import FakeProviderServer
from costspan.testing.anthropic import AnthropicUsage, add_anthropic_routes, anthropic_error
from costspan.testing.google_genai import GeminiUsage, add_gemini_routes, gemini_error
from costspan.testing.openai import OpenAIUsage, add_openai_routes, openai_error


def _openai() -> Provider:
    from openai import OpenAI

    from costspan.instrumentation.openai import OpenAIInstrumentor

    def chat(client: Any) -> Any:
        return client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    def stream(client: Any) -> list[Any]:
        return list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))

    # gpt-4o: $2.50 input, $1.25 cached input, $10 output (incl. reasoning) per million tokens.
    return Provider(
        name="openai",
        instrumentor=OpenAIInstrumentor,
        add_routes=lambda s: add_openai_routes(
            s,
            usage=OpenAIUsage(
                prompt_tokens=1200, completion_tokens=400, cached_tokens=200, reasoning_tokens=100
            ),
        ),
        client=lambda s: OpenAI(base_url=s.base_url + "/v1", api_key="test", max_retries=0),
        chat=chat,
        stream=stream,
        failure=openai_error(400, "bad request"),
        error_type="400",
        provider="openai",
        operation="chat",
        input_tokens=1200,
        output_tokens=400,
        cost=(1000 * Decimal("2.50") + 200 * Decimal("1.25") + 400 * Decimal(10)) / MTOK,
    )


def _anthropic() -> Provider:
    from anthropic import Anthropic

    from costspan.instrumentation.anthropic import AnthropicInstrumentor

    def chat(client: Any) -> Any:
        return client.messages.create(model="claude-haiku-4-5", max_tokens=256, messages=MESSAGES)

    def stream(client: Any) -> list[Any]:
        return list(
            client.messages.create(model="claude-haiku-4-5", max_tokens=256, messages=MESSAGES, stream=True)
        )

    # claude-haiku-4-5: $1 input, $0.10 cache read, $1.25 cache write (5 min), $5 output per million
    # tokens; Anthropic's input_tokens exclude cache reads and writes, semconv's include them.
    return Provider(
        name="anthropic",
        instrumentor=AnthropicInstrumentor,
        add_routes=lambda s: add_anthropic_routes(
            s,
            usage=AnthropicUsage(
                input_tokens=1000,
                output_tokens=200,
                cache_creation_input_tokens=300,
                cache_read_input_tokens=400,
            ),
        ),
        client=lambda s: Anthropic(base_url=s.base_url, api_key="test", max_retries=0, open_telemetry=False),
        chat=chat,
        stream=stream,
        failure=anthropic_error(400, "bad request"),
        error_type="400",
        provider="anthropic",
        operation="chat",
        input_tokens=1700,
        output_tokens=200,
        cost=(1000 * Decimal(1) + 400 * Decimal("0.10") + 300 * Decimal("1.25") + 200 * Decimal(5)) / MTOK,
    )


def _google_genai() -> Provider:
    from google import genai
    from google.genai import types

    from costspan.instrumentation.google_genai import GoogleGenAIInstrumentor

    def chat(client: Any) -> Any:
        return client.models.generate_content(model="gemini-2.5-flash", contents=PROMPT)

    def stream(client: Any) -> list[Any]:
        return list(client.models.generate_content_stream(model="gemini-2.5-flash", contents=PROMPT))

    # gemini-2.5-flash: $0.30 input, $0.03 cached input, $2.50 output (incl. thinking) per million
    # tokens; semconv's output includes thinking.
    return Provider(
        name="google_genai",
        instrumentor=GoogleGenAIInstrumentor,
        add_routes=lambda s: add_gemini_routes(
            s,
            usage=GeminiUsage(
                prompt_tokens=1200, candidates_tokens=300, cached_tokens=200, thoughts_tokens=100
            ),
            model_version="gemini-2.5-flash",
        ),
        client=lambda s: genai.Client(api_key="test", http_options=types.HttpOptions(base_url=s.base_url)),
        chat=chat,
        stream=stream,
        failure=gemini_error(400, "bad request"),
        error_type="400",
        provider="gcp.gemini",
        operation="generate_content",
        input_tokens=1200,
        output_tokens=400,
        cost=(1000 * Decimal("0.30") + 200 * Decimal("0.03") + 400 * Decimal("2.50")) / MTOK,
    )


PROVIDERS: dict[str, tuple[str, Callable[[], Provider]]] = {
    "openai": ("openai", _openai),
    "anthropic": ("anthropic", _anthropic),
    "google_genai": ("google.genai", _google_genai),
}


@pytest.fixture(params=sorted(PROVIDERS))
def provider(request: pytest.FixtureRequest) -> Provider:
    sdk, build = PROVIDERS[request.param]
    pytest.importorskip(sdk)
    return build()


@pytest.fixture
def server(provider: Provider) -> Any:
    with FakeProviderServer() as s:
        provider.add_routes(s)
        yield s


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda f: f.__name__)
def test_scenario(scenario: Callable[..., None], provider: Provider, observed: Any, server: Any) -> None:
    scenario(provider, observed, server)
