"""Model-name normalisation and provider-name mapping."""

from __future__ import annotations

import pytest

from costspan.pricing import RateCard, map_provider, normalise
from costspan.pricing.normalise import candidates, provider_hint


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("gpt-4o", "gpt-4o"),
        ("GPT-4o", "gpt-4o"),
        ("openai/gpt-4o", "gpt-4o"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-20240806", "gpt-4o"),
        ("models/gemini-2.5-flash", "gemini-2.5-flash"),
        ("gemini-2.5-flash-001", "gemini-2.5-flash"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-3-5-sonnet@20240620", "claude-3-5-sonnet"),
        ("anthropic.claude-3-5-sonnet-20240620-v1:0", "claude-3-5-sonnet"),
        ("us.anthropic.claude-sonnet-4-20250514-v1:0", "claude-sonnet-4"),
        ("mistral-large-latest", "mistral-large"),
        ("anthropic/claude-3-5-sonnet-latest", "claude-3-5-sonnet"),
        ("  Gemini-2.5-Pro  ", "gemini-2.5-pro"),
        ("meta-llama/llama-3.3-70b", "meta-llama/llama-3.3-70b"),
    ],
)
def test_normalise(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


def test_candidates_go_from_raw_to_aggressive() -> None:
    assert candidates("anthropic.claude-3-5-sonnet-20240620-v1:0") == (
        "anthropic.claude-3-5-sonnet-20240620-v1:0",
        "claude-3-5-sonnet-20240620-v1:0",
        "claude-3-5-sonnet-20240620",
        "claude-3-5-sonnet",
    )
    assert candidates("gpt-4o") == ("gpt-4o",)


@pytest.mark.parametrize(
    ("raw", "hint"),
    [
        ("openai/gpt-4o", "openai"),
        ("anthropic.claude-3-haiku-20240307-v1:0", "anthropic"),
        ("gpt-4o", None),
        ("models/gemini-2.5-flash", None),
        ("google/gemini-2.5-flash", "google"),
    ],
)
def test_provider_hint(raw: str, hint: str | None) -> None:
    assert provider_hint(raw) == hint


@pytest.mark.parametrize(
    ("provider", "expected"),
    [
        ("openai", "openai"),
        ("anthropic", "anthropic"),
        ("gcp.gemini", "google"),
        ("gcp.vertex_ai", "google"),
        ("gcp.gen_ai", "google"),
        ("gemini", "google"),
        ("vertex_ai", "google"),
        ("aws.bedrock", "aws"),
        ("azure.ai.openai", "azure"),
        ("azure.ai.inference", "azure"),
        ("az.ai.inference", "azure"),
        ("x_ai", "x-ai"),
        ("mistral_ai", "mistral"),
        ("deepseek", "deepseek"),
        ("groq", "groq"),
        ("perplexity", "perplexity"),
        ("cohere", "cohere"),
        ("ibm.watsonx.ai", None),
        ("OpenAI", "openai"),
        ("something-else", "something-else"),
        (None, None),
    ],
)
def test_map_provider(provider: str | None, expected: str | None) -> None:
    assert map_provider(provider) == expected


@pytest.fixture(scope="module")
def card() -> RateCard:
    return RateCard.default()


def _usd(card: RateCard, provider: str | None, model: str) -> object:
    got = card.price(provider, model, input_tokens=1_000_000, output_tokens=1_000_000, start_time_ns=0)
    return None if got is None else got.total


@pytest.mark.parametrize(
    ("provider", "model", "same_as"),
    [
        (None, "openai/gpt-4o", ("openai", "gpt-4o")),
        ("openai", "GPT-4O", ("openai", "gpt-4o")),
        ("openai", "gpt-4o-20240806", ("openai", "gpt-4o-2024-08-06")),
        ("gcp.gemini", "models/gemini-2.5-flash", ("google", "gemini-2.5-flash")),
        ("gcp.vertex_ai", "gemini-2.5-flash-001", ("google", "gemini-2.5-flash")),
        ("gcp.vertex_ai", "claude-3-5-sonnet@20240620", ("anthropic", "claude-3-5-sonnet-20240620")),
        (None, "anthropic.claude-3-5-sonnet-20240620-v1:0", ("anthropic", "claude-3-5-sonnet")),
        ("azure.ai.openai", "gpt-4o", ("openai", "gpt-4o")),
        ("x_ai", "grok-3", ("x-ai", "grok-3")),
        ("ibm.watsonx.ai", "gpt-4o", ("openai", "gpt-4o")),
        ("mistral_ai", "mistral-large-latest", ("mistral", "mistral-large")),
    ],
)
def test_resolution_through_normalisation(
    card: RateCard, provider: str | None, model: str, same_as: tuple[str, str]
) -> None:
    expected = _usd(card, *same_as)
    assert expected is not None
    assert _usd(card, provider, model) == expected


def test_dated_snapshot_with_own_price_is_not_normalised_away(card: RateCard) -> None:
    # gpt-4o-2024-05-13 costs $5/$15, not gpt-4o's $2.50/$10.
    assert _usd(card, "openai", "gpt-4o-2024-05-13") != _usd(card, "openai", "gpt-4o")
