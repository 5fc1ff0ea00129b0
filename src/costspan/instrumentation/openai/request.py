"""Reading a call's request: server, provider (OpenAI or Azure) and request parameters from the
client and the kwargs; for a chat stream, asking the API for usage.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from costspan.instrumentation._call import FAULTS, CallSpan, Instrumentation
from costspan.instrumentation._client_facts import ClientFacts
from costspan.instrumentation.openai.patches import (
    CHAT,
    EMBEDDINGS,
    OPERATION_CHAT,
    OPERATION_EMBEDDINGS,
    RESPONSES,
    _sdk,
)

PROVIDER_OPENAI = "openai"
PROVIDER_AZURE = "azure.ai.openai"

# Request field -> attribute, per API.
_NUMERIC_REQUEST = {
    CHAT: {
        "max_completion_tokens": "gen_ai.request.max_tokens",
        "max_tokens": "gen_ai.request.max_tokens",
        "temperature": "gen_ai.request.temperature",
        "top_p": "gen_ai.request.top_p",
        "frequency_penalty": "gen_ai.request.frequency_penalty",
        "presence_penalty": "gen_ai.request.presence_penalty",
        "seed": "gen_ai.request.seed",
        "n": "gen_ai.request.choice.count",
    },
    RESPONSES: {
        "max_output_tokens": "gen_ai.request.max_tokens",
        "temperature": "gen_ai.request.temperature",
        "top_p": "gen_ai.request.top_p",
    },
    EMBEDDINGS: {"dimensions": "gen_ai.embeddings.dimension.count"},
}
# Deprecated fields that give way to their replacement when a request sends both.
_FALLBACK_FIELDS = frozenset({"max_tokens"})
_NUMBER_TYPES = frozenset((int, float))


def _server_attributes(client: Any) -> tuple[dict[str, Any], str | None]:
    base_url = getattr(client, "base_url", None)
    if base_url is None:
        return {}, None
    parts = urlsplit(str(base_url))
    if not parts.hostname:
        return {}, None
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    return {"server.address": parts.hostname, "server.port": port}, parts.hostname


def _is_azure(client: Any, host: str | None) -> bool:
    if host and (host.endswith(".openai.azure.com") or host.endswith(".cognitiveservices.azure.com")):
        return True
    try:
        return isinstance(client, _sdk().azure_clients)
    except Exception:
        return False


def _derive_facts(client: Any, base_url: Any) -> tuple[dict[str, Any], str]:
    # `urlsplit(str(base_url))` and the Azure check cost ~50k instructions: once per base URL.
    server, host = _server_attributes(client)
    return server, PROVIDER_AZURE if _is_azure(client, host) else PROVIDER_OPENAI


_CLIENT_FACTS = ClientFacts(_derive_facts)


def _start(state: Instrumentation, instance: Any, api: str, kwargs: dict[str, Any]) -> CallSpan | None:
    """The call's span, or None if it could not be started (the SDK call then runs unobserved)."""
    try:
        request, provider = _CLIENT_FACTS.of(getattr(instance, "_client", None))
        numeric = _NUMERIC_REQUEST[api]
        for field in kwargs:  # a few keys: cheaper than looking up every field the API has
            key = numeric.get(field)
            if key is not None:
                value = kwargs[field]
                if (
                    type(value) in _NUMBER_TYPES  # int or float, checked inline; not bool
                    or (isinstance(value, int | float) and not isinstance(value, bool))  # e.g. numpy
                ) and (field not in _FALLBACK_FIELDS or key not in request):
                    request[key] = value
        if api == CHAT and "stop" in kwargs:
            stop = kwargs["stop"]
            if isinstance(stop, str):
                stop = [stop]
            if isinstance(stop, list | tuple) and stop and all(isinstance(s, str) for s in stop):
                request["gen_ai.request.stop_sequences"] = tuple(stop)
        model = kwargs.get("model")
        operation = OPERATION_EMBEDDINGS if api == EMBEDDINGS else OPERATION_CHAT
        return CallSpan(
            state, operation, provider, model if isinstance(model, str) and model else None, request
        )
    except Exception as exc:
        FAULTS.record("openai call start", exc)
        return None


def _is_given(value: Any) -> bool:
    """Not None and not the SDK's `omit` / `not_given` sentinels."""
    if value is None:
        return False
    try:
        return not isinstance(value, _sdk().not_given)
    except Exception:
        return True


# Azure OpenAI rejects `stream_options` before this API version.
_AZURE_STREAM_OPTIONS_SINCE = "2024-09-01"


def _request_usage(kwargs: dict[str, Any], instance: Any) -> tuple[dict[str, Any], bool]:
    """For a chat stream: kwargs that ask for usage, and whether costspan added that request."""
    try:
        api_version = getattr(getattr(instance, "_client", None), "_api_version", None)
        if isinstance(api_version, str) and api_version[:10] < _AZURE_STREAM_OPTIONS_SINCE:
            return kwargs, False  # an old Azure API version: the request would fail
        options = kwargs.get("stream_options")
        if _is_given(options):
            if not isinstance(options, dict) or options.get("include_usage"):
                return kwargs, False
            return {**kwargs, "stream_options": {**options, "include_usage": True}}, True
        # Sent as extra_body, which the SDK merges into the JSON as it is: a `stream_options` kwarg
        # goes through the SDK's TypedDict transform (~140k instructions per call).
        extra_body = kwargs.get("extra_body")
        if not _is_given(extra_body):
            extra_body = {}
        elif not isinstance(extra_body, dict) or "stream_options" in extra_body:
            return kwargs, False  # the caller set the body's stream_options themselves
        return {**kwargs, "extra_body": {**extra_body, "stream_options": {"include_usage": True}}}, True
    except Exception as exc:
        FAULTS.record("openai stream options", exc)
        return kwargs, False
