"""Reading what a call returned: model, id, finish reasons and usage (OpenAI's terms, which LiteLLM
maps every provider to) of a `ModelResponse` / `EmbeddingResponse`; the error type of a failed call.
"""

from __future__ import annotations

from typing import Any

from costspan.instrumentation._call import FAULTS, CallSpan
from costspan.instrumentation._values import INVALID, checked_counts, usage_count
from costspan.instrumentation._values import get_field as _get
from costspan.instrumentation._values import non_empty_str as _str
from costspan.instrumentation.litellm.patches import OPERATION_CHAT, OPERATION_EMBEDDINGS


def _error_type(exc: BaseException) -> str:
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and status >= 400:
        return str(status)
    return type(exc).__qualname__


def _set_usage(call: CallSpan, usage: Any, operation: str) -> None:
    """LiteLLM's usage (OpenAI's terms for every provider): any field that is there but is not a
    count, or input without output (chat), makes the call `invalid_usage`."""
    if operation == OPERATION_EMBEDDINGS:
        raw = _get(usage, "prompt_tokens")
        tokens = usage_count(raw)
        if tokens is INVALID:
            call.set_invalid_usage("prompt_tokens", raw)
        elif tokens is not None:
            call.set_usage(input_tokens=tokens, output_tokens=None)
        return
    prompt_details = _get(usage, "prompt_tokens_details")
    cache_write = _get(usage, "cache_creation_input_tokens")
    if cache_write is None:
        cache_write = _get(prompt_details, "cache_creation_tokens")
    counts, bad = checked_counts(
        (
            ("prompt_tokens", _get(usage, "prompt_tokens")),
            ("completion_tokens", _get(usage, "completion_tokens")),
            ("prompt_tokens_details.cached_tokens", _get(prompt_details, "cached_tokens")),
            ("cache_creation_input_tokens", cache_write),
            (
                "completion_tokens_details.reasoning_tokens",
                _get(_get(usage, "completion_tokens_details"), "reasoning_tokens"),
            ),
        ),
        required=2,
    )
    if bad is not None:
        call.set_invalid_usage(*bad)
        return
    prompt, completion, cached, written, reasoning = counts
    if prompt is None and completion is None:
        return
    call.set_usage(
        input_tokens=prompt,
        output_tokens=completion,
        cache_read_tokens=cached,
        cache_write_tokens=written,
        reasoning_tokens=reasoning,
    )


def _finish_reasons(choices: Any) -> list[str]:
    reasons = []
    for choice in choices or ():
        reason = _str(_get(choice, "finish_reason"))
        if reason:
            reasons.append(reason)
    return reasons


def _record(call: CallSpan, operation: str, response: Any) -> None:
    try:
        call.set_response(
            response_model=_str(_get(response, "model")),
            response_id=_str(_get(response, "id")) if operation == OPERATION_CHAT else None,
            finish_reasons=_finish_reasons(_get(response, "choices"))
            if operation == OPERATION_CHAT
            else None,
        )
        usage = _get(response, "usage")
        if usage is not None:
            _set_usage(call, usage, operation)
    except Exception as exc:
        FAULTS.record("litellm response", exc)
