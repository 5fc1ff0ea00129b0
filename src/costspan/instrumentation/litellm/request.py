"""Reading a call's request: model and provider as LiteLLM resolves them, server and request
parameters; positional arguments by name; budgets may swap the model; for a stream, asking
LiteLLM for usage.
"""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import urlsplit

from costspan.instrumentation._call import FAULTS, CallSpan, Instrumentation
from costspan.instrumentation.litellm.patches import OPERATION_CHAT, OPERATION_EMBEDDINGS

# LiteLLM's provider names that the GenAI conventions name otherwise; any other is kept as it is.
_PROVIDER_NAMES = {
    "azure": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "bedrock": "aws.bedrock",
    "vertex_ai": "gcp.vertex_ai",
    "vertex_ai_beta": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "mistral": "mistral_ai",
    "xai": "x_ai",
    "watsonx": "ibm.watsonx.ai",
}
_UNKNOWN_PROVIDER = "litellm"

_NUMERIC_REQUEST = {
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "max_tokens": "gen_ai.request.max_tokens",
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "seed": "gen_ai.request.seed",
    "n": "gen_ai.request.choice.count",
    "dimensions": "gen_ai.embeddings.dimension.count",
}
_FALLBACK_FIELDS = frozenset({"max_tokens"})  # gives way to max_completion_tokens when both are sent


@functools.lru_cache(maxsize=256)
def _route(model: str, custom_provider: str | None, api_base: str | None) -> tuple[str, str, tuple[Any, ...]]:
    """(model without its provider prefix, GenAI provider name, server attributes) of a request,
    as LiteLLM resolves them (`get_llm_provider`); a model LiteLLM cannot place keeps its name."""
    import litellm

    try:
        bare, provider, _key, default_base = litellm.get_llm_provider(
            model=model, custom_llm_provider=custom_provider, api_base=api_base
        )
    except Exception:
        bare, provider, default_base = model, custom_provider or _UNKNOWN_PROVIDER, None
    server: tuple[Any, ...] = ()
    base = api_base or default_base
    if isinstance(base, str) and base:
        parts = urlsplit(base)
        if parts.hostname:
            port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
            server = (("server.address", parts.hostname), ("server.port", port))
    name = provider if isinstance(provider, str) and provider else _UNKNOWN_PROVIDER
    return (bare if isinstance(bare, str) and bare else model), _PROVIDER_NAMES.get(name, name), server


def _start(state: Instrumentation, operation: str, kwargs: dict[str, Any]) -> CallSpan | None:
    """The call's span, or None if it could not be started (the call then runs unobserved) or sends
    no request (`mock_response`: LiteLLM answers itself, nothing is billed)."""
    try:
        model = kwargs.get("model")
        if not isinstance(model, str) or not model or kwargs.get("mock_response") is not None:
            return None
        custom = kwargs.get("custom_llm_provider")
        base = kwargs.get("api_base") or kwargs.get("base_url")
        bare, provider, server = _route(
            model, custom if isinstance(custom, str) else None, base if isinstance(base, str) else None
        )
        request: dict[str, Any] = dict(server)
        for field, value in kwargs.items():
            key = _NUMERIC_REQUEST.get(field)
            if (
                key is not None
                and isinstance(value, int | float)
                and not isinstance(value, bool)
                and (field not in _FALLBACK_FIELDS or key not in request)
            ):
                request[key] = value
        stop = kwargs.get("stop")
        if isinstance(stop, str):
            stop = [stop]
        if isinstance(stop, list | tuple) and stop and all(isinstance(s, str) for s in stop):
            request["gen_ai.request.stop_sequences"] = tuple(stop)
        return CallSpan(state, operation, provider, bare, request)
    except Exception as exc:
        FAULTS.record("litellm call start", exc)
        return None


def _admit(call: CallSpan, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Budgets (`call.admit`): may raise BudgetExceeded; a downgrade names the cheaper model with
    the provider prefix the request used (`openai/gpt-4o` -> `openai/gpt-4o-mini`)."""
    model = kwargs.get("model")
    admitted = call.admit(kwargs)
    new_model = admitted.get("model")
    if (
        admitted is not kwargs
        and new_model != model
        and isinstance(model, str)
        and isinstance(new_model, str)
    ):
        bare = call.attributes.get("costspan.budget.downgraded_from")
        if isinstance(bare, str) and model.endswith("/" + bare) and "/" not in new_model:
            admitted["model"] = model[: -len(bare)] + new_model
    return admitted


def _ask_for_stream_usage(kwargs: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """For a stream: kwargs that ask for usage, and whether costspan added that request."""
    options = kwargs.get("stream_options")
    if options is None:
        return {**kwargs, "stream_options": {"include_usage": True}}, True
    if isinstance(options, dict) and options.get("include_usage") is not True:
        return {**kwargs, "stream_options": {**options, "include_usage": True}}, True
    return kwargs, False


# The positional parameters of `completion` / `acompletion` and `embedding` / `aembedding`.
_POSITIONAL = {OPERATION_CHAT: ("model", "messages"), OPERATION_EMBEDDINGS: ("model", "input")}


def _by_name(operation: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any] | None:
    """`completion("gpt-4o", messages)` as keywords; None for more positional arguments than that
    (the call then runs untraced, as it was made)."""
    names = _POSITIONAL[operation]
    if len(args) > len(names) or any(name in kwargs for name in names[: len(args)]):
        return None
    return {**dict(zip(names, args, strict=False)), **kwargs}
