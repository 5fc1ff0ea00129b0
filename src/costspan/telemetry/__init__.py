"""Stage 1: what costspan reports about itself and the calls it saw, as OpenTelemetry metrics.

One job: the metric instruments (`costspan.cost`, tokens, tool spend), the fault counters that keep
costspan's own failures out of the application's call path, and fork safety for their locks.
Imports: `costspan.attributes` and `costspan.otel_internals` only.
"""
