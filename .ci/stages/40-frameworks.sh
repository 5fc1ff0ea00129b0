#!/usr/bin/env bash
# Agent frameworks (pydantic-ai, OpenAI Agents SDK, LangChain/LangGraph, LiteLLM) and their
# OpenInference / OpenLLMetry instrumentations beside costspan, in their own venv: each provider
# request must be counted once (tests_frameworks/).
set -euo pipefail
# With the pip that `python3 -m venv` installs (never upgraded here): costspan must install beside the
# frameworks' current releases with an old resolver too (the other stages use the newest pip).
python3 -m venv "$CI_WORK/frameworks"
"$CI_WORK/frameworks/bin/python" -m pip --version
"$CI_WORK/frameworks/bin/python" -m pip install -q -e ".[test,frameworks,litellm]"
LITELLM_LOCAL_MODEL_COST_MAP=True "$CI_WORK/frameworks/bin/python" -m pytest -q -p no:cacheprovider -r fE \
    -W ignore::DeprecationWarning tests_frameworks | grep -v "^\.*\s*\["
