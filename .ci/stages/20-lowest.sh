#!/usr/bin/env bash
# The lowest versions pyproject.toml admits (.ci/lowest.txt), the whole suite.
set -euo pipefail
python3 -m venv "$CI_WORK/lowest"
"$CI_WORK/lowest/bin/python" -m pip install -q --upgrade pip
"$CI_WORK/lowest/bin/python" -m pip install -q -c .ci/lowest.txt -e ".[test]"
"$CI_WORK/lowest/bin/python" -m pytest -q -p no:cacheprovider -r fE | grep -v "^\.*\s*\["
