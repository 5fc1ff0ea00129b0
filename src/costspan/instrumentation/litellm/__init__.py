"""costspan's instrumentor for LiteLLM (`litellm` 1.x), called directly or by `litellm.Router`.

One job: one priced CLIENT span per completion or embedding call (per routed attempt). Modules, the
same in every provider package: `instrumentor` (wraps and unwraps), `patches` (what of LiteLLM is
wrapped), `wrappers` (what runs around each call), `request`, `response` and `stream` (reading each
into the call's span). Importing this package does not import LiteLLM.
"""

from costspan.instrumentation.litellm.instrumentor import LiteLLMInstrumentor

__all__ = ["LiteLLMInstrumentor"]
