"""What of the openai SDK costspan touches: the methods it wraps, each with the API it belongs to,
and the SDK classes the other modules test against.
"""

from __future__ import annotations

import functools

OPERATION_CHAT = "chat"
OPERATION_EMBEDDINGS = "embeddings"

# API kinds: how the request and the response are read.
CHAT, RESPONSES, EMBEDDINGS = "chat", "responses", "embeddings"

# (module, class, method, api, is_async)
_METHODS = (
    ("openai.resources.chat.completions.completions", "Completions", "create", CHAT, False),
    ("openai.resources.chat.completions.completions", "Completions", "parse", CHAT, False),
    ("openai.resources.chat.completions.completions", "AsyncCompletions", "create", CHAT, True),
    ("openai.resources.chat.completions.completions", "AsyncCompletions", "parse", CHAT, True),
    ("openai.resources.responses.responses", "Responses", "create", RESPONSES, False),
    ("openai.resources.responses.responses", "Responses", "parse", RESPONSES, False),
    ("openai.resources.responses.responses", "AsyncResponses", "create", RESPONSES, True),
    ("openai.resources.responses.responses", "AsyncResponses", "parse", RESPONSES, True),
    ("openai.resources.embeddings", "Embeddings", "create", EMBEDDINGS, False),
    ("openai.resources.embeddings", "AsyncEmbeddings", "create", EMBEDDINGS, True),
)


class _SDKClasses:
    """The openai classes the hooks test against, imported once (a `from openai import ...` inside
    a function runs importlib's `_handle_fromlist` on every call)."""

    def __init__(self) -> None:
        from openai import APIStatusError, AsyncAzureOpenAI, AsyncStream, AzureOpenAI, Stream
        from openai._legacy_response import LegacyAPIResponse
        from openai._response import APIResponse, AsyncAPIResponse
        from openai._types import NotGiven, Omit

        self.azure_clients = (AzureOpenAI, AsyncAzureOpenAI)
        self.api_status_error = APIStatusError
        self.not_given = (NotGiven, Omit)
        self.streams = (Stream, AsyncStream)
        self.async_stream = AsyncStream
        self.legacy_response = LegacyAPIResponse
        self.api_response = APIResponse
        self.async_api_response = AsyncAPIResponse
        from openai.types import CompletionUsage
        from openai.types.chat import ChatCompletion

        self.chat_completion = ChatCompletion
        self.completion_usage = CompletionUsage


@functools.cache  # a C-level cache: no Python frame once loaded, so hot paths call it freely
def _sdk() -> _SDKClasses:
    return _SDKClasses()
