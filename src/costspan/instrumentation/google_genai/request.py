"""Reading a call's request: server, provider (Gemini API or Vertex AI), model and config
parameters; whether automatic function calling (AFC) can make more than one request.
"""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import urlsplit

from costspan.instrumentation._call import FAULTS, INSIDE_TRACED_CALL, CallSpan, Instrumentation
from costspan.instrumentation._values import get_field as _get
from costspan.instrumentation.google_genai.patches import OPERATION_GENERATE

PROVIDER_GEMINI = "gcp.gemini"
PROVIDER_VERTEX_AI = "gcp.vertex_ai"

_CONFIG_ATTRIBUTES = (
    ("max_output_tokens", "gen_ai.request.max_tokens"),
    ("temperature", "gen_ai.request.temperature"),
    ("top_p", "gen_ai.request.top_p"),
    ("top_k", "gen_ai.request.top_k"),
    ("candidate_count", "gen_ai.request.choice.count"),
    ("seed", "gen_ai.request.seed"),
    ("presence_penalty", "gen_ai.request.presence_penalty"),
    ("frequency_penalty", "gen_ai.request.frequency_penalty"),
)


def _strip_model(model: Any) -> str | None:
    if not isinstance(model, str) or not model:
        return None
    if "models/" in model:  # models/x, publishers/google/models/x, projects/.../models/x
        model = model.rsplit("models/", 1)[1]
    return model or None


@functools.lru_cache(maxsize=64)
def _server_of_url(base_url: str) -> tuple[tuple[str, Any], ...]:
    """`urlsplit` costs ~20k instructions: done once per base URL."""
    parts = urlsplit(base_url)
    if not parts.hostname:
        return ()
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    return (("server.address", parts.hostname), ("server.port", port))


def _start(state: Instrumentation, instance: Any, operation: str, kwargs: dict[str, Any]) -> CallSpan | None:
    """The call's span, or None if it could not be started (the SDK call then runs unobserved) or
    is part of a call traced above the SDK (see `INSIDE_TRACED_CALL`)."""
    if INSIDE_TRACED_CALL.get():
        return None
    try:
        api_client = getattr(instance, "_api_client", None)
        options = getattr(api_client, "_http_options", None)
        base_url = options.get("base_url") if type(options) is dict else getattr(options, "base_url", None)
        request: dict[str, Any] = dict(_server_of_url(base_url)) if type(base_url) is str and base_url else {}
        config = kwargs.get("config")
        if config is None:
            pass
        elif operation == OPERATION_GENERATE:
            for field, key in _CONFIG_ATTRIBUTES:
                value = _get(config, field)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    request[key] = value
            stop = _get(config, "stop_sequences")
            if isinstance(stop, (list, tuple)) and all(isinstance(s, str) for s in stop) and stop:
                request["gen_ai.request.stop_sequences"] = tuple(stop)
        else:
            dims = _get(config, "output_dimensionality")
            if isinstance(dims, int) and not isinstance(dims, bool):
                request["gen_ai.embeddings.dimension.count"] = dims
        provider = PROVIDER_VERTEX_AI if getattr(api_client, "vertexai", False) else PROVIDER_GEMINI
        model = kwargs.get("model")
        if type(model) is not str or not model or "models/" in model:
            model = _strip_model(model)
        return CallSpan(state, operation, provider, model, request)
    except Exception as exc:
        FAULTS.record("google-genai call start", exc)
        return None


def _afc_possible(kwargs: dict[str, Any]) -> bool:
    """AFC runs only with tools in the config; a call without them makes one request (continuation
    hops are summed into the response by the SDK)."""
    try:
        return bool(_get(kwargs.get("config"), "tools"))
    except Exception as exc:
        FAULTS.record("google-genai request usage", exc)
        return True
