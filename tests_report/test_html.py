"""--format html: one file with no external resource, rendered by headless Chromium: every chart drawn
with the right numbers (read from the DOM after the page's script ran), and a screenshot."""

from __future__ import annotations

import re
import shutil
import subprocess
from decimal import Decimal as D
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conftest import Scenario, costspan_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _chromium(tmp_path: Path, *args: str) -> str:
    assert CHROMIUM, "chromium is not installed (the CI stage installs Debian's chromium)"
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


class Marks(HTMLParser):
    """Every drawn mark: (chart id, data-label, data-value)."""

    def __init__(self) -> None:
        super().__init__()
        self.chart: str | None = None
        self.marks: list[tuple[str, str, str]] = []
        self.rendered = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "body" and found.get("data-rendered") == "true":
            self.rendered = True
        if tag == "svg" and found.get("data-chart"):
            self.chart = found["data-chart"]
        if found.get("class") == "mark" and self.chart:
            self.marks.append((self.chart, found["data-label"] or "", found["data-value"] or ""))


@pytest.fixture(scope="module")
def page(scenario: Scenario, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("html") / "report.html"
    costspan_report(str(scenario.path), "--format", "html", "-o", str(out))
    return out


def test_self_contained(page: Path) -> None:
    text = page.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "@import" not in text and "url(" not in text


def test_every_chart_rendered_with_the_right_numbers(page: Path, tmp_path: Path) -> None:
    dom = _chromium(tmp_path, "--dump-dom", page.as_uri())
    marks = Marks()
    marks.feed(dom)
    assert marks.rendered, "the page's script did not finish"
    by_chart: dict[str, dict[str, D]] = {}
    for chart, label, value in marks.marks:
        if "-" in value and chart == "chart-distribution":
            continue
        by_chart.setdefault(chart, {})[label] = D(value)
    assert by_chart["chart-customers"] == {"cus_a": D("0.11022"), "cus_b": D("0.006")}
    assert by_chart["chart-models"] == {
        "tool enrich": D("0.1"),
        "gpt-4o-2024-08-06": D("0.012"),
        "claude-haiku-4-5-20251001": D("0.0035"),
        "gpt-4o-mini-2024-07-18": D("0.00072"),
        "mystery-model-1": D("0"),
    }
    # per run: summarize $0.00036, $0.00036, $0.006 (nearest rank p50 / p95)
    distribution = by_chart["chart-distribution"]
    assert (distribution["summarize p50"], distribution["summarize p95"]) == (D("0.00036"), D("0.006"))
    assert (distribution["research p50"], distribution["research p95"]) == (D("0.1095"), D("0.1095"))
    # the scenario runs within one hour or two: each task's bars add up to its cost
    over_time: dict[str, D] = {}
    for label, value in by_chart["chart-over-time"].items():
        task = label.split(" @ ")[0]
        over_time[task] = over_time.get(task, D(0)) + value
    assert over_time == {"research": D("0.1095"), "summarize": D("0.00672"), "classify": D("0")}


def test_screenshot(page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    _chromium(tmp_path, "--window-size=1300,1000", f"--screenshot={shot}", page.as_uri())
    assert shot.stat().st_size > 20_000  # a blank page is a few kB
