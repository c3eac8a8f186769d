"""Incident channels: PagerDuty (Events API v2), Opsgenie (Alert API v2) and a ticketing webhook,
against local receivers that follow each API's documented shapes and error answers."""

from __future__ import annotations

import json
import time

import pytest
from incident_receivers import Opsgenie, PagerDuty, Ticketing

from helpers import assert_cut_short, health, session_seconds

ROUTING_KEY = "R0UT1NGKEYpd00000000000000000042"  # 32 characters, as PagerDuty requires
OPSGENIE_KEY = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"


def serve(receiver_class):
    server = receiver_class()
    yield server
    server.stop()


@pytest.fixture
def pagerduty():
    yield from serve(PagerDuty)


@pytest.fixture
def opsgenie():
    yield from serve(Opsgenie)


@pytest.fixture
def ticketing():
    yield from serve(Ticketing)


@pytest.fixture
def keys(monkeypatch):
    monkeypatch.setenv("PD_ROUTING_KEY", ROUTING_KEY)
    monkeypatch.setenv("OPSGENIE_API_KEY", OPSGENIE_KEY)


def config(demo, channels, **extra):
    doc = {
        "base_url": demo.url,
        "health_checks": [health("live", "/health/live"), health("ready", "/health/ready")],
        "rollback_strategy": {"deployment": "web", "namespace": "shop", "notify_channels": list(channels)},
        "notifications": channels,
    }
    doc.update(extra)
    return doc


def channels(pagerduty=None, opsgenie=None, ticketing=None, receiver=None, **common):
    found = {}
    if pagerduty is not None:
        found["pd"] = {
            "type": "pagerduty",
            "routing_key": "${PD_ROUTING_KEY}",
            "events_url": pagerduty.url + "/v2/enqueue",
            **common,
        }
    if opsgenie is not None:
        found["genie"] = {"type": "opsgenie", "api_key": "${OPSGENIE_API_KEY}", "api_url": opsgenie.url, **common}
    if ticketing is not None:
        found["tickets"] = {
            "type": "incident-webhook",
            "url": ticketing.url + "/api/incidents",
            "ticket_id_path": "body.ticket.id",
            **common,
        }
    if receiver is not None:
        found["chat"] = {"type": "webhook", "url": receiver.url}
    return found


def run(pytester, *extra):
    return pytester.runpytest(
        "--smoke-config", "smoke.json", "--smoke-report", "report.json", "--smoke-markdown", "report.md", *extra
    )


def test_a_critical_run_opens_incidents_and_every_output_names_the_ticket(
    pytester, write_config, demo, keys, pagerduty, opsgenie, ticketing, receiver
):
    demo.faults.add("ready-503")
    write_config(config(demo, channels(pagerduty, opsgenie, ticketing, receiver)))
    result = run(pytester)
    assert result.ret == 1  # critical; auto_rollback is off here
    result.stdout.fnmatch_lines(["Notification sent: tickets", "Incident ticket created: INC-2026-0542"])
    result.stdout.fnmatch_lines(["Incident ticket created: pytest-smoke/default/shop/web"])

    (event,) = [r["body"] for r in pagerduty.received]
    assert (event["event_action"], event["dedup_key"], event["payload"]["severity"]) == (
        "trigger",
        "pytest-smoke/default/shop/web",
        "critical",
    )
    assert "ready" in event["payload"]["summary"] and event["payload"]["source"] == "shop/web"
    (alert,) = opsgenie.received
    assert (
        alert["path"] == "/v2/alerts"
        and alert["body"]["alias"] == "pytest-smoke/default/shop/web"
        and alert["body"]["priority"] == "P1"
    )
    assert len(alert["body"]["message"]) <= 130
    (report_posted,) = ticketing.received
    assert report_posted["body"]["action"] == "trigger" and report_posted["body"]["verdict"]["state"] == "critical"

    # The other channels are told after the incident channels, so their message names the ticket.
    assert receiver.posts[0]["body"]["incidents"] == [
        "pytest-smoke/default/shop/web",
        "pytest-smoke/default/shop/web",
        "INC-2026-0542",
    ]
    report = json.loads((pytester.path / "report.json").read_text())
    assert {n["channel"]: n.get("ticket") for n in report["notifications"]} == {
        "pd": "pytest-smoke/default/shop/web",
        "genie": "pytest-smoke/default/shop/web",
        "tickets": "INC-2026-0542",
        "chat": "INC-2026-0542",
    }
    assert "incident ticket INC-2026-0542" in (pytester.path / "report.md").read_text()


def test_a_green_run_resolves_the_incident_and_closes_the_alert(
    pytester, write_config, demo, keys, pagerduty, opsgenie
):
    write_config(config(demo, channels(pagerduty, opsgenie)))
    result = run(pytester)
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "Notification sent: pd: incident resolved: pytest-smoke/default/shop/web",
            "Notification sent: genie: alert closed: pytest-smoke/default/shop/web",
        ]
    )
    (event,) = [r["body"] for r in pagerduty.received]
    assert event == {
        "routing_key": ROUTING_KEY,
        "event_action": "resolve",
        "dedup_key": "pytest-smoke/default/shop/web",
    }
    (close,) = opsgenie.received
    assert close["path"] == "/v2/alerts/pytest-smoke%2Fdefault%2Fshop%2Fweb/close" and close["query"] == {
        "identifierType": ["alias"]
    }


def test_a_warning_opens_an_incident_only_when_the_channel_asks_for_warnings(
    pytester, write_config, demo, keys, pagerduty
):
    doc = config(demo, channels(pagerduty))
    doc["health_checks"][1]["required"] = False
    demo.faults.add("ready-503")
    write_config(doc)
    assert run(pytester).ret == 0
    assert pagerduty.received == []  # a warning is not an incident by default

    doc["notifications"]["pd"]["notify_on"] = ["warning", "critical"]
    write_config(doc)
    assert run(pytester).ret == 0
    (event,) = [r["body"] for r in pagerduty.received]
    assert (event["event_action"], event["payload"]["severity"]) == ("trigger", "warning")


def test_an_error_answer_is_a_warning_with_the_services_own_message(
    pytester, write_config, demo, pagerduty, monkeypatch
):
    monkeypatch.setenv("PD_ROUTING_KEY", "too-short-key")
    demo.faults.add("ready-503")
    write_config(config(demo, channels(pagerduty)))
    result = run(pytester)
    assert result.ret == 1  # the verdict's own exit status: a dead channel never changes it
    result.stdout.fnmatch_lines(
        [
            "Notification failed: pd: PagerDuty answered 400: Event object is invalid; "
            "Length of 'routing_key' is incorrect (should be 32 characters)"
        ]
    )


def test_a_short_retry_after_is_honoured_once_and_a_long_one_is_reported(pytester, write_config, demo, keys, pagerduty):
    demo.faults.add("ready-503")
    write_config(config(demo, channels(pagerduty)))
    pagerduty.answers = [
        (429, {"Retry-After": "1"}, {"status": "throttle event", "message": "Requests are arriving too quickly"})
    ]
    assert run(pytester).ret == 1
    assert len(pagerduty.received) == 2  # the 429, then the retry after one second
    assert (
        json.loads((pytester.path / "report.json").read_text())["notifications"][0]["ticket"]
        == "pytest-smoke/default/shop/web"
    )

    pagerduty.received.clear()
    pagerduty.answers = [
        (429, {"Retry-After": "120"}, {"status": "throttle event", "message": "Requests are arriving too quickly"})
    ]
    result = run(pytester)
    assert_cut_short(session_seconds(result), 0, unbounded=120)  # Retry-After: 120 is not waited out
    assert len(pagerduty.received) == 1
    result.stdout.fnmatch_lines(["Notification failed: pd: PagerDuty answered 429 (rate limited; Retry-After: 120 s)"])


def test_routing_and_api_keys_never_reach_any_output(pytester, write_config, demo, pagerduty, opsgenie, monkeypatch):
    monkeypatch.setenv("PD_ROUTING_KEY", ROUTING_KEY)
    bad_key = "notauuid-Secret-Opsgenie-8821"  # the receiver echoes a malformed key in its 401 answer
    monkeypatch.setenv("OPSGENIE_API_KEY", bad_key)
    demo.faults.add("ready-503")
    doc = config(demo, channels(pagerduty, opsgenie))
    doc["notifications"]["literal"] = {
        "type": "pagerduty",
        "routing_key": "LITERALKEYinTheFile0000000000042",
        "events_url": pagerduty.url + "/v2/enqueue",
    }
    doc["rollback_strategy"]["notify_channels"].append("literal")
    write_config(doc)
    result = run(pytester, "-vv", "-l")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        ["Notification failed: genie: Opsgenie answered 401: Key format is not valid! (GenieKey ***)"]
    )
    outputs = (
        result.stdout.str()
        + result.stderr.str()
        + (pytester.path / "report.json").read_text()
        + (pytester.path / "report.md").read_text()
    )
    for secret in (ROUTING_KEY, bad_key, "LITERALKEYinTheFile0000000000042"):
        assert secret not in outputs


# -- found by review: each of these once broke ------------------------------------------------------


def test_a_secret_that_looks_like_a_year_never_costs_the_reports(pytester, write_config, demo, monkeypatch):
    monkeypatch.setenv("TENANT", time.strftime("%Y"))  # masks the year inside every timestamp of the document
    write_config(
        {"base_url": demo.url, "health_checks": [health("live", "/health/live", headers={"X-Tenant": "${TENANT}"})]}
    )
    result = pytester.runpytest(
        "--smoke-config", "smoke.json", "--smoke-markdown", "report.md", "--smoke-report", "report.json"
    )
    assert result.ret == 0
    result.stdout.fnmatch_lines(["✓ Smoke tests passed*"])
    assert (pytester.path / "report.md").exists() and (pytester.path / "report.json").exists()
    # The plugin's own timestamps are kept readable, so the chart is drawn and dashboards get a time.
    document = json.loads((pytester.path / "report.json").read_text())
    assert document["started_at"].startswith(time.strftime("%Y")) and document["checks"][0]["finished_at"].startswith(
        time.strftime("%Y")
    )
    assert "```mermaid" in (pytester.path / "report.md").read_text()


def test_both_waves_of_channels_share_one_deadline():
    import socket as sockets

    from pytest_smoke.notify import dispatch
    from pytest_smoke.redact import Redactor

    with sockets.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # accepts, never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        document = {"verdict": {"state": "critical"}, "rollback": None, "checks": []}
        channels = {
            "tickets": {"type": "incident-webhook", "url": url + "/t"},
            "hook": {"type": "webhook", "url": url + "/h"},
        }
        started = time.monotonic()
        sent = dispatch(document, channels, ["tickets", "hook"], Redactor(), deadline_seconds=1.5)
        elapsed = time.monotonic() - started
    assert [s["status"] for s in sent] == ["failed", "failed"]
    assert elapsed < 3 * 1.5  # one 1.5 s deadline (and its slack), not one per wave: a margin of the deadline


def test_a_token_in_a_webhook_path_never_reaches_the_output(pytester, write_config, demo):
    from servers import free_port

    token = "s3cretPathToken99"
    demo.faults.add("ready-503")
    write_config(
        config(
            demo,
            {"tickets": {"type": "incident-webhook", "url": f"http://127.0.0.1:{free_port()}/hooks/ticketing/{token}"}},
        )
    )
    result = run(pytester)
    assert result.ret == 1
    assert "Notification failed: tickets" in result.stdout.str()
    for output in (
        result.stdout.str(),
        (pytester.path / "report.json").read_text(),
        (pytester.path / "report.md").read_text(),
    ):
        assert token not in output


def test_slack_never_renders_a_services_text_as_markup():
    from pytest_smoke.notify.slack import payload

    document = {
        "verdict": {"state": "critical", "critical": 1, "warnings": 0},
        "config": "smoke.json",
        "rerun_command": "pytest",
        "decision": {"reason": ""},
        "rollback": None,
        "incidents": ["INC-1 <!channel> <https://evil.example|Approve>"],
        "checks": [
            {"name": "api", "severity": "critical", "reason": "500 <@U123> & more", "remediation": {"issue": "x"}}
        ],
    }
    text = json.dumps(payload(document, "critical"))
    assert "<!channel>" not in text and "<https://evil" not in text and "<@U123>" not in text
    assert "&lt;!channel&gt;" in text


def test_without_a_deployment_incidents_are_keyed_by_the_service_address():
    from pytest_smoke.notify.incident import dedup_key

    one = {"environment": None, "deployment": None, "config": "smoke.json", "base_url": "https://shop.example"}
    other = {**one, "base_url": "https://billing.example"}
    assert dedup_key(one) == "pytest-smoke/default/https://shop.example" != dedup_key(other)


def test_the_same_deployment_in_two_fleet_targets_is_two_incidents():
    from pytest_smoke.notify.incident import dedup_key

    def document(target):
        return {
            "environment": "production",
            "deployment": {"name": "web", "namespace": "shop", "revision": 7},
            "fleet": {"target": target},
        }

    assert dedup_key(document("eu-west-1")) == "pytest-smoke/production/eu-west-1/shop/web/rev-7"
    assert dedup_key(document("eu-west-1")) != dedup_key(document("us-east-1"))
