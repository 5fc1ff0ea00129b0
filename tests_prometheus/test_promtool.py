"""promtool: the shipped rules are valid, and each alert fires under one series and not another."""

from __future__ import annotations

import subprocess
from pathlib import Path

from prometheus_server import ROOT, RULE_FILES, RULES_DIR, tool

PROMTOOL_TESTS = sorted((Path(__file__).parent / "promtool").glob("*.test.yml"))


def test_promtool_check_rules() -> None:
    done = subprocess.run(
        [tool("promtool"), "check", "rules", *(str(RULES_DIR / name) for name in RULE_FILES)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == len(RULE_FILES)


def test_promtool_unit_tests_of_every_alert() -> None:
    assert [p.name for p in PROMTOOL_TESTS] == ["alerts.test.yml", "customer-threshold.test.yml"]
    text = "".join(p.read_text() for p in PROMTOOL_TESTS)
    alerts = [
        line.split(":", 1)[1].strip()
        for line in (RULES_DIR / "costspan-alerts.rules.yml").read_text().splitlines()
        if line.strip().startswith("- alert:")
    ]
    assert len(alerts) == 4
    for alert in alerts:  # each one is tested both firing (exp_alerts with labels) and quiet
        assert f"alertname: {alert}\n        exp_alerts: []" in text, alert
        assert f"alertname: {alert}\n        exp_alerts:\n          - exp_labels" in text, alert
    done = subprocess.run(
        [tool("promtool"), "test", "rules", *(str(p) for p in PROMTOOL_TESTS)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == len(PROMTOOL_TESTS), done.stdout
