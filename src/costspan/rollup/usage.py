"""Read an LLM call's model and token usage from span attributes, whoever wrote them.

Token semantics follow the GenAI semantic conventions: input includes cached tokens, reasoning is
part of output. Older semconv names (`prompt_tokens`), OpenLLMetry's names and OpenInference
(`llm.token_count.*`) are read too.

What each instrumentation library writes (checked against its source and its real spans; see
tests/fixtures/third_party/): the Anthropic SDK's own spans (scope `com.anthropic.sdk.python`),
OpenLLMetry (`opentelemetry.instrumentation.anthropic`, `opentelemetry.instrumentation.openai.v1`),
the official openai-v2 instrumentation and OpenInference all report input INCLUDING cache reads and
writes, so no library needs its input count corrected. What does depend on the scope is which spans
are calls: see `is_llm_call`.
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

# OpenLLMetry: cache names before opentelemetry-semantic-conventions-ai 0.5.0 (underscore form), and
# its reasoning count (opentelemetry-instrumentation-openai 0.62.x, chat and responses).
_LEGACY_CACHE_READ = "gen_ai.usage.cache_read_input_tokens"
_LEGACY_CACHE_CREATION = "gen_ai.usage.cache_creation_input_tokens"
_OPENLLMETRY_REASONING = "gen_ai.usage.reasoning_tokens"

# The Anthropic SDK's own tracer (`com.anthropic.sdk.python`, or `com.anthropic.sdk.python.<platform>`)
# gives every API call a span with `gen_ai.provider.name`, and `gen_ai.request.model` on some that are
# not model calls (`anthropic.messages.count_tokens`, `anthropic.sessions.create`). Only the spans with
# a GenAI operation name (`chat` for `anthropic.messages.create`) are calls.
_ANTHROPIC_SDK_SCOPE = "com.anthropic.sdk.python"


class Usage(NamedTuple):
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int


# A larger count in one call is corrupt, not usage: no model's context is within three orders of
# magnitude of it, and sums of such counts would leave OTLP's int64 and price calls at absurd sums.
MAX_TOKENS = 10**12


class InvalidUsage(ValueError):
    """A usage attribute that is not a whole number from 0 to MAX_TOKENS."""


def _needs_operation_name(scope_name: str | None) -> bool:
    return scope_name is not None and (
        scope_name == _ANTHROPIC_SDK_SCOPE or scope_name.startswith(_ANTHROPIC_SDK_SCOPE + ".")
    )


# A span carrying none of these keys is neither a model call nor a tool call (see is_llm_call).
CALL_MARKER_KEYS = frozenset(
    {
        attrs.GEN_AI_OPERATION_NAME,
        attrs.GEN_AI_REQUEST_MODEL,
        attrs.GEN_AI_RESPONSE_MODEL,
        attrs.GEN_AI_USAGE_INPUT_TOKENS,
        attrs.GEN_AI_USAGE_OUTPUT_TOKENS,
        _OI_MODEL,
        _OI_INPUT,
    }
)


def is_llm_call(attributes: Mapping[str, Any], scope_name: str | None = None) -> bool:
    """Whether the span is one model call; `scope_name` is its instrumentation scope's name, if known."""
    operation = attributes.get(attrs.GEN_AI_OPERATION_NAME)
    if operation in NON_CALL_OPERATIONS:
        return False
    if operation is None and _needs_operation_name(scope_name):
        return False
    return (
        attrs.GEN_AI_REQUEST_MODEL in attributes
        or attrs.GEN_AI_RESPONSE_MODEL in attributes
        or attrs.GEN_AI_USAGE_INPUT_TOKENS in attributes
        or attrs.GEN_AI_USAGE_OUTPUT_TOKENS in attributes
        or _OI_MODEL in attributes
        or _OI_INPUT in attributes
    )


# Bedrock answers with the bare model id, dropping the inference profile the caller chose
# (`global.`, `us.`, ...), and the profile sets the price: there the request model is the one to price.
_PRICED_BY_REQUEST_MODEL = frozenset({"aws.bedrock"})


def model_of(attributes: Mapping[str, Any]) -> str | None:
    response_model = attributes.get(attrs.GEN_AI_RESPONSE_MODEL)
    request_model = attributes.get(attrs.GEN_AI_REQUEST_MODEL)
    if request_model and attributes.get(attrs.GEN_AI_PROVIDER_NAME) in _PRICED_BY_REQUEST_MODEL:
        response_model = None
    model = response_model or request_model or attributes.get(_OI_MODEL)
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
            if value < 0 or value > MAX_TOKENS:
                raise InvalidUsage(f"{key}={value!r:.40}")
            return value
        if type(value) is float and value.is_integer() and 0 <= value <= MAX_TOKENS:
            return int(value)
        raise InvalidUsage(f"{key}={value!r:.40}")
    return None


def usage_of(attributes: Mapping[str, Any], scope_name: str | None = None) -> Usage | None:
    """The call's usage, or None when it reports neither input nor output tokens.

    `scope_name` is the span's instrumentation scope name. Every library surveyed (see the module
    docstring) reports input including cache, so it changes nothing today; it is here so that a
    library whose counts differ can be corrected by scope without changing callers.
    """
    del scope_name  # no surveyed scope needs its counts corrected
    input_tokens = _count(
        attributes, attrs.GEN_AI_USAGE_INPUT_TOKENS, attrs.GEN_AI_USAGE_PROMPT_TOKENS, _OI_INPUT
    )
    output_tokens = _count(
        attributes, attrs.GEN_AI_USAGE_OUTPUT_TOKENS, attrs.GEN_AI_USAGE_COMPLETION_TOKENS, _OI_OUTPUT
    )
    if input_tokens is None and output_tokens is None:
        return None
    cache_read = _count(
        attributes, attrs.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, _LEGACY_CACHE_READ, _OI_CACHE_READ
    )
    cache_write = _count(
        attributes,
        attrs.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
        attrs.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,
        _LEGACY_CACHE_CREATION,
        _OI_CACHE_WRITE,
    )
    reasoning = _count(
        attributes, attrs.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, _OPENLLMETRY_REASONING, _OI_REASONING
    )
    return Usage(input_tokens or 0, output_tokens or 0, cache_read or 0, cache_write or 0, reasoning or 0)
