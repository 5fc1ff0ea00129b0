"""Reading what a call returned: model, id, finish reasons and usage of a chat completion, a
Responses API response or an embeddings response; the error type of a failed call.
"""

from __future__ import annotations

from typing import Any

from costspan.instrumentation._call import FAULTS, CallSpan
from costspan.instrumentation._values import INVALID, checked_counts, usage_count
from costspan.instrumentation._values import get_field as _get
from costspan.instrumentation._values import non_empty_str as _str
from costspan.instrumentation.openai.patches import CHAT, RESPONSES, _sdk


def _error_type(exc: BaseException) -> str:
    try:
        if isinstance(exc, _sdk().api_status_error):
            return str(exc.status_code)
    except Exception as inner:
        FAULTS.record("openai error type", inner)
    return type(exc).__qualname__


def _set_chat_usage(call: CallSpan, usage: Any) -> None:
    """Chat usage read field by field (a dict, or not the SDK's typed `CompletionUsage`)."""
    _set_checked_usage(
        call,
        (
            ("prompt_tokens", _get(usage, "prompt_tokens")),
            ("completion_tokens", _get(usage, "completion_tokens")),
            (
                "prompt_tokens_details.cached_tokens",
                _get(_get(usage, "prompt_tokens_details"), "cached_tokens"),
            ),
            (
                "completion_tokens_details.reasoning_tokens",
                _get(_get(usage, "completion_tokens_details"), "reasoning_tokens"),
            ),
        ),
    )


def _set_responses_usage(call: CallSpan, usage: Any) -> None:
    _set_checked_usage(
        call,
        (
            ("input_tokens", _get(usage, "input_tokens")),
            ("output_tokens", _get(usage, "output_tokens")),
            (
                "input_tokens_details.cached_tokens",
                _get(_get(usage, "input_tokens_details"), "cached_tokens"),
            ),
            (
                "output_tokens_details.reasoning_tokens",
                _get(_get(usage, "output_tokens_details"), "reasoning_tokens"),
            ),
        ),
    )


def _set_checked_usage(call: CallSpan, fields: tuple[tuple[str, Any], ...]) -> None:
    """Input, output, cached input, reasoning: the API always sends input and output together, so
    one without the other, or any field that is not a count, makes the call `invalid_usage`."""
    counts, bad = checked_counts(fields, required=2)
    if bad is not None:
        call.set_invalid_usage(*bad)
        return
    prompt, completion, cached, reasoning = counts
    if prompt is None and completion is None:
        return
    call.set_usage(
        input_tokens=prompt,
        output_tokens=completion,
        cache_read_tokens=cached,
        reasoning_tokens=reasoning,
    )


_INCOMPLETE_REASONS = {"max_output_tokens": "length", "content_filter": "content_filter"}


def _responses_finish_reasons(response: Any) -> list[str]:
    status = _get(response, "status")
    if status == "completed":
        return ["stop"]
    if status == "incomplete":
        reason = _get(_get(response, "incomplete_details"), "reason")
        return [_INCOMPLETE_REASONS.get(reason, reason) if isinstance(reason, str) else "incomplete"]
    if status == "failed":
        return ["error"]
    return []


def _record_chat_completion(call: CallSpan, response: Any) -> None:
    """A typed ChatCompletion (the common case): plain attribute reads, no per-field helpers."""
    reasons = []
    for choice in response.choices or ():  # a loop, not comprehensions: each of those is a call
        reason = choice.finish_reason
        if isinstance(reason, str) and reason:
            reasons.append(reason)
    model = response.model
    response_id = response.id
    call.set_response(
        response_model=model if isinstance(model, str) else None,
        response_id=response_id if isinstance(response_id, str) else None,
        finish_reasons=reasons,
    )
    usage = response.usage
    if usage is not None:
        _set_any_chat_usage(call, usage)


def _set_any_chat_usage(call: CallSpan, usage: Any) -> None:
    """Chat usage: a typed `CompletionUsage` read with plain attribute access, else field by field."""
    if type(usage) is not _sdk().completion_usage:
        _set_chat_usage(call, usage)
        return
    prompt = usage.prompt_tokens
    completion = usage.completion_tokens
    details = usage.prompt_tokens_details
    cached = details.cached_tokens if details is not None else None
    details = usage.completion_tokens_details
    reasoning = details.reasoning_tokens if details is not None else None
    if not (
        type(prompt) is int
        and type(completion) is int
        and (cached is None or type(cached) is int)
        and (reasoning is None or type(reasoning) is int)
    ):
        _set_chat_usage(call, usage)  # a null, fractional or other odd count: checked field by field
        return
    call.set_usage(
        input_tokens=prompt,
        output_tokens=completion,
        cache_read_tokens=cached,
        reasoning_tokens=reasoning,
    )


def _record(call: CallSpan, api: str, response: Any) -> None:
    try:
        if api == CHAT and type(response) is _sdk().chat_completion:
            _record_chat_completion(call, response)
        elif api == CHAT:
            reasons = [
                r for r in (_str(_get(c, "finish_reason")) for c in _get(response, "choices") or ()) if r
            ]
            call.set_response(
                response_model=_str(_get(response, "model")),
                response_id=_str(_get(response, "id")),
                finish_reasons=reasons,
            )
            usage = _get(response, "usage")
            if usage is not None:
                _set_chat_usage(call, usage)
        elif api == RESPONSES:
            call.set_response(
                response_model=_str(_get(response, "model")),
                response_id=_str(_get(response, "id")),
                finish_reasons=_responses_finish_reasons(response),
            )
            usage = _get(response, "usage")
            if usage is not None:
                _set_responses_usage(call, usage)
        else:
            call.set_response(response_model=_str(_get(response, "model")))
            raw = _get(_get(response, "usage"), "prompt_tokens")
            tokens = usage_count(raw)
            if tokens is INVALID:
                call.set_invalid_usage("prompt_tokens", raw)
            elif tokens is not None:
                call.set_usage(input_tokens=tokens, output_tokens=None)
    except Exception as exc:
        FAULTS.record("openai response", exc)
