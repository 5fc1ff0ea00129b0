#!/usr/bin/env bash
# `costspan report` (issue 27): its own virtualenv with the `report` extra (DuckDB), the
# `report-test` extra (chDB: the ClickHouse report's SQL on ClickHouse's engine) and Debian's
# chromium for the HTML report test; then the CI cost gate on the project's own examples: they run
# against the bundled fake provider (deterministic), write their spans with the costspan_file
# exporter, and their cost per successful run per task type must stay within 10% of
# examples/cost-baseline.json.
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
    as_root=""
    [ "$(id -u)" -eq 0 ] || as_root="sudo"
    $as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq chromium >/dev/null
fi
python3 -m venv "$CI_WORK/report"
"$CI_WORK/report/bin/python" -m pip install -q --upgrade pip
"$CI_WORK/report/bin/python" -m pip install -q -e ".[test,report,report-test]"

spans="$CI_WORK/example-spans/spans.jsonl"
for example in lead_enrichment react_loop document_pipeline multi_provider web_service; do
    env -u OPENAI_API_KEY -u ANTHROPIC_API_KEY -u GEMINI_API_KEY -u GOOGLE_API_KEY \
        OTEL_TRACES_EXPORTER=costspan_file COSTSPAN_FILE="$spans" \
        "$CI_WORK/report/bin/python" "examples/$example.py" >/dev/null
done
"$CI_WORK/report/bin/costspan" report "$spans" --baseline examples/cost-baseline.json --max-increase 10%

"$CI_WORK/report/bin/python" -m pytest -q -p no:cacheprovider -r fE tests_report | grep -v "^\.*\s*\["
