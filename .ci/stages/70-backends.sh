#!/usr/bin/env bash
# Real Phoenix and MLflow servers fed over OTLP/HTTP by costspan-instrumented openai calls
# (tests_backends/). Three virtualenvs, installed in parallel: Phoenix's, MLflow's (their
# dependencies clash, and the servers run from them as subprocesses) and costspan's test one.
set -euo pipefail
start=$SECONDS
install() {  # venv, then pip arguments
    local venv="$1"
    shift
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip
    "$venv/bin/python" -m pip install -q "$@"
}
install "$CI_WORK/backends-phoenix" -r .ci/backends-phoenix.txt >"$CI_WORK/backends-phoenix.log" 2>&1 &
phoenix=$!
install "$CI_WORK/backends-mlflow" -r .ci/backends-mlflow.txt >"$CI_WORK/backends-mlflow.log" 2>&1 &
mlflow=$!
install "$CI_WORK/backends" -e ".[test]" >"$CI_WORK/backends-test.log" 2>&1 &
tests=$!
failed=0
for job in "phoenix:$phoenix" "mlflow:$mlflow" "test:$tests"; do
    if ! wait "${job#*:}"; then
        echo "install of the ${job%%:*} virtualenv failed:"
        cat "$CI_WORK/backends-${job%%:*}.log"
        failed=1
    fi
done
[ "$failed" -eq 0 ] || exit 1
echo "backends: virtualenvs installed in $((SECONDS - start)) s"
"$CI_WORK/backends-phoenix/bin/python" -m pip list 2>/dev/null | grep -E '^arize-phoenix ' || true
"$CI_WORK/backends-mlflow/bin/python" -m pip list 2>/dev/null | grep -E '^mlflow ' || true
tests_start=$SECONDS
BACKENDS_PHOENIX_PYTHON="$CI_WORK/backends-phoenix/bin/python" \
BACKENDS_MLFLOW_PYTHON="$CI_WORK/backends-mlflow/bin/python" \
    "$CI_WORK/backends/bin/python" -m pytest -q -p no:cacheprovider -r fE --durations=5 --timeout=900 tests_backends
echo "backends: tests ran in $((SECONDS - tests_start)) s"
