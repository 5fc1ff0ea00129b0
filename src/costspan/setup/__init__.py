"""Stage 8, the top: putting costspan on an application's OpenTelemetry providers.

One job: `configure()`, the `COSTSPAN_*` settings, the `opentelemetry-instrument` hooks (`auto`) and
wiring every component's fault counters to a MeterProvider (`fault_metrics`). Imports any stage.
"""
