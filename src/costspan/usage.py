"""Read an LLM call's model and token usage from span attributes, whoever wrote them.

Token semantics follow the GenAI semantic conventions: input includes cached tokens, reasoning is
part of output. Older semconv names (`prompt_tokens`) and OpenInference (`llm.token_count.*`) are
read too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from costspan import attributes as attrs

# Operations that are not a model call even when they carry a model or summed usage
# (an agent span may report the tokens of the calls inside it; pricing it would count them twice).
NON_CALL_OPERATIONS = frozenset({"invoke_agent", "create_agent", "execute_tool", "invoke_workflow"})

_OI_MODEL = "llm.model_name"
_OI_PROVIDER = "llm.provider"
_OI_INPUT = "llm.token_count.prompt"
_OI_OUTPUT = "llm.token_count.completion"
_OI_CACHE_READ = "llm.token_count.prompt_details.cache_read"
_OI_CACHE_WRITE = "llm.token_count.prompt_details.cache_write"
_OI_REASONING = "llm.token_count.completion_details.reasoning"


class Usage(NamedTuple):
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int


class InvalidUsage(ValueError):
    """A usage attribute that is not a non-negative whole number."""


def is_llm_call(attributes: Mapping[str, Any]) -> bool:
    if attributes.get(attrs.GEN_AI_OPERATION_NAME) in NON_CALL_OPERATIONS:
        return False
    return (
        attrs.GEN_AI_REQUEST_MODEL in attributes
        or attrs.GEN_AI_RESPONSE_MODEL in attributes
        or attrs.GEN_AI_USAGE_INPUT_TOKENS in attributes
        or attrs.GEN_AI_USAGE_OUTPUT_TOKENS in attributes
        or _OI_MODEL in attributes
        or _OI_INPUT in attributes
    )


def model_of(attributes: Mapping[str, Any]) -> str | None:
    model = (
        attributes.get(attrs.GEN_AI_RESPONSE_MODEL)
        or attributes.get(attrs.GEN_AI_REQUEST_MODEL)
        or attributes.get(_OI_MODEL)
    )
    return model if isinstance(model, str) and model else None


def provider_of(attributes: Mapping[str, Any]) -> str | None:
    provider = (
        attributes.get(attrs.GEN_AI_PROVIDER_NAME)
        or attributes.get(attrs.GEN_AI_SYSTEM)
        or attributes.get(_OI_PROVIDER)
    )
    return provider if isinstance(provider, str) and provider else None


def _count(attributes: Mapping[str, Any], *keys: str) -> int | None:
    for key in keys:
        value = attributes.get(key)
        if value is None:
            continue
        if type(value) is int:
            if value < 0:
                raise InvalidUsage(f"{key}={value!r}")
            return value
        if type(value) is float and value.is_integer() and value >= 0:
            return int(value)
        raise InvalidUsage(f"{key}={value!r}")
    return None


def usage_of(attributes: Mapping[str, Any]) -> Usage | None:
    """The call's usage, or None when it reports neither input nor output tokens."""
    input_tokens = _count(
        attributes, attrs.GEN_AI_USAGE_INPUT_TOKENS, attrs.GEN_AI_USAGE_PROMPT_TOKENS, _OI_INPUT
    )
    output_tokens = _count(
        attributes, attrs.GEN_AI_USAGE_OUTPUT_TOKENS, attrs.GEN_AI_USAGE_COMPLETION_TOKENS, _OI_OUTPUT
    )
    if input_tokens is None and output_tokens is None:
        return None
    cache_read = _count(attributes, attrs.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, _OI_CACHE_READ)
    cache_write = _count(
        attributes,
        attrs.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
        attrs.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,
        _OI_CACHE_WRITE,
    )
    reasoning = _count(attributes, attrs.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, _OI_REASONING)
    return Usage(input_tokens or 0, output_tokens or 0, cache_read or 0, cache_write or 0, reasoning or 0)
