"""The attribute contract (see README "Attribute contract"): every key costspan reads or writes."""

from typing import Final

# Attribution: baggage entries and span attributes share these keys.
CUSTOMER_ID: Final = "costspan.customer_id"
TASK: Final = "costspan.task"
TASK_ID: Final = "costspan.task_id"
FEATURE: Final = "costspan.feature"
AGENT: Final = "costspan.agent"
STEP: Final = "costspan.step"
ATTRIBUTION_KEYS: Final = (CUSTOMER_ID, TASK, TASK_ID, FEATURE, AGENT, STEP)

# On a priced call span (LLM or tool).
GEN_AI_USAGE_COST: Final = "gen_ai.usage.cost"
COST_INPUT_USD: Final = "costspan.cost.input_usd"
COST_OUTPUT_USD: Final = "costspan.cost.output_usd"
COST_CACHE_READ_USD: Final = "costspan.cost.cache_read_usd"
COST_CACHE_WRITE_USD: Final = "costspan.cost.cache_write_usd"
COST_STATUS: Final = "costspan.cost.status"
PRICE_SOURCE: Final = "costspan.price.source"

STATUS_PRICED: Final = "priced"
STATUS_UNKNOWN_MODEL: Final = "unknown_model"
STATUS_NO_USAGE: Final = "no_usage"

# On every span whose subtree (itself included) holds at least one call.
ROLLUP_COST_USD: Final = "costspan.rollup.cost_usd"
ROLLUP_LLM_CALLS: Final = "costspan.rollup.llm_calls"
ROLLUP_FAILED_CALLS: Final = "costspan.rollup.failed_calls"
ROLLUP_UNPRICED_CALLS: Final = "costspan.rollup.unpriced_calls"
ROLLUP_INPUT_TOKENS: Final = "costspan.rollup.input_tokens"
ROLLUP_OUTPUT_TOKENS: Final = "costspan.rollup.output_tokens"
ROLLUP_CACHE_READ_TOKENS: Final = "costspan.rollup.cache_read_tokens"
ROLLUP_CACHE_WRITE_TOKENS: Final = "costspan.rollup.cache_write_tokens"
ROLLUP_REASONING_TOKENS: Final = "costspan.rollup.reasoning_tokens"
ROLLUP_TOOL_CALLS: Final = "costspan.rollup.tool_calls"
# A child that ended after every local ancestor: its cost reached no ancestor span.
ROLLUP_LATE: Final = "costspan.rollup.late"

# Budgets (costspan.budget): on a call a budget sent to a cheaper model, and on the
# `costspan.budget.exceeded` span event of a call that found a budget spent.
BUDGET_DOWNGRADED_FROM: Final = "costspan.budget.downgraded_from"
BUDGET_EXCEEDED_EVENT: Final = "costspan.budget.exceeded"
BUDGET_SCOPE: Final = "costspan.budget.scope"
BUDGET_LIMIT_USD: Final = "costspan.budget.limit_usd"
BUDGET_SPENT_USD: Final = "costspan.budget.spent_usd"
BUDGET_ACTION: Final = "costspan.budget.action"
BUDGET_NAME: Final = "costspan.budget.name"
BUDGET_WORST_CASE_USD: Final = "costspan.budget.worst_case_usd"

# GenAI semantic conventions (and the legacy / third-party names the processor also reads).
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_SYSTEM: Final = "gen_ai.system"  # legacy name of gen_ai.provider.name
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"
GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: Final = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: Final = "gen_ai.usage.cache_write.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_USAGE_PROMPT_TOKENS: Final = "gen_ai.usage.prompt_tokens"  # pre-1.27 semconv
GEN_AI_USAGE_COMPLETION_TOKENS: Final = "gen_ai.usage.completion_tokens"  # pre-1.27 semconv
ERROR_TYPE: Final = "error.type"

OPERATION_INVOKE_AGENT: Final = "invoke_agent"
OPERATION_EXECUTE_TOOL: Final = "execute_tool"

# Provider instrumentors (issue 23): a call whose response ended before its final usage (an Anthropic
# stream without `message_delta`): never priced from the partial counts, counted as unpriced.
STATUS_INCOMPLETE_USAGE: Final = "incomplete_usage"

# Cost across services (README "Cost across services"). On a span whose subtree called other services
# that returned what they spent: the part of costspan.rollup.cost_usd / .llm_calls spent there.
ROLLUP_REMOTE_COST_USD: Final = "costspan.rollup.remote_cost_usd"
ROLLUP_REMOTE_LLM_CALLS: Final = "costspan.rollup.remote_llm_calls"
# On an HTTP client span whose response carried a `costspan-cost` header: what was done with it
# (`accepted`, `untrusted`, `bad_signature`, `malformed`), the host that sent it, and (accepted) the
# figures it returned. Like a call's own usage, they are not repeated as costspan.rollup.* on that span.
REMOTE_COST_STATUS: Final = "costspan.remote.status"
REMOTE_COST_PEER: Final = "costspan.remote.peer"
REMOTE_COST_USD: Final = "costspan.remote.cost_usd"
REMOTE_LLM_CALLS: Final = "costspan.remote.llm_calls"
REMOTE_INPUT_TOKENS: Final = "costspan.remote.input_tokens"
REMOTE_OUTPUT_TOKENS: Final = "costspan.remote.output_tokens"
REMOTE_STATUS_ACCEPTED: Final = "accepted"
# Other recorders of the same call (costspan.rollup.matching): on a call span that describes a
# provider request another span already counts. It carries no `gen_ai.usage.cost`.
STATUS_DUPLICATE: Final = "duplicate"
COST_COUNTED_IN: Final = "costspan.cost.counted_in"  # the span id (16 hex digits) that carries the cost
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
# A cost the recording library reports itself (LiteLLM's OTel callback): taken as the span's cost.
GEN_AI_COST_TOTAL: Final = "gen_ai.cost.total_cost"
PRICE_SOURCE_REPORTED: Final = "reported:gen_ai.cost.total_cost"
# Task runs (issue 28): how each `costspan.task` run ended, and the cost of its retried attempts.
TASK_OUTCOME: Final = "costspan.task.outcome"
TASK_FAILURE_REASON: Final = "costspan.task.failure_reason"
OUTCOME_SUCCESS: Final = "success"
OUTCOME_ERROR: Final = "error"
OUTCOME_REFUSED: Final = "refused"
TASK_OUTCOMES: Final = (OUTCOME_SUCCESS, OUTCOME_ERROR, OUTCOME_REFUSED)
ROLLUP_RETRY_COST_USD: Final = "costspan.rollup.retry_cost_usd"
# Backend cost attributes: written on a priced call only for the backends named in
# COSTSPAN_COST_ATTRIBUTES (costspan.rollup.backend_costs).
MLFLOW_LLM_COST: Final = "mlflow.llm.cost"  # JSON {"input_cost", "output_cost", "total_cost"}
LLM_COST_TOTAL: Final = "llm.cost.total"  # OpenInference
LLM_COST_PROMPT: Final = "llm.cost.prompt"
LLM_COST_PROMPT_DETAILS_INPUT: Final = "llm.cost.prompt_details.input"
LLM_COST_PROMPT_DETAILS_CACHE_READ: Final = "llm.cost.prompt_details.cache_read"
LLM_COST_PROMPT_DETAILS_CACHE_WRITE: Final = "llm.cost.prompt_details.cache_write"
LLM_COST_COMPLETION: Final = "llm.cost.completion"
GEN_AI_USAGE_COST_AMOUNT: Final = "gen_ai.usage.cost.amount"  # semantic-conventions-genai PR #443
GEN_AI_USAGE_COST_CURRENCY: Final = "gen_ai.usage.cost.currency"
GEN_AI_USAGE_COST_SOURCE: Final = "gen_ai.usage.cost.source"
