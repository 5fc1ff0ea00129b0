"""Reading a call's request: whether it is a Messages call, server, provider (Anthropic, Bedrock or
Vertex AI) and request parameters; budgets may swap the request's model.
"""

from __future__ import annotations

from typing import Any

from costspan.instrumentation._call import FAULTS, INSIDE_TRACED_CALL, CallSpan, Instrumentation
from costspan.instrumentation._client_facts import ClientFacts
from costspan.instrumentation._values import get_field as _get
from costspan.instrumentation._values import non_empty_str as _str
from costspan.instrumentation.anthropic.patches import (
    _MESSAGES_PATHS,
    _MESSAGES_SPAN_NAME,
    OPERATION_CHAT,
    _sdk,
)

PROVIDER_ANTHROPIC = "anthropic"
PROVIDER_BEDROCK = "aws.bedrock"
PROVIDER_VERTEX_AI = "gcp.vertex_ai"

_NUMERIC_REQUEST = (
    ("max_tokens", "gen_ai.request.max_tokens"),
    ("temperature", "gen_ai.request.temperature"),
    ("top_p", "gen_ai.request.top_p"),
    ("top_k", "gen_ai.request.top_k"),
)


def _is_messages_call(options: Any) -> bool:
    """A `POST /v1/messages` (stable or beta): named by the SDK's span name where it has one."""
    span_name = getattr(options, "span_name", None)
    if span_name is not None:
        return bool(span_name == _MESSAGES_SPAN_NAME)
    url = getattr(options, "url", None)
    method = getattr(options, "method", None)
    return (
        isinstance(url, str)
        and isinstance(method, str)
        and method.lower() == "post"
        and url.split("?", 1)[0] in _MESSAGES_PATHS
    )


def _provider(client: Any) -> str:
    """The client's GenAI provider: the SDK's own name for it (2.x), else by client class."""
    name = getattr(type(client), "_gen_ai_provider_name", None)
    if isinstance(name, str) and name:
        return name
    try:
        sdk = _sdk()
        if isinstance(client, sdk.bedrock_clients):
            return PROVIDER_BEDROCK
        if isinstance(client, sdk.vertex_clients):
            return PROVIDER_VERTEX_AI
    except Exception as exc:
        FAULTS.record("anthropic provider", exc)
    return PROVIDER_ANTHROPIC


def _server_attributes(base_url: Any) -> dict[str, Any]:
    host = getattr(base_url, "host", None)
    if not isinstance(host, str) or not host:
        return {}
    port = getattr(base_url, "port", None)
    if not isinstance(port, int):
        port = {"https": 443, "http": 80}.get(str(getattr(base_url, "scheme", "")))
    return {"server.address": host, "server.port": port}


def _derive_facts(client: Any, base_url: Any) -> tuple[dict[str, Any], str]:
    # Reading the URL's host and port and the provider costs ~15k instructions: once per base URL.
    return _server_attributes(base_url), _provider(client)


_CLIENT_FACTS = ClientFacts(_derive_facts)


def _admit(call: CallSpan, options: Any) -> None:
    """Budgets (`call.admit`): may raise BudgetExceeded before the request is sent; a downgrade
    swaps the model in the request body (`options.json_data`, where the SDK reads it, also to build
    Bedrock and Vertex URLs)."""
    body = getattr(options, "json_data", None)
    is_dict = isinstance(body, dict)
    admitted = call.admit(body if is_dict else {})
    if is_dict and admitted is not body and admitted.get("model") != body.get("model"):
        try:
            options.json_data = admitted
        except Exception as exc:
            FAULTS.record("anthropic budget downgrade", exc)


def _number(value: Any) -> Any:
    """A request's numeric parameter, else None (bool is not a number here)."""
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _start(state: Instrumentation, client: Any, options: Any) -> CallSpan | None:
    """The call's span, or None when this request is not a Messages call or the span could not be
    started (the SDK call then runs unobserved). The one place where a call starts."""
    try:
        if not _is_messages_call(options) or INSIDE_TRACED_CALL.get():
            return None
        body = getattr(options, "json_data", None)
        # anthropic 2.x has no typed sampling parameters: callers send them in `extra_body`.
        extra = getattr(options, "extra_json", None)
        request, provider = _CLIENT_FACTS.of(client)
        if extra is None and isinstance(body, dict):  # the usual request: one dict to read
            for field, key in _NUMERIC_REQUEST:
                if field in body:
                    value = _number(body[field])
                    if value is not None:
                        request[key] = value
            stop = body.get("stop_sequences")
            model = body.get("model")
        else:
            for field, key in _NUMERIC_REQUEST:
                value = _get(extra, field)
                if value is None:
                    value = _get(body, field)
                value = _number(value)
                if value is not None:
                    request[key] = value
            stop = _get(body, "stop_sequences")
            model = _get(body, "model")
        if isinstance(stop, list | tuple) and stop and all(isinstance(s, str) for s in stop):
            request["gen_ai.request.stop_sequences"] = tuple(stop)
        return CallSpan(state, OPERATION_CHAT, provider, _str(model), request)
    except Exception as exc:
        FAULTS.record("anthropic call start", exc)
        return None
