"""Stage 4: from a finished span to its price and its ancestors' totals, before export.

One job: the `CostSpanProcessor` (stamp attribution on start; read usage, price the call, add it to
the parent's ledger entry at end), the pricing of one call (`call_pricing`, with the cost
attributes other backends read, `backend_costs`), usage reading and
normalisation across instrumentations (`usage`) and tool spend (`tool_spend`). Imports: every
stage below (`attributes`, `otel_internals`, `telemetry`, `pricing`, `attribution`, `budget`), never
`instrumentation`, `exporters`, `analysis` or `setup`.
"""

from costspan.rollup import tool_spend as _tool_spend  # noqa: F401  (installs the tool hook)
from costspan.rollup.processor import CALL_TALLY_ATTR, CostSpanProcessor

__all__ = ["CALL_TALLY_ATTR", "CostSpanProcessor"]
