#!/usr/bin/env bash
# Other libraries' instrumentors (OpenLLMetry, OpenInference) on the real SDKs, in their own venv:
# they register instrumentors for the same SDKs as costspan.
set -euo pipefail
python3 -m venv "$CI_WORK/thirdparty"
"$CI_WORK/thirdparty/bin/python" -m pip install -q --upgrade pip
"$CI_WORK/thirdparty/bin/python" -m pip install -q -e ".[test,thirdparty]"
"$CI_WORK/thirdparty/bin/python" -m pytest -q -p no:cacheprovider -r fE tests_thirdparty | grep -v "^\.*\s*\["
