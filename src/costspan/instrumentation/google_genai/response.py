"""Reading what a call returned: model, id, finish reasons and usage (in GenAI semconv terms) of a
generate or embed response, usage summed over a call's several requests (AFC, stream hops); the
error type of a failed call.
"""

from __future__ import annotations

from typing import Any

from costspan.instrumentation._call import FAULTS, CallSpan
from costspan.instrumentation._values import INVALID, checked_counts, usage_count
from costspan.instrumentation._values import get_field as _get
from costspan.instrumentation.google_genai.patches import _api_error
from costspan.instrumentation.google_genai.request import _strip_model


def _error_type(exc: BaseException) -> str:
    try:
        if isinstance(exc, _api_error()) and getattr(exc, "code", None) is not None:
            return str(exc.code)
    except Exception as inner:
        FAULTS.record("google-genai error type", inner)
    return type(exc).__qualname__


def _finish_reason(value: Any) -> str | None:
    if value is None:
        return None
    if type(value) is str:
        return value.lower() or None
    text = _REASON_TEXT.get(value)
    if text is None:
        name = getattr(value, "name", None)  # an enum member: `.name` is a Python-level descriptor
        text = (name if isinstance(name, str) else str(value)).lower()
        if len(_REASON_TEXT) < 256:
            _REASON_TEXT[value] = text
    return text or None


# FinishReason member -> its span value, found once per member.
_REASON_TEXT: dict[Any, str] = {}


def _set_generate_usage(call: CallSpan, usage: Any) -> None:
    if isinstance(usage, dict):
        prompt = usage.get("prompt_token_count")
        candidates = usage.get("candidates_token_count")
        thoughts = usage.get("thoughts_token_count")
        cached = usage.get("cached_content_token_count")
        tool_use = usage.get("tool_use_prompt_token_count")
    else:  # the SDK's typed usage: counts are int or None, checked inline (five helper calls less)
        prompt = getattr(usage, "prompt_token_count", None)
        candidates = getattr(usage, "candidates_token_count", None)
        thoughts = getattr(usage, "thoughts_token_count", None)
        cached = getattr(usage, "cached_content_token_count", None)
        tool_use = getattr(usage, "tool_use_prompt_token_count", None)
    if not (
        (prompt is None or type(prompt) is int)
        and (candidates is None or type(candidates) is int)
        and (thoughts is None or type(thoughts) is int)
        and (cached is None or type(cached) is int)
        and (tool_use is None or type(tool_use) is int)
    ):
        counts, bad = checked_counts(
            (
                ("prompt_token_count", prompt),
                ("candidates_token_count", candidates),
                ("thoughts_token_count", thoughts),
                ("cached_content_token_count", cached),
                ("tool_use_prompt_token_count", tool_use),
            ),
            required=1,
        )
        if bad is not None:
            call.set_invalid_usage(*bad)
            return
        prompt, candidates, thoughts, cached, tool_use = counts
    if prompt is None:
        if candidates is not None or thoughts is not None or tool_use is not None:
            # Output without the prompt count it always comes with: not a usage to price.
            call.set_invalid_usage("prompt_token_count", None)
        return
    call.set_usage(
        input_tokens=prompt + (tool_use or 0),
        output_tokens=(candidates or 0) + (thoughts or 0),
        cache_read_tokens=cached,
        reasoning_tokens=thoughts,
    )


def _record_response(call: CallSpan, response: Any, afc: list[Any] | None = None) -> None:
    try:
        if isinstance(response, dict):
            candidates = response.get("candidates")
            model_version = response.get("model_version")
            response_id = response.get("response_id")
            usage = response.get("usage_metadata")
        else:  # the SDK's typed response: plain attribute reads
            candidates = getattr(response, "candidates", None)
            model_version = getattr(response, "model_version", None)
            response_id = getattr(response, "response_id", None)
            usage = getattr(response, "usage_metadata", None)
        finish_reasons = []
        for candidate in candidates or ():
            value = (
                candidate.get("finish_reason")
                if type(candidate) is dict
                else getattr(candidate, "finish_reason", None)
            )
            # An enum member seen before maps straight to its text; anything else through the helper.
            reason = _REASON_TEXT.get(value) if value is not None and type(value) is not str else None
            if reason is None:
                reason = _finish_reason(value)
            if reason:
                finish_reasons.append(reason)
        if type(model_version) is not str or "models/" in model_version:
            model_version = _strip_model(model_version)
        call.set_response(
            response_model=model_version, response_id=response_id, finish_reasons=finish_reasons
        )
        if afc:  # AFC: the responses that asked for a function call, and this last one
            usage = _usage_total([r for r in afc if r is not response] + [response])
        if usage is not None:
            _set_generate_usage(call, usage)
    except Exception as exc:
        FAULTS.record("google-genai response", exc)


def _record_partial(call: CallSpan, afc: list[Any] | None) -> None:
    """A failed call whose earlier AFC requests succeeded: their tokens were billed."""
    if not afc:
        return
    try:
        total = _usage_total(afc)
        if total is not None:
            _set_generate_usage(call, total)
    except Exception as exc:
        FAULTS.record("google-genai response", exc)


def _usage_total(responses: list[Any]) -> Any:
    return _sum_usages([_get(r, "usage_metadata") for r in responses])


def _record_embedding(call: CallSpan, response: Any, afc: list[Any] | None = None) -> None:
    """Gemini API: `usage_metadata.prompt_token_count` (recent API versions). Vertex AI: per-embedding
    `statistics.token_count`. Neither: the span stays without usage (`costspan.cost.status=no_usage`)."""
    try:
        raw = _get(_get(response, "usage_metadata"), "prompt_token_count")
        tokens = usage_count(raw)
        if tokens is INVALID:
            call.set_invalid_usage("prompt_token_count", raw)
            return
        if tokens is None:
            fields = [
                ("statistics.token_count", _get(_get(e, "statistics"), "token_count"))
                for e in _get(response, "embeddings") or ()
            ]
            counts, bad = checked_counts(fields, required=1)
            if bad is not None:
                call.set_invalid_usage(*bad)
                return
            if counts and None not in counts:  # some embeddings without a count: unknown usage
                tokens = sum(c for c in counts if c is not None)
        if tokens is not None:
            call.set_usage(input_tokens=tokens, output_tokens=None)
    except Exception as exc:
        FAULTS.record("google-genai embedding response", exc)


_USAGE_FIELDS = (
    "prompt_token_count",
    "candidates_token_count",
    "thoughts_token_count",
    "cached_content_token_count",
    "tool_use_prompt_token_count",
)


class _Hops:
    """Usage of each HTTP request made by one public call (the latest running total per request)."""

    __slots__ = ("usages",)

    def __init__(self) -> None:
        self.usages: list[Any] = []

    def add(self, usage: Any) -> int:
        self.usages.append(usage)
        return len(self.usages) - 1

    def total(self) -> Any:
        return _sum_usages(self.usages)


def _sum_usages(usages: list[Any]) -> Any:
    """Summed usage over requests (one request's: its usage as the SDK gave it), or None when no
    request reported any (or none was seen)."""
    if len(usages) == 1:  # the usual call: one request, nothing to sum
        return usages[0]
    present = [u for u in usages if u is not None]
    if not present:
        return None
    out: dict[str, Any] = {}
    for field in _USAGE_FIELDS:
        total = None
        for usage in present:
            value = _get(usage, field)
            count = usage_count(value)
            if count is INVALID:
                return {field: value}  # one request's field that is not a count: the whole is not
            if count is not None:
                total = (total or 0) + count
        out[field] = total
    for usage in present:
        if _get(usage, "prompt_token_count") is None and any(
            _get(usage, field) is not None for field in _USAGE_FIELDS
        ):
            return {"prompt_token_count": None, "candidates_token_count": 0}  # output without its prompt
    return out
