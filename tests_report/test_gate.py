"""The CI cost gate: a saved baseline, then the same work (exit 0) and dearer work (exit 1 with a table)."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import ROOT, Scenario, costspan_report


def test_gate_passes_on_the_same_work_and_fails_on_dearer(
    scenario: Scenario, dearer_scenario: Scenario, tmp_path: Path
) -> None:
    baseline = tmp_path / "cost-baseline.json"
    costspan_report(str(scenario.path), "--save-baseline", str(baseline))
    saved = json.loads(baseline.read_text())
    assert saved["tasks"]["summarize"] == {
        "cost_per_successful_run": "0.00336",
        "runs": 3,
        "successful_runs": 2,
    }
    assert saved["tasks"]["classify"]["cost_per_successful_run"] is None

    same = costspan_report(str(scenario.path), "--baseline", str(baseline), "--max-increase", "10%")
    passed = "cost gate passed: no task type rose more than 10% in cost per successful run"
    assert same.stdout.splitlines()[-1] == passed

    # --dearer: the two summarize runs use gpt-4o ($0.006) instead of gpt-4o-mini ($0.00036):
    # $/successful run goes from $0.00336 to $0.009 (+167.9%); research is unchanged.
    dearer = costspan_report(
        str(dearer_scenario.path), "--baseline", str(baseline), "--max-increase", "10%", check=False
    )
    assert dearer.returncode == 1, dearer.stdout + dearer.stderr
    lines = dearer.stdout.splitlines()
    assert lines[0].split() == ["task", "baseline", "$/ok", "run", "now", "$/ok", "run", "change"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:-1]}
    assert rows["summarize"] == ["$0.003360", "$0.009000", "+167.9%", "FAIL"]
    assert rows["research"] == ["$0.109500", "$0.109500", "+0.0%", "ok"]
    assert lines[-1] == "cost gate FAILED: 1 task type rose more than 10% in cost per successful run"

    # a looser threshold lets it through
    loose = costspan_report(str(dearer_scenario.path), "--baseline", str(baseline), "--max-increase", "200%")
    assert loose.returncode == 0


def test_bad_baseline_or_threshold(scenario: Scenario, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    done = costspan_report(str(scenario.path), "--baseline", str(bad), check=False)
    assert done.returncode == 2
    assert done.stderr.strip() == f"costspan report: {bad}: not a costspan baseline (version 1 with 'tasks')"
    done = costspan_report(
        str(scenario.path),
        "--baseline",
        str(ROOT / "examples" / "cost-baseline.json"),
        "--max-increase",
        "ten",
        check=False,
    )
    assert done.returncode == 2 and "--max-increase 'ten': not a percentage" in done.stderr
