"""What of LiteLLM costspan touches: the four public functions on the `litellm` module it wraps,
each with its operation. LiteLLM needs no SDK classes looked at: results are told apart by shape.
"""

from __future__ import annotations

OPERATION_CHAT = "chat"
OPERATION_EMBEDDINGS = "embeddings"

# (function on the `litellm` module, operation, is_async)
_FUNCTIONS = (
    ("completion", OPERATION_CHAT, False),
    ("acompletion", OPERATION_CHAT, True),
    ("embedding", OPERATION_EMBEDDINGS, False),
    ("aembedding", OPERATION_EMBEDDINGS, True),
)
