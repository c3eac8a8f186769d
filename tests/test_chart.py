"""The Mermaid gantt chart of a run, in the Markdown report, rendered to SVG by the real Mermaid
(@mermaid-js/mermaid-cli on Debian's chromium; .ci/run installs both, no browser is downloaded)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import health

MERMAID_CLI = (
    os.environ.get("MERMAID_CLI") or shutil.which("mmdc") or "/tmp/pytest-smoke-mermaid/node_modules/.bin/mmdc"
)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def mermaid_block(markdown: str) -> str:
    return markdown.split("```mermaid\n", 1)[1].split("```", 1)[0]


def render(tmp_path: Path, chart: str) -> str:
    if not (shutil.which("node") and CHROMIUM and os.path.exists(MERMAID_CLI)):
        pytest.skip("rendering needs node, chromium and @mermaid-js/mermaid-cli (bash .ci/run installs them)")
    (tmp_path / "chart.mmd").write_text(chart)
    (tmp_path / "puppeteer.json").write_text(
        json.dumps(
            {
                "executablePath": CHROMIUM,
                "args": [
                    "--no-sandbox",
                    "--headless",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                ],
            }
        )
    )
    done = subprocess.run(
        [
            MERMAID_CLI,
            "-p",
            str(tmp_path / "puppeteer.json"),
            "-i",
            str(tmp_path / "chart.mmd"),
            "-o",
            str(tmp_path / "chart.svg"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr  # a syntax error in the chart fails here
    return (tmp_path / "chart.svg").read_text()


def test_the_markdown_report_draws_the_run_and_mermaid_renders_it(pytester, write_config, demo, tmp_path):
    demo.faults.add("ready-503")
    write_config(
        {
            "base_url": demo.url,
            "health_checks": [
                health("live", "/health/live"),
                health("ready; the database #1", "/health/ready"),
                health("optional", "/health/ready", required=False),
            ],
        }
    )
    result = pytester.runpytest(
        "--smoke-config", "smoke.json", "--smoke-markdown", "report.md", "--smoke-report", "report.json"
    )
    assert result.ret == 1
    chart = mermaid_block((pytester.path / "report.md").read_text())
    lines = chart.splitlines()
    assert lines[0] == "gantt" and "    dateFormat YYYY-MM-DDTHH:mm:ss.SSS" in lines
    bars = {line.split(" :")[0].strip(): line.split(" :")[1].split(",")[0] for line in lines if ", c" in line}
    # Mermaid gives ";" and "#" a meaning in a task line: they are dropped, the rest kept.
    assert bars == {"✓ live": "done", "✗ ready the database 1 failed": "crit", "✗ optional failed (optional)": "crit"}
    assert "Failures detected :milestone" in chart

    # A rollback gets its own section; Mermaid parses and draws all of it.
    report = json.loads((pytester.path / "report.json").read_text())
    report["rollback"] = {
        "status": "completed",
        "started_at": report["finished_at"],
        "finished_at": report["finished_at"],
    }
    from pytest_smoke.report.chart import gantt

    with_rollback = gantt(report)
    assert "    section Rollback\n    Rollback completed :done, r0, " in with_rollback
    svg = render(tmp_path, with_rollback)
    assert "✗ ready the database 1 failed" in svg and "Rollback completed" in svg and "crit" in svg


def test_a_run_with_nothing_timed_draws_no_chart(pytester, write_config, demo):
    write_config({"base_url": demo.url, "health_checks": [health("live", "/health/live")]})
    assert pytester.runpytest("--smoke-config", "smoke.json", "--smoke-markdown", "report.md", "-k", "nothing").ret == 5
    assert "```mermaid" not in (pytester.path / "report.md").read_text()
