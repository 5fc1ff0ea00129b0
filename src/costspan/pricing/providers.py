"""Map OpenTelemetry GenAI provider names (current and legacy) to genai-prices provider ids."""

from __future__ import annotations

# gen_ai.provider.name (semconv >= 1.37) and legacy gen_ai.system values, plus common prefixes.
_PROVIDER_IDS: dict[str, str] = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "gemini": "google",
    "vertex_ai": "google",
    "vertex": "google",
    "google": "google",
    "aws.bedrock": "aws",
    "bedrock": "aws",
    "aws": "aws",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "az.ai.openai": "azure",
    "az.ai.inference": "azure",
    "azure": "azure",
    "x_ai": "x-ai",
    "xai": "x-ai",
    "x-ai": "x-ai",
    "mistral_ai": "mistral",
    "mistralai": "mistral",
    "mistral": "mistral",
    "deepseek": "deepseek",
    "groq": "groq",
    "perplexity": "perplexity",
    "cohere": "cohere",
    "together_ai": "together",
    "together": "together",
    "fireworks": "fireworks",
    "openrouter": "openrouter",
}

# Known to OpenTelemetry but absent from genai-prices: let the model name pick the provider.
_UNPRICED_PROVIDERS = frozenset({"ibm.watsonx.ai", "watsonx"})


def map_provider(provider: str | None) -> str | None:
    """genai-prices provider id for a span's provider string.

    Unknown strings are returned lower-cased so genai-prices' own provider matching can try them;
    None (and providers genai-prices has no prices for) give None: find the provider from the model.
    """
    if provider is None:
        return None
    key = provider.strip().lower()
    if not key or key in _UNPRICED_PROVIDERS:
        return None
    return _PROVIDER_IDS.get(key, key)
