"""What of the anthropic SDK costspan touches: the client methods it wraps (every Messages call
goes through them), how a Messages request is told apart, and the SDK classes the other modules
test against.
"""

from __future__ import annotations

import functools

OPERATION_CHAT = "chat"

_BASE_CLIENT_MODULE = "anthropic._base_client"
# (class in that module, method, is_async): every Messages call goes through the client's `request`.
_METHODS = (
    ("SyncAPIClient", "request", False),
    ("AsyncAPIClient", "request", True),
)
# The module function that starts the SDK's own span for a call (anthropic 2.x); see `wrappers`.
_SDK_SPAN_FUNCTION = "start_api_call_span"
# The SDK's span name for every Messages call (create, stream, parse, beta) in anthropic 2.x.
_MESSAGES_SPAN_NAME = "anthropic.messages.create"
_MESSAGES_PATHS = frozenset({"/v1/messages"})


class _SDKClasses:
    """The anthropic classes the hooks test against, imported once (a `from anthropic import ...`
    inside a function runs importlib's `_handle_fromlist` on every call)."""

    def __init__(self) -> None:
        from anthropic import (
            AnthropicBedrock,
            AnthropicVertex,
            APIStatusError,
            AsyncAnthropicBedrock,
            AsyncAnthropicVertex,
            AsyncStream,
            Stream,
        )
        from anthropic._response import AsyncAPIResponse, BaseAPIResponse

        self.bedrock_clients = (AnthropicBedrock, AsyncAnthropicBedrock)
        self.vertex_clients = (AnthropicVertex, AsyncAnthropicVertex)
        self.api_status_error = APIStatusError
        self.streams = (Stream, AsyncStream)
        self.async_stream = AsyncStream
        self.base_api_response = BaseAPIResponse
        self.async_api_response = AsyncAPIResponse


@functools.cache  # a C-level cache: no Python frame once loaded, so hot paths call it freely
def _sdk() -> _SDKClasses:
    return _SDKClasses()
