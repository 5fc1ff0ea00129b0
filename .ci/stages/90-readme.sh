#!/usr/bin/env bash
# Newest versions: README.md's "Run the tests" (its install, then lint, then its test command last,
# so that the pytest summary closes the log).
set -euo pipefail
python3 -m venv "$CI_WORK/venv"
# shellcheck disable=SC1091
. "$CI_WORK/venv/bin/activate"
python -m pip install -q --upgrade pip
pip install -q -e ".[test]"
ruff check src tests tests_thirdparty benchmarks examples
ruff format --check src tests tests_thirdparty benchmarks examples
python -m pytest
