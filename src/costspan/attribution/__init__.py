"""Stage 2: who caused the spend. Attribution in W3C baggage and the spans that set it.

One job: `attribute()`, `task()`, `agent()`, `step()`, `tool()` (`api`), the decorator/context
manager plumbing they share (`scopes`), cleaning of attribution values (`values`) and which inbound
`costspan.*` baggage is kept (`baggage_trust`), and each task run's spend, outcome and retried
attempts (`outcome`). Imports: `attributes`, `otel_internals`, `telemetry`, `pricing`. The stages
below it in the flow (rollup, budgets) hook in, never the other way round (`api.set_tool_spend`,
`outcome.set_task_run_end`).
"""
