"""What of the google-genai SDK costspan touches: the `Models` / `AsyncModels` methods it wraps
(the public calls and the per-request stream step), the AFC functions that see each
function-calling response, and the SDK's error class.
"""

from __future__ import annotations

import functools

OPERATION_GENERATE = "generate_content"
OPERATION_EMBEDDINGS = "embeddings"

_MODULE = "google.genai.models"
# (class, method, kind): kind is how the wrapper treats the return value.
_METHODS = (
    ("Models", "generate_content", "sync"),
    ("Models", "generate_content_stream", "sync_stream"),
    ("Models", "embed_content", "sync_embed"),
    ("AsyncModels", "generate_content", "async"),
    ("AsyncModels", "generate_content_stream", "async_stream"),
    ("AsyncModels", "embed_content", "async_embed"),
    # One HTTP request each: automatic function calling (AFC) and automatic continuation make
    # several per streamed public call, and each request's chunks carry only its own usage.
    ("Models", "_generate_content_stream", "sync_stream_hop"),
    ("AsyncModels", "_generate_content_stream", "async_stream_hop"),
)
# Module functions of `google.genai._extra_utils` that get each AFC response asking for a function
# call (and run the function); the response the public call returns carries only its own usage.
_AFC_MODULE = "google.genai._extra_utils"
_AFC_FUNCTIONS = (
    ("get_function_response_parts", "afc_sync"),
    ("get_function_response_parts_async", "afc_async"),
)


@functools.cache
def _api_error() -> type:
    from google.genai.errors import APIError

    return APIError
