#!/usr/bin/env bash
# Prometheus rules, alerts and dashboard queries (tests_prometheus/) on a real Prometheus server and
# promtool (Debian's prometheus package), in their own venv with the OpenTelemetry Prometheus exporter.
set -euo pipefail
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
    # The package's service is not what the tests use: they start their own server on 127.0.0.1.
    (systemctl stop prometheus 2>/dev/null || service prometheus stop 2>/dev/null || true)
fi
python3 -m venv "$CI_WORK/prometheus"
"$CI_WORK/prometheus/bin/python" -m pip install -q --upgrade pip
"$CI_WORK/prometheus/bin/python" -m pip install -q -e ".[test,prometheus]"
"$CI_WORK/prometheus/bin/python" -m pytest -q -p no:cacheprovider -r fE tests_prometheus | grep -v "^\.*\s*\["
