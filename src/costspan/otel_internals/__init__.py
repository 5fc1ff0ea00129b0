"""Stage 0, under everything: the OpenTelemetry SDK internals the hot paths read, with fallbacks.

One job: fast reads and writes of the OpenTelemetry context, spans and samplers where the public API
costs several Python calls, each feature-detected with the public API as its fallback, so no other
package touches a private SDK field. Imports: the OpenTelemetry API and SDK only.
"""
