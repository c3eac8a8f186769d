"""Reports and notifications: terminal shapes, JUnit (XSD-validated), JSON (schema-validated),
Markdown, and Slack / webhook / e-mail delivered to real local receivers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from helpers import SLACK_TOKEN, SMTP_PASSWORD, health
from servers import free_port

XSD = Path(__file__).parent / "data" / "junit-10.xsd"
REPORT_SCHEMA = Path(__file__).resolve().parents[1] / "pytest_smoke" / "schema" / "smoke-report.schema.json"


def doc(demo, **extra):
    base = {
        "base_url": demo.url,
        "health_checks": [
            health("basic-health", "/health"),
            health("readiness", "/health/ready"),
            health("liveness", "/health/live", required=False, timeout_seconds=1),
        ],
        "dependency_checks": [{"name": "auth", "type": "http", "url": demo.url + "/health", "required": True}],
        "critical_paths": [
            {"name": "core-api", "steps": [{"endpoint": "/api/resources"}]},
            {
                "name": "rate-limiting",
                "required": False,
                "steps": [{"endpoint": "/api/limited", "rate_limit": {"requests": 12}}],
            },
        ],
    }
    base.update(extra)
    return base


def verdict_section(result):
    out = result.stdout.str()
    section = out.split("smoke verdict", 1)[1].split("short test summary info", 1)[0]
    section = re.sub(r"\d\d:\d\d:\d\d", "HH:MM:SS", section)
    section = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", section)
    section = re.sub(r" --basetemp=\S+", "", section)  # pytester's own argument, in the re-run line
    lines = [line for line in section.splitlines()[1:] if not line.startswith("====")]
    return [line for line in lines if not re.fullmatch(r"\d+ (passed|failed).* in [\d.]+s", line)]


# -- terminal: the seed's three shapes -------------------------------------------------------------


def test_terminal_shape_all_passed(pytester, write_config, demo):
    write_config(doc(demo))
    result = pytester.runpytest("--smoke-config", "smoke.json", "-q")
    assert result.ret == 0
    assert verdict_section(result) == [
        "✓ Smoke tests passed (all health checks OK)",
        "- Health check: OK (basic-health, readiness, liveness)",
        "- Dependencies: OK (auth)",
        "- Critical paths: OK (core-api, rate-limiting)",
        "Deployment stable. Monitoring active.",
        "Re-run: pytest --smoke-config smoke.json -q",
    ]


def test_a_large_passing_group_is_one_short_line(pytester, write_config, demo):
    write_config({"base_url": demo.url, "health_checks": [health(f"h{i}", f"/health?i={i}") for i in range(25)]})
    result = pytester.runpytest("--smoke-config", "smoke.json", "-q")
    assert result.ret == 0
    assert "- Health check: OK (h0, h1, h2, h3, h4, h5, h6, h7, h8, h9 and 15 more)" in verdict_section(result)
    # Eleven names take no more room than ten and a count: all are shown.
    write_config({"base_url": demo.url, "health_checks": [health(f"h{i}", f"/health?i={i}") for i in range(11)]})
    result = pytester.runpytest("--smoke-config", "smoke.json", "-q")
    assert "- Health check: OK (h0, h1, h2, h3, h4, h5, h6, h7, h8, h9, h10)" in verdict_section(result)


def test_terminal_shape_warnings_only(pytester, write_config, demo):
    demo.faults.update({"live-hang", "no-rate-limit"})
    write_config(doc(demo))
    # One at a time: no other check is in flight, so the timeout is not tried again alone.
    result = pytester.runpytest("--smoke-config", "smoke.json", "-q", "--smoke-concurrency", "1")
    assert result.ret == 0
    assert verdict_section(result) == [
        "⚠ WARNING: Non-critical test failed (deployment continues)",
        "- Health Check liveness: GET http://127.0.0.1:PORT/health/live: timed out after 1 s (no response) "
        "(non-critical)",
        "- Critical Path rate-limiting: step 1/1 (GET /api/limited) rate limiting not enforced after 12 requests "
        "(no 429; got 12x 200) (non-critical)",
        "",
        "Impact: Minor feature degradation",
        "Monitoring: Alert if pattern persists",
        "Action: Check liveness, rate-limiting status in next 30min",
        # No Deployment in the config: no kubectl step with a placeholder for one; where every step
        # needed one, a step that says how to get them.
        "  liveness: Read the new version's logs and restarts, and compare with the previous version "
        "(name the Deployment in rollback_strategy and the advice gives the exact kubectl commands)",
        "  rate-limiting: Check the rate-limit middleware or gateway policy shipped with this release",
        "Re-run: pytest --smoke-config smoke.json -q --smoke-concurrency 1",
    ]


def test_advice_names_only_what_the_config_has(pytester, write_config, demo):
    # No rollback_strategy, no wait_for_rollout: no Deployment to name, so no kubectl command with
    # a placeholder in any output; the advice that needs none stays.
    demo.faults.add("ready-503")
    write_config({"base_url": demo.url, "health_checks": [health("readiness", "/health/ready")]})
    result = pytester.runpytest(
        "--smoke-config", "smoke.json", "--smoke-report=report.json", "--smoke-markdown=report.md"
    )
    assert result.ret == 1
    result.stdout.fnmatch_lines(["Next: Check the dependency checks in this report for the root cause"])
    outputs = (
        result.stdout.str() + (pytester.path / "report.json").read_text() + (pytester.path / "report.md").read_text()
    )
    assert "DEPLOYMENT" not in outputs and "kubectl" not in outputs
    assert json.loads((pytester.path / "report.json").read_text())["manual_rollback_command"] == ""


def test_markdown_remediation_nests_alike_in_commonmark_and_python_markdown(pytester, write_config, demo):
    import markdown
    from markdown_it import MarkdownIt

    demo.faults.update({"ready-503", "live-hang"})
    write_config(
        {
            "base_url": demo.url,
            "health_checks": [
                health("readiness", "/health/ready"),
                health("liveness", "/health/live", timeout_seconds=1),
            ],
        }
    )
    pytester.runpytest("--smoke-config", "smoke.json", "--smoke-markdown=report.md")
    text = (pytester.path / "report.md").read_text()
    remediation = text.split("### Remediation", 1)[1].split("\n### ", 1)[0]
    for html in (MarkdownIt("commonmark").render(remediation), markdown.markdown(remediation)):
        # One numbered item per check, each with its steps in a list of its own (Python-Markdown
        # flattened 3-space nesting into one numbered list of every line).
        items = re.findall(r"<li>(.*?)</li>\s*(?=<li><strong>|</ol>)", html, flags=re.S)
        assert len(items) == 2, html
        assert all("<ul>" in item for item in items), html


def test_terminal_shape_critical_with_rollback(pytester, write_config, demo, kube):
    demo.faults.update({"ready-503", "resources-500"})
    write_config(
        doc(
            demo,
            auto_rollback={"enabled": True, "rollback_timeout_seconds": 20},
            rollback_strategy={"deployment": "django", "namespace": "prod", "kubeconfig": str(kube.kubeconfig)},
        )
    )
    result = pytester.runpytest("--smoke-config", "smoke.json", "-q")
    assert result.ret == 1
    lines = verdict_section(result)
    assert lines[:13] == [
        "✗ CRITICAL: Smoke tests failed - Rollback completed",
        "",
        "CRITICAL FAILURES:",
        "1. Health Check: readiness: /health/ready returned 503 (expected 200); failing: database: connection failed",
        "Issue: The service reports it is not ready (often a dependency, such as the database)",
        "Impact: CRITICAL - Service cannot handle requests",
        "Next: Read the readiness details: kubectl logs deploy/django -n prod --since=10m",
        "Next: Check the dependency checks in this report for the root cause",
        "2. Critical Path: core-api: step 1/1 (GET /api/resources) returned 500 (expected any 2xx)",
        "Issue: The service answered with a server error",
        "Impact: CRITICAL - Core functionality broken",
        "Next: Read the logs of the new version: kubectl logs deploy/django -n prod --since=10m",
        "Next: Compare with the previous revision: kubectl rollout history deployment/django -n prod",
    ]
    assert lines[14:] == [
        "Automatic rollback completed:",
        "Current: django:v1.22.0-context-api",
        "Rollback to: django:v1.21.8-stable",
        "Revision: 2 -> 1",
        "Status: Rollback complete: 3/3 pods updated and available",
        "rollback complete",
        "",
        "Timeline:",
        "HH:MM:SS - Smoke checks started",
        "HH:MM:SS - Critical failures detected",
        "HH:MM:SS - Rollback started",
        "HH:MM:SS - Rollback complete",
        "Note: marked revision 2 as rejected: it is never a rollback target again unless a green run verifies it",
        "Re-run: pytest --smoke-config smoke.json -q",
    ]


# -- files ------------------------------------------------------------------------------------------


def validate_xml(path):
    import xmlschema

    xmlschema.XMLSchema(str(XSD)).validate(str(path))


@pytest.mark.parametrize("workers", [[], ["-n", "2"]])
def test_junit_files_validate_and_carry_properties(pytester, write_config, demo, workers):
    demo.faults.add("ready-503")
    write_config(doc(demo))
    result = pytester.runpytest(
        "--smoke-config", "smoke.json", "--junitxml=pytest.xml", "--smoke-junit=smoke.xml", *workers
    )
    assert result.ret == 1
    validate_xml(pytester.path / "pytest.xml")
    validate_xml(pytester.path / "smoke.xml")
    pytest_xml = (pytester.path / "pytest.xml").read_text()
    for prop in (
        'name="health[readiness].smoke_severity" value="critical"',
        'name="health[readiness].smoke_kind" value="health"',
        'name="health[basic-health].smoke_endpoint" value="/health"',
        'name="health[basic-health].smoke_status" value="200"',
        'name="health[liveness].smoke_required" value="False"',
    ):
        assert prop in pytest_xml
    import xml.etree.ElementTree as ET

    suites = {s.get("name"): s for s in ET.parse(pytester.path / "smoke.xml").getroot()}
    assert set(suites) == {"critical", "warning", "passed"}
    # Named as pytest names them: the config as the class name, the item as the name.
    assert [(c.get("classname"), c.get("name")) for c in suites["critical"].findall("testcase")] == [
        ("smoke.json", "health[readiness]")
    ]
    assert "Issue: The service reports it is not ready" in suites["critical"].find("testcase/failure").text


def test_junit_xunit1_keeps_properties_on_each_testcase(pytester, write_config, demo):
    write_config(doc(demo))
    result = pytester.runpytest("--smoke-config", "smoke.json", "--junitxml=pytest.xml", "-o", "junit_family=xunit1")
    assert result.ret == 0
    import xml.etree.ElementTree as ET

    case = ET.parse(pytester.path / "pytest.xml").getroot().find(".//testcase[@name='health[readiness]']")
    assert {p.get("name"): p.get("value") for p in case.find("properties")}["smoke_severity"] == "critical"


def test_json_report_matches_its_schema_and_markdown_goes_to_the_step_summary(
    pytester, write_config, demo, monkeypatch
):
    import jsonschema

    summary = pytester.path / "step-summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    demo.faults.update({"ready-503", "no-rate-limit"})
    write_config(doc(demo))
    result = pytester.runpytest(
        "--smoke-config", "smoke.json", "--smoke-report=out/report.json", "--smoke-markdown=out/report.md"
    )
    assert result.ret == 1
    report = json.loads((pytester.path / "out" / "report.json").read_text())
    jsonschema.validate(report, json.loads(REPORT_SCHEMA.read_text()))
    assert report["verdict"] == {
        "state": "critical",
        "critical": 1,
        "warnings": 1,
        "passed": 4,
        "skipped": 0,
        "verified": False,
        "not_evaluated_required": [],
        "not_selected_required": [],
        "unattributed": "",
    }
    ready = next(c for c in report["checks"] if c["name"] == "readiness")
    assert ready["severity"] == "critical" and ready["failure_kind"] == "readiness_503"
    assert ready["remediation"]["issue"].startswith("The service reports it is not ready")
    assert "response: 503" in ready["details"]
    assert report["decision"]["action"] == "disabled"
    markdown = (pytester.path / "out" / "report.md").read_text()
    assert markdown.startswith("## ✗ CRITICAL: Smoke tests failed")
    assert (
        "| ❌ | `readiness` | health | yes | /health/ready returned 503 (expected 200); failing: database: "
        "connection failed |" in markdown
    )
    assert summary.read_text() == "earlier step\n" + markdown


def test_interrupted_run_still_writes_reports_and_never_notifies(pytester, write_config, demo, receiver):
    write_config(
        doc(
            demo,
            notifications={
                "hook": {
                    "type": "webhook",
                    "url": receiver.url + "/hook",
                    "notify_on": ["critical", "warning", "passed"],
                }
            },
            rollback_strategy={"notify_channels": ["hook"]},
        )
    )
    pytester.makeconftest(
        """
        def pytest_runtest_logreport(report):
            if report.when == "call" and "readiness" in report.nodeid:
                raise KeyboardInterrupt
        """
    )
    # A subprocess: in process, pytester re-raises the child's Ctrl-C in the test.
    result = pytester.runpytest_subprocess(
        "--smoke-config", "smoke.json", "--smoke-report=report.json", "--smoke-junit=smoke.xml"
    )
    assert result.ret == pytest.ExitCode.INTERRUPTED
    report = json.loads((pytester.path / "report.json").read_text())
    assert report["verdict"]["state"] == "not_evaluated"
    assert report["decision"]["action"] == "not_evaluated"
    assert [c["name"] for c in report["checks"]] == ["basic-health", "readiness"]
    validate_xml(pytester.path / "smoke.xml")
    assert receiver.posts == []


def test_custom_remediation_from_config(pytester, write_config, demo):
    demo.faults.add("ready-503")
    write_config(
        doc(
            demo,
            remediation={"readiness_503": {"issue": "Orders DB failover in progress", "steps": ["Page #dba-oncall"]}},
        )
    )
    result = pytester.runpytest("--smoke-config", "smoke.json")
    result.stdout.fnmatch_lines(["Issue: Orders DB failover in progress", "Next: Page #dba-oncall"])


# -- notifications ---------------------------------------------------------------------------------


def test_slack_webhook_and_email_are_notified_without_leaking_secrets(
    pytester, write_config, demo, receiver, smtp_server, monkeypatch
):
    monkeypatch.setenv("SLACK_WEBHOOK_URL", f"{receiver.url}/services/{SLACK_TOKEN}")
    monkeypatch.setenv("SMTP_PASSWORD", SMTP_PASSWORD)
    monkeypatch.setenv("INCIDENT_API_KEY", "incident-Key-777")
    demo.faults.add("ready-503")
    write_config(
        doc(
            demo,
            notifications={
                "slack-ops": {"type": "slack", "webhook_url": "${SLACK_WEBHOOK_URL}"},
                "incidents": {
                    "type": "webhook",
                    "url": receiver.url + "/incidents",
                    "headers": {"X-Api-Key": "${INCIDENT_API_KEY}"},
                },
                "email-on-call": {
                    "type": "email",
                    "smtp_host": "127.0.0.1",
                    "smtp_port": smtp_server.port,
                    "starttls": False,
                    "username": "smoke",
                    "password": "${SMTP_PASSWORD}",
                    "from": "smoke@example.com",
                    "to": ["oncall@example.com"],
                },
            },
            rollback_strategy={"notify_channels": ["slack-ops", "incidents", "email-on-call", "pagerduty"]},
        )
    )
    result = pytester.runpytest(
        "--smoke-config", "smoke.json", "-v", "--smoke-report=report.json", "--smoke-markdown=report.md"
    )
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "Notification sent: slack-ops: posted to Slack",
            "Notification sent: incidents",
            "Incident ticket created: INC-2026-0542",  # the seed's line, with the id the service returned
            "Notification sent: email-on-call: mailed 1 recipient(s)",
            "Notification skipped: pagerduty: channel 'pagerduty' is not defined under notifications",
        ]
    )
    slack = next(p for p in receiver.posts if p["path"].startswith("/services/"))
    assert slack["body"]["text"] == "✗ CRITICAL: Smoke tests failed"
    assert any("readiness" in b.get("text", {}).get("text", "") for b in slack["body"]["blocks"])
    incident = next(p for p in receiver.posts if p["path"] == "/incidents")
    assert incident["headers"]["X-Api-Key"] == "incident-Key-777"
    assert incident["body"]["event"] == "critical" and incident["body"]["schema_version"] == "2"
    assert len(smtp_server.messages) == 1
    assert "From: smoke@example.com" in smtp_server.messages[0] and "readiness" in smtp_server.messages[0]
    everything = (
        result.stdout.str()
        + result.stderr.str()
        + (pytester.path / "report.json").read_text()
        + (pytester.path / "report.md").read_text()
        + json.dumps([p["body"] for p in receiver.posts])
        + "".join(smtp_server.messages)
    )
    for secret in (SLACK_TOKEN, SMTP_PASSWORD, "incident-Key-777"):
        assert secret not in everything


def test_dead_channel_is_a_warning_and_the_run_goes_on(pytester, write_config, demo):
    dead = free_port()
    demo.faults.add("ready-503")
    write_config(
        doc(
            demo,
            notifications={"slack-ops": {"type": "slack", "webhook_url": f"http://127.0.0.1:{dead}/hook"}},
            rollback_strategy={"notify_channels": ["slack-ops"]},
        )
    )
    result = pytester.runpytest("--smoke-config", "smoke.json", "--smoke-report=report.json")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["Notification failed: slack-ops: connection refused at 127.0.0.1:*"])
    report = json.loads((pytester.path / "report.json").read_text())
    assert report["notifications"][0]["status"] == "failed"


def test_warnings_notify_only_channels_that_ask_for_them(pytester, write_config, demo, receiver):
    demo.faults.add("no-rate-limit")
    write_config(
        doc(
            demo,
            notifications={
                "loud": {"type": "webhook", "url": receiver.url + "/loud", "notify_on": ["warning", "critical"]},
                "quiet": {"type": "webhook", "url": receiver.url + "/quiet"},
            },
            rollback_strategy={"notify_channels": ["loud", "quiet"]},
        )
    )
    result = pytester.runpytest("--smoke-config", "smoke.json")
    assert result.ret == 0
    assert [p["path"] for p in receiver.posts] == ["/loud"]


def test_the_same_advice_is_printed_once_with_every_check_it_covers(pytester, write_config, demo):
    missing = [health(f"gone{i}", f"/gone{i}") for i in range(3)] + [
        health(f"extra{i}", f"/extra{i}", required=False) for i in range(2)
    ]
    write_config({"base_url": demo.url, "health_checks": missing})
    result = pytester.runpytest("--smoke-config", "smoke.json")
    assert result.ret == 1
    out = result.stdout.str()
    assert out.count("Issue:") == 1 and out.count("Issue, impact and next steps: as for 1. above") == 2, out
    write_config({"base_url": demo.url, "health_checks": missing[3:]})  # a warnings-only run
    result = pytester.runpytest("--smoke-config", "smoke.json")
    assert result.ret == 0
    advice = [line for line in result.outlines if line.startswith("  extra")]
    assert advice and all(line.startswith("  extra0, extra1: ") for line in advice), advice  # once, naming both
