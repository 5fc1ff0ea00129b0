"""costspan's instrumentor for the Anthropic Python SDK (`anthropic` 2.x): Anthropic, Bedrock, Vertex AI.

One job: one priced CLIENT span per Messages call, whatever style it is made in. Modules, the same
in every provider package: `instrumentor` (wraps and unwraps), `patches` (what of the SDK is wrapped
and looked at), `wrappers` (what runs around each call), `request`, `response` and `stream` (reading
each into the call's span).
"""

from costspan.instrumentation.anthropic.instrumentor import AnthropicInstrumentor

__all__ = ["AnthropicInstrumentor"]
