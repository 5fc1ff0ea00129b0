"""Stage 7: answers from exported spans (`costspan report`, baselines, the CI cost gate).

One job: read span files written by the exporters (or a Collector) and aggregate cost per task,
customer, feature, agent, step and model. Imports: `attributes`, `pricing` (re-pricing) and
`exporters`' file format; nothing of the live pipeline.
"""
