-- costspan report over ClickHouse: cost per task type, customer, feature, agent, step or model, read
-- from the table the OpenTelemetry Collector's `clickhouse` exporter writes (default `otel_traces`).
-- The same numbers as `costspan report SPAN_FILES` (src/costspan/analysis/spans.py and report.py):
--
-- - a call is a span with `costspan.cost.status` (LLM calls, priced or not) or a tool span
--   (`gen_ai.operation.name=execute_tool`); a `duplicate` call (its cost is on another span) is
--   never counted; its cost is its own `gen_ai.usage.cost`, never a rollup;
-- - a run is a task span (`costspan.task` = span name, with `costspan.task_id`); it is successful
--   when `costspan.task.outcome=success`, or it has no outcome and its status is not Error;
-- - `$/run` p50 and p95 are nearest-rank percentiles; `--since`/`--until` select runs by their task
--   span's start (calls outside a run by their own).
--
-- The exporter writes every attribute value as a string (`SpanAttributes Map(LowCardinality(String),
-- String)`): numbers are read back exactly (costs as Decimal(38, 24)). StatusCode is `Error` (older
-- exporters: `STATUS_CODE_ERROR`).
--
-- Query parameters (`costspan report --clickhouse URL` sets them; with clickhouse-client:
--   clickhouse-client --database otel --param_table=otel_traces --param_by=task \
--       --param_since_ns=0 --param_until_ns=9223372036854775807 --queries-file report.sql):
--   table     the exporter's traces table (`traces_table_name`), in the connection's database
--   by        task | customer | feature | agent | step | model
--   since_ns  runs that started at or after this time (Unix nanoseconds; 0: no lower bound)
--   until_ns  runs that started before this time (9223372036854775807: no upper bound)
--
-- One row per group, dearest first: grp (NULL: the calls and runs that name no such group), runs,
-- successful_runs, cost_usd, cost_per_run_p50, cost_per_run_p95, retry_cost_usd (NULL for agent,
-- step and model: a run-level figure), llm_calls, unpriced_calls, input_tokens, output_tokens.
-- (`costspan report` divides cost_usd by successful_runs for $/successful run.)
WITH
spans AS (
    SELECT
        SpanName AS name,
        toUnixTimestamp64Nano(Timestamp) AS start_ns,
        StatusCode IN ('Error', 'STATUS_CODE_ERROR') AS failed,
        if(mapContains(SpanAttributes, 'gen_ai.operation.name'),
           SpanAttributes['gen_ai.operation.name'], NULL) AS operation,
        if(mapContains(SpanAttributes, 'costspan.cost.status'),
           SpanAttributes['costspan.cost.status'], NULL) AS cost_status,
        if(mapContains(SpanAttributes, 'costspan.task'), SpanAttributes['costspan.task'], NULL) AS task,
        if(mapContains(SpanAttributes, 'costspan.task_id'), SpanAttributes['costspan.task_id'], NULL) AS task_id,
        if(mapContains(SpanAttributes, 'costspan.customer_id'),
           SpanAttributes['costspan.customer_id'], NULL) AS customer,
        if(mapContains(SpanAttributes, 'costspan.feature'), SpanAttributes['costspan.feature'], NULL) AS feature,
        if(mapContains(SpanAttributes, 'costspan.agent'), SpanAttributes['costspan.agent'], NULL) AS agent,
        if(mapContains(SpanAttributes, 'costspan.step'), SpanAttributes['costspan.step'], NULL) AS step,
        coalesce(
            if(mapContains(SpanAttributes, 'gen_ai.response.model'), SpanAttributes['gen_ai.response.model'], NULL),
            if(mapContains(SpanAttributes, 'gen_ai.request.model'), SpanAttributes['gen_ai.request.model'], NULL),
            if(mapContains(SpanAttributes, 'llm.model_name'), SpanAttributes['llm.model_name'], NULL)
        ) AS model_name,
        if(mapContains(SpanAttributes, 'gen_ai.tool.name'), SpanAttributes['gen_ai.tool.name'], NULL) AS tool_name,
        if(mapContains(SpanAttributes, 'costspan.task.outcome'),
           SpanAttributes['costspan.task.outcome'], NULL) AS outcome,
        if(mapContains(SpanAttributes, 'gen_ai.usage.cost'), SpanAttributes['gen_ai.usage.cost'], NULL) AS cost_text,
        if(mapContains(SpanAttributes, 'costspan.rollup.retry_cost_usd'),
           SpanAttributes['costspan.rollup.retry_cost_usd'], NULL) AS retry_cost_text,
        coalesce(
            if(mapContains(SpanAttributes, 'gen_ai.usage.input_tokens'),
               SpanAttributes['gen_ai.usage.input_tokens'], NULL),
            if(mapContains(SpanAttributes, 'gen_ai.usage.prompt_tokens'),
               SpanAttributes['gen_ai.usage.prompt_tokens'], NULL),
            if(mapContains(SpanAttributes, 'llm.token_count.prompt'), SpanAttributes['llm.token_count.prompt'], NULL)
        ) AS input_tokens_text,
        coalesce(
            if(mapContains(SpanAttributes, 'gen_ai.usage.output_tokens'),
               SpanAttributes['gen_ai.usage.output_tokens'], NULL),
            if(mapContains(SpanAttributes, 'gen_ai.usage.completion_tokens'),
               SpanAttributes['gen_ai.usage.completion_tokens'], NULL),
            if(mapContains(SpanAttributes, 'llm.token_count.completion'),
               SpanAttributes['llm.token_count.completion'], NULL)
        ) AS output_tokens_text
    FROM {table:Identifier}
    -- Only the spans the report reads (the exporter's bloom-filter index on mapKeys(SpanAttributes)
    -- skips granules without them). No cut on Timestamp here: a run is selected by its task span's
    -- start, so a run that started before since_ns must be read to leave out its later calls.
    WHERE mapContains(SpanAttributes, 'costspan.cost.status')
       OR SpanAttributes['gen_ai.operation.name'] = 'execute_tool'
       OR mapContains(SpanAttributes, 'costspan.task_id')
),
flat AS (
    SELECT *,
           ifNull(operation, '') = 'execute_tool' AS is_tool,
           if(ifNull(cost_status, '') <> 'invalid_usage', toDecimal128OrNull(cost_text, 24), NULL) AS cost,
           if(ifNull(cost_status, '') <> 'invalid_usage', toInt64OrNull(input_tokens_text), NULL) AS input_tokens,
           if(ifNull(cost_status, '') <> 'invalid_usage', toInt64OrNull(output_tokens_text), NULL) AS output_tokens,
           toDecimal128OrNull(retry_cost_text, 24) AS retry_cost
    FROM spans
    WHERE (cost_status IS NOT NULL AND cost_status <> 'duplicate')
       OR is_tool
       OR (task_id IS NOT NULL AND name = task)
),
runs AS (
    SELECT task AS run_task, task_id AS run_task_id,
           argMin(customer, start_ns) AS run_customer, argMin(feature, start_ns) AS run_feature,
           min(start_ns) AS run_start_ns,
           argMin(if(outcome IS NOT NULL, outcome = 'success', NOT failed), start_ns) AS run_success,
           ifNull(argMin(retry_cost, start_ns), toDecimal128(0, 24)) AS run_retry_cost
    FROM flat
    WHERE task_id IS NOT NULL AND name = task AND cost_status IS NULL AND NOT is_tool
    GROUP BY task, task_id
),
calls AS (
    SELECT *,
           if(is_tool, concat('tool ', coalesce(tool_name, name)), model_name) AS model,
           NOT is_tool AND (ifNull(cost_status IN ('unknown_model', 'invalid_usage'), false)
                            OR (ifNull(cost_status = 'no_usage', false) AND NOT failed)) AS unpriced
    FROM flat
    WHERE cost_status IS NOT NULL OR is_tool
),
c AS (
    SELECT multiIf({by:String} = 'task', calls.task, {by:String} = 'customer', calls.customer,
                   {by:String} = 'feature', calls.feature, {by:String} = 'agent', calls.agent,
                   {by:String} = 'step', calls.step, calls.model) AS grp,
           calls.task AS c_task, calls.task_id AS c_task_id, calls.cost AS c_cost, calls.is_tool AS c_is_tool,
           calls.unpriced AS c_unpriced, calls.input_tokens AS c_input_tokens,
           calls.output_tokens AS c_output_tokens
    FROM calls LEFT JOIN runs ON runs.run_task = calls.task AND runs.run_task_id = calls.task_id
    WHERE coalesce(runs.run_start_ns, calls.start_ns) >= {since_ns:Int64}
      AND coalesce(runs.run_start_ns, calls.start_ns) < {until_ns:Int64}
),
per_run AS (
    SELECT grp, p_task, p_task_id, sum(p_cost) AS run_cost
    FROM (
        SELECT grp, c_task AS p_task, c_task_id AS p_task_id, ifNull(c_cost, toDecimal128(0, 24)) AS p_cost
        FROM c WHERE c_task_id IS NOT NULL
        UNION ALL
        -- by task, customer or feature a run with no call counts too, at $0
        SELECT multiIf({by:String} = 'task', run_task, {by:String} = 'customer', run_customer, run_feature),
               run_task, run_task_id, toDecimal128(0, 24)
        FROM runs
        WHERE {by:String} IN ('task', 'customer', 'feature')
          AND run_start_ns >= {since_ns:Int64} AND run_start_ns < {until_ns:Int64}
    )
    GROUP BY grp, p_task, p_task_id
),
run_stats AS (
    SELECT grp, count() AS runs, countIf(ifNull(run_success, false)) AS successful_runs,
           arraySort(groupArray(run_cost)) AS costs,
           costs[greatest(1, intDiv(length(costs) + 1, 2))] AS p50,
           costs[greatest(1, intDiv(95 * length(costs) + 99, 100))] AS p95,
           sum(ifNull(run_retry_cost, toDecimal128(0, 24))) AS retry_cost
    FROM per_run LEFT JOIN runs ON runs.run_task = per_run.p_task AND runs.run_task_id = per_run.p_task_id
    GROUP BY grp
),
call_stats AS (
    SELECT grp, ifNull(sum(c_cost), toDecimal128(0, 24)) AS cost,
           countIf(NOT c_is_tool) AS llm_calls, countIf(c_unpriced) AS unpriced_calls,
           ifNull(sumIf(c_input_tokens, NOT c_is_tool), 0) AS input_tokens,
           ifNull(sumIf(c_output_tokens, NOT c_is_tool), 0) AS output_tokens
    FROM c
    GROUP BY grp
)
SELECT grp,
       sum(g_runs) AS runs,
       sum(g_successful_runs) AS successful_runs,
       sum(g_cost) AS cost_usd,
       max(g_p50) AS cost_per_run_p50,
       max(g_p95) AS cost_per_run_p95,
       if({by:String} IN ('task', 'customer', 'feature'), sum(g_retry_cost), NULL) AS retry_cost_usd,
       sum(g_llm_calls) AS llm_calls,
       sum(g_unpriced_calls) AS unpriced_calls,
       sum(g_input_tokens) AS input_tokens,
       sum(g_output_tokens) AS output_tokens
FROM (
    SELECT grp, toUInt64(0) AS g_runs, toUInt64(0) AS g_successful_runs, cost AS g_cost,
           CAST(NULL AS Nullable(Decimal(38, 24))) AS g_p50, CAST(NULL AS Nullable(Decimal(38, 24))) AS g_p95,
           toDecimal128(0, 24) AS g_retry_cost, llm_calls AS g_llm_calls, unpriced_calls AS g_unpriced_calls,
           toInt64(input_tokens) AS g_input_tokens, toInt64(output_tokens) AS g_output_tokens
    FROM call_stats
    UNION ALL
    SELECT grp, runs, successful_runs, toDecimal128(0, 24), p50, p95, retry_cost,
           toUInt64(0), toUInt64(0), toInt64(0), toInt64(0)
    FROM run_stats
)
GROUP BY grp
ORDER BY grp IS NULL, cost_usd DESC, grp
SETTINGS join_use_nulls = 1
