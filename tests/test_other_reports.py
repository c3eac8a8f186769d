"""The verdict in the reports users already open, read by their real consumers: allure-pytest's
result files, pytest-html's report, and GitHub's workflow commands in the output."""

from __future__ import annotations

import json
import re

import pytest

from helpers import health

pytestmark = pytest.mark.usefixtures("demo")


def doc(service, *checks):
    return {"base_url": service.url, "health_checks": list(checks)}


def entry_line(path, name):
    """The line where the check's entry opens in the JSON file (the line its name is on, less one)."""
    return next(n for n, text in enumerate(path.read_text().splitlines(), 1) if f'"name": "{name}"' in text) - 1


@pytest.mark.child_plugins("allure_pytest")
def test_allure_calls_service_failures_failed_with_the_verdict_and_severities(
    pytester, write_config, demo, monkeypatch
):
    pytest.importorskip("allure_pytest")
    demo.faults.add("ready-503")
    monkeypatch.setenv("API_KEY", "Key-Secret-99")
    write_config(
        {
            **doc(
                demo,
                health("basic", "/health"),
                health("readiness", "/health/ready"),
                health("extra", "/nope", required=False),
            ),
            "headers": {"X-Api-Key": "${API_KEY}"},
            "basic_auth": {"username": "ops", "password": "Top-Secret-77"},
        }
    )
    result = pytester.runpytest("--smoke-config", "smoke.json", "--alluredir", "allure")
    assert result.ret == 1
    written = "".join(p.read_text() for p in (pytester.path / "allure").iterdir())
    assert (
        "Key-Secret-99" not in written and "Top-Secret-77" not in written and "b3BzOlRvcC1TZWNyZXQtNzc=" not in written
    )
    results = {
        r["name"]: r for r in (json.loads(p.read_text()) for p in (pytester.path / "allure").glob("*-result.json"))
    }
    assert {name: r["status"] for name, r in results.items()} == {
        "health[basic]": "passed",
        "health[readiness]": "failed",
        "health[extra]": "failed",
    }  # failed, not broken: the service answered wrongly
    severity = {
        name: next(label["value"] for label in r["labels"] if label["name"] == "severity")
        for name, r in results.items()
    }
    assert severity == {"health[basic]": "critical", "health[readiness]": "critical", "health[extra]": "normal"}
    environment = (pytester.path / "allure" / "environment.properties").read_text()
    assert "smoke.verdict=\\u2717 CRITICAL: Smoke tests failed" in environment
    assert "smoke.exit_status=1" in environment


@pytest.mark.child_plugins("allure_pytest")
def test_allure_keeps_a_not_evaluated_check_broken(pytester, write_config):
    pytest.importorskip("allure_pytest")
    pytester.makeconftest(
        "def pytest_smoke_check_type(name):\n    return (lambda spec, ctx: 1 / 0) if name == 'buggy' else None\n"
    )
    write_config({"dependency_checks": [{"name": "queue", "type": "buggy"}]})
    result = pytester.runpytest("--smoke-config", "smoke.json", "--alluredir", "allure")
    assert result.ret == 12  # inconclusive: our bug, not the service's failure
    (found,) = [json.loads(p.read_text()) for p in (pytester.path / "allure").glob("*-result.json")]
    assert found["status"] == "broken"


@pytest.mark.child_plugins("html", "metadata")
@pytest.mark.parametrize(
    "fault, required, headline",
    [
        ("/nope", False, "⚠ WARNING: Non-critical test failed (deployment continues)"),
        ("/health/ready", True, "✗ CRITICAL: Smoke tests failed"),
    ],
    ids=["warning", "critical"],
)
def test_pytest_html_shows_the_verdict_in_its_summary_and_title(
    pytester, write_config, demo, fault, required, headline
):
    pytest.importorskip("pytest_html")
    demo.faults.add("ready-503")
    write_config(doc(demo, health("basic", "/health"), health("second", fault, required=required)))
    result = pytester.runpytest("--smoke-config", "smoke.json", "--html=report.html", "--self-contained-html")
    assert result.ret == (1 if required else 0)
    page = (pytester.path / "report.html").read_text()
    assert f'<p class="smoke-verdict"><strong>{headline}</strong></p>' in page
    assert re.search(rf"<title[^>]*>report\.html: {re.escape(headline)}</title>", page)


def test_github_actions_gets_an_annotation_per_critical_failure_and_warning(pytester, write_config, demo, monkeypatch):
    demo.faults.add("ready-503")
    path = write_config(
        doc(
            demo,
            health("basic", "/health"),
            health("readiness", "/health/ready"),
            health("extra", "/nope", required=False),
        )
    )
    pytester.makepyfile(
        test_custom=(
            "import pytest\n\n@pytest.mark.smoke_optional\ndef test_orders():\n    assert 1 == 2, 'orders: 1 of 2'\n"
        )
    )
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    result = pytester.runpytest("--smoke-config", "smoke.json")
    assert result.ret == 1
    commands = [line for line in result.outlines if line.startswith("::")]
    assert commands == [
        f"::error file=smoke.json,line={entry_line(path, 'readiness')},title=Smoke health readiness%3A critical::"
        "/health/ready returned 503 (expected 200); failing: database: connection failed",
        f"::warning file=smoke.json,line={entry_line(path, 'extra')},title=Smoke health extra%3A warning::/nope "
        "returned 404 (expected 200)",
        "::warning file=test_custom.py,title=Smoke custom test_orders%3A warning::AssertionError: orders: 1 of 2",
    ], commands
    monkeypatch.delenv("GITHUB_ACTIONS")
    assert not [line for line in pytester.runpytest("--smoke-config", "smoke.json").outlines if line.startswith("::")]


@pytest.mark.child_plugins("allure_pytest")
def test_an_allure_environment_that_cannot_be_written_costs_only_a_note(pytester, write_config, demo):
    pytest.importorskip("allure_pytest")
    demo.faults.add("ready-503")
    (pytester.path / "allure" / "environment.properties").mkdir(parents=True)  # not a file: the write fails
    write_config(doc(demo, health("readiness", "/health/ready")))
    result = pytester.runpytest(
        "--smoke-config", "smoke.json", "--alluredir", "allure", "--smoke-report", "report.json"
    )
    assert result.ret == 1  # the verdict's exit code, not an internal error
    result.stdout.fnmatch_lines(
        ["✗ CRITICAL: Smoke tests failed*", "*could not write Allure's environment.properties: IsADirectoryError*"]
    )
    assert json.loads((pytester.path / "report.json").read_text())["verdict"]["state"] == "critical"
