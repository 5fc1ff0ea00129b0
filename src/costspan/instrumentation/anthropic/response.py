"""Reading what a call returned: model, id, stop reason and usage (in GenAI semconv terms: input
includes cache reads and writes) of a Message; the error type of a failed call.
"""

from __future__ import annotations

from typing import Any

from costspan.instrumentation._call import FAULTS, CallSpan
from costspan.instrumentation._values import INVALID, usage_count
from costspan.instrumentation._values import get_field as _get
from costspan.instrumentation._values import non_empty_str as _str
from costspan.instrumentation.anthropic.patches import _sdk


def _error_type(exc: BaseException) -> str:
    """The HTTP status code of a failed request; for an `error` event inside a stream (whose HTTP
    status was 200), the API's error type (e.g. `overloaded_error`); else the exception's type."""
    try:
        if isinstance(exc, _sdk().api_status_error):
            status = getattr(exc, "status_code", None)
            if isinstance(status, int) and status >= 400:
                return str(status)
            kind = _str(getattr(exc, "type", None)) or _str(_get(_get(exc.body, "error"), "type"))
            if kind:
                return kind
    except Exception as inner:
        FAULTS.record("anthropic error type", inner)
    return type(exc).__qualname__


_USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")


def _add_counts(usage: Any, counts: dict[str, int]) -> tuple[str, Any] | None:
    """Put `usage`'s counts into `counts` (a null field is left out: a stream's `message_delta`
    sends null for counts it does not repeat). The first field that is there but is not a count,
    else None."""
    if usage is None:
        return None
    is_dict = isinstance(usage, dict)
    bad = None
    for field in _USAGE_FIELDS:
        value = usage.get(field) if is_dict else getattr(usage, field, None)
        if type(value) is not int:  # an int: the usual count, stored as it is
            if value is None:
                continue
            checked = usage_count(value)
            if checked is INVALID:
                bad = bad or (field, value)
                continue
            value = checked
        counts[field] = value
    details = usage.get("output_tokens_details") if is_dict else getattr(usage, "output_tokens_details", None)
    if details is not None:
        value = _get(details, "thinking_tokens")
        thinking = usage_count(value)
        if thinking is INVALID:
            bad = bad or ("output_tokens_details.thinking_tokens", value)
        elif thinking is not None:
            counts["thinking_tokens"] = thinking
    return bad


def _set_usage(call: CallSpan, counts: dict[str, int]) -> None:
    """Anthropic's counts in semconv terms: input includes cache reads and cache writes. Input and
    output always come together: one without the other makes the call `invalid_usage`."""
    uncached = counts.get("input_tokens")
    output = counts.get("output_tokens")
    if uncached is None or output is None:
        if uncached is not None or output is not None:
            call.set_invalid_usage("input_tokens" if uncached is None else "output_tokens", None)
        return
    cache_read = counts.get("cache_read_input_tokens", 0)
    cache_write = counts.get("cache_creation_input_tokens", 0)
    call.set_usage(
        input_tokens=uncached + cache_read + cache_write,
        output_tokens=output,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=counts.get("thinking_tokens"),
    )


def _record_message(call: CallSpan, message: Any) -> None:
    try:
        if isinstance(message, dict):
            stop_reason, model, message_id = (
                message.get("stop_reason"),
                message.get("model"),
                message.get("id"),
            )
            usage = message.get("usage")
        else:
            stop_reason = getattr(message, "stop_reason", None)
            model = getattr(message, "model", None)
            message_id = getattr(message, "id", None)
            usage = getattr(message, "usage", None)
        stop_reason = _str(stop_reason)
        call.set_response(
            response_model=_str(model),
            response_id=_str(message_id),
            finish_reasons=[stop_reason] if stop_reason else None,
        )
        if usage is not None:
            counts: dict[str, int] = {}
            bad = _add_counts(usage, counts)
            if bad is not None:
                call.set_invalid_usage(*bad)
            else:
                _set_usage(call, counts)
    except Exception as exc:
        FAULTS.record("anthropic response", exc)
