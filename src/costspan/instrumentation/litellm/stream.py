"""Streams: what a stream of `ModelResponseStream` chunks has shown so far; the usage-only chunk
costspan asked for is kept from the caller.
"""

from __future__ import annotations

from typing import Any

from costspan.instrumentation._call import CallSpan
from costspan.instrumentation._values import get_field as _get
from costspan.instrumentation._values import non_empty_str as _str
from costspan.instrumentation.litellm.patches import OPERATION_CHAT
from costspan.instrumentation.litellm.response import _set_usage


class _StreamState:
    """What a stream of `ModelResponseStream` chunks has shown so far."""

    __slots__ = ("call", "finish_reasons", "hide_usage", "response_id", "response_model", "usage")

    def __init__(self, call: CallSpan, hide_usage: bool) -> None:
        self.call = call
        self.hide_usage = hide_usage
        self.usage: Any = None
        self.response_model: str | None = None
        self.response_id: str | None = None
        self.finish_reasons: dict[int, str] = {}

    def on_item(self, chunk: Any) -> bool:
        if self.response_id is None:
            self.response_model = _str(_get(chunk, "model")) or self.response_model
            self.response_id = _str(_get(chunk, "id"))
        choices = _get(chunk, "choices")
        for position, choice in enumerate(choices or ()):
            reason = _str(_get(choice, "finish_reason"))
            if reason:
                index = _get(choice, "index")
                self.finish_reasons[index if isinstance(index, int) else position] = reason
        usage = _get(chunk, "usage")
        if usage is not None:
            self.usage = usage
            # The usage-only chunk costspan asked for is not the caller's.
            return not self.hide_usage or _has_output(choices)
        return True

    def on_done(self) -> None:
        call = self.call
        reasons = self.finish_reasons
        call.set_response(
            response_model=self.response_model,
            response_id=self.response_id,
            finish_reasons=[reasons[i] for i in sorted(reasons)] if reasons else None,
        )
        if self.usage is not None:
            _set_usage(call, self.usage, OPERATION_CHAT)


# Delta fields that make a chunk part of the answer.
_OUTPUT_FIELDS = ("content", "tool_calls", "function_call", "reasoning_content", "audio", "refusal")


def _has_output(choices: Any) -> bool:
    """Whether a chunk's choices carry any of the answer. LiteLLM's usage chunk has none: no
    choices (1.110), or one whose delta is empty and that has no finish reason (1.80)."""
    for choice in choices or ():
        if _get(choice, "finish_reason"):
            return True
        delta = _get(choice, "delta")
        if any(_get(delta, field) for field in _OUTPUT_FIELDS):
            return True
    return False


def _is_stream(result: Any) -> bool:
    """LiteLLM's `CustomStreamWrapper` (and any other iterator a provider path returns)."""
    return hasattr(result, "__next__") or hasattr(result, "__anext__")
