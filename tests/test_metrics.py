"""Metrics for the dashboard: pushed to a real Pushgateway (Debian's prometheus-pushgateway),
scraped from it by a real Prometheus and queried through its HTTP API, and written to files that
the Prometheus client library's own parsers read back."""

from __future__ import annotations

import json
import socket
import time

import pytest
import requests
from prometheus_client.openmetrics import parser as openmetrics_parser
from prometheus_client.parser import text_string_to_metric_families

from helpers import assert_cut_short, health, session_seconds
from servers import free_port

TOKEN = "pgw-token-7731-qqzx"


def config(demo, **extra):
    doc = {
        "environments": {"production": {"base_url": demo.url}},
        "health_checks": [health("live", "/health/live"), health("ready", "/health/ready")],
        "rollback_strategy": {"deployment": "web", "namespace": "shop"},
    }
    doc.update(extra)
    return doc


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of an exposition, keyed by name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value for f in text_string_to_metric_families(text) for s in f.samples
    }


def value(found, name, **labels):
    matches = [v for (n, ls), v in found.items() if n == name and set(labels.items()) <= set(ls)]
    assert len(matches) == 1, (
        name,
        labels,
        [sorted(ls) for (n, ls), v in found.items() if n == name and set(labels.items()) <= set(ls)],
    )
    return matches[0]


def pushed(pushgateway) -> dict:
    return samples(requests.get(pushgateway.url + "/metrics", timeout=5).text)


def test_a_critical_run_pushes_what_failed_and_the_verdict_to_a_real_pushgateway(
    pytester, write_config, demo, pushgateway
):
    demo.faults.add("ready-503")
    write_config(config(demo, monitoring={"pushgateway": {"url": pushgateway.url, "labels": {"cluster": "eu-1"}}}))
    result = pytester.runpytest("--smoke-config", "smoke.json", "--smoke-env", "production")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            f"Metrics pushed to the Pushgateway: {pushgateway.url} (job=pytest_smoke, cluster=eu-1, "
            "deployment=web, environment=production, namespace=shop)"
        ]
    )
    found = pushed(pushgateway)
    group = {
        "job": "pytest_smoke",
        "cluster": "eu-1",
        "deployment": "web",
        "namespace": "shop",
        "environment": "production",
    }
    assert (
        value(found, "smoke_check_success", check="live", kind="health", required="true", severity="critical", **group)
        == 1
    )
    assert value(found, "smoke_check_success", check="ready", **group) == 0
    assert value(found, "smoke_check_status", check="ready", smoke_check_status="failed", **group) == 1
    assert value(found, "smoke_check_status", check="ready", smoke_check_status="passed", **group) == 0
    assert value(found, "smoke_verdict", smoke_verdict="critical", **group) == 1
    assert value(found, "smoke_decision", smoke_decision="disabled", **group) == 1
    assert value(found, "smoke_run_exit_status", **group) == 1
    assert value(found, "smoke_check_attempts_total", check="ready", **group) == 1
    assert value(found, "smoke_build_info", **group) == 1
    assert not [key for key in found if key[0] == "smoke_last_success_timestamp_seconds"]  # never verified yet


def test_the_last_verified_run_is_remembered_when_a_later_run_fails(pytester, write_config, demo, pushgateway):
    write_config(config(demo))
    green = pytester.runpytest(
        "--smoke-config", "smoke.json", "--smoke-env", "production", "--smoke-pushgateway", pushgateway.url
    )
    assert green.ret == 0
    verified_at = value(pushed(pushgateway), "smoke_last_success_timestamp_seconds", deployment="web")
    assert abs(verified_at - time.time()) < 120

    demo.faults.add("ready-503")
    red = pytester.runpytest(
        "--smoke-config", "smoke.json", "--smoke-env", "production", "--smoke-pushgateway", pushgateway.url
    )
    assert red.ret == 1
    found = pushed(pushgateway)
    assert value(found, "smoke_verdict", smoke_verdict="critical", deployment="web") == 1
    assert value(found, "smoke_last_success_timestamp_seconds", deployment="web") == verified_at


def test_a_pushgateway_that_is_down_is_a_warning_and_never_changes_the_exit_status(pytester, write_config, demo):
    closed = free_port()
    write_config(config(demo, monitoring={"pushgateway": {"url": f"http://127.0.0.1:{closed}", "timeout_seconds": 2}}))
    result = pytester.runpytest(
        "--smoke-config", "smoke.json", "--smoke-env", "production", "--smoke-report", "report.json"
    )
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [f"Warning: metrics not pushed to the Pushgateway: http://127.0.0.1:{closed}: *Connection refused*"]
    )
    report = json.loads((pytester.path / "report.json").read_text())
    assert report["monitoring"] == [
        {
            "target": "pushgateway",
            "where": f"http://127.0.0.1:{closed}",
            "status": "failed",
            "detail": report["monitoring"][0]["detail"],
        }
    ]
    assert report["verdict"]["state"] == "passed"


def test_a_pushgateway_that_never_answers_costs_its_timeout_not_the_run(pytester, write_config, demo):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel accepts the connection; nobody ever answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        write_config(config(demo, monitoring={"pushgateway": {"url": url, "timeout_seconds": 1}}))
        result = pytester.runpytest("--smoke-config", "smoke.json", "--smoke-env", "production")
        assert result.ret == 0
        assert_cut_short(session_seconds(result), 1)
    result.stdout.fnmatch_lines(
        ["Warning: metrics not pushed to the Pushgateway: *: no answer within 1 s; not waiting any longer"]
    )


def test_push_credentials_never_reach_the_output(pytester, write_config, demo, monkeypatch):
    monkeypatch.setenv("PGW_TOKEN", TOKEN)
    closed = free_port()
    write_config(
        config(
            demo,
            monitoring={
                "pushgateway": {
                    "url": f"http://127.0.0.1:{closed}",
                    "headers": {"Authorization": "Bearer ${PGW_TOKEN}"},
                }
            },
        )
    )
    result = pytester.runpytest(
        "--smoke-config", "smoke.json", "--smoke-env", "production", "--smoke-report", "report.json", "-vv", "-l"
    )
    assert result.ret == 0
    assert "metrics not pushed" in result.stdout.str()
    assert TOKEN not in result.stdout.str() + result.stderr.str()
    assert TOKEN not in (pytester.path / "report.json").read_text()
    # Credentials in the URL: prometheus-client would not send them and urllib's error would show them.
    for given in (["--smoke-pushgateway", f"http://pusher:{TOKEN}@127.0.0.1:{closed}"], []):
        if not given:
            write_config(config(demo, monitoring={"pushgateway": {"url": f"http://pusher:{TOKEN}@127.0.0.1"}}))
        result = pytester.runpytest("--smoke-config", "smoke.json", "--smoke-env", "production", *given)
        assert result.ret == 4
        result.stderr.fnmatch_lines(
            ["*pushgateway*: carries credentials (user:password@): put them in monitoring.pushgateway.headers*"]
        )
        assert TOKEN not in result.stdout.str() + result.stderr.str()


def test_a_run_replaces_the_previous_runs_series(pytester, write_config, demo, pushgateway):
    write_config(config(demo))
    assert (
        pytester.runpytest(
            "--smoke-config", "smoke.json", "--smoke-env", "production", "--smoke-pushgateway", pushgateway.url
        ).ret
        == 0
    )
    assert value(pushed(pushgateway), "smoke_check_success", check="live") == 1
    # Nothing selected this time: the earlier run's check series must not linger as if fresh.
    result = pytester.runpytest(
        "--smoke-config",
        "smoke.json",
        "--smoke-env",
        "production",
        "--smoke-pushgateway",
        pushgateway.url,
        "-k",
        "nomatch",
    )
    assert result.ret == 5
    found = pushed(pushgateway)
    assert not [key for key in found if key[0] == "smoke_check_success"]
    assert value(found, "smoke_last_success_timestamp_seconds", deployment="web", smoke_record="last_success") > 0


def test_a_prometheus_server_scrapes_the_pushed_verdict(pytester, write_config, demo, pushgateway, tmp_path_factory):
    import servers

    prometheus = servers.start_prometheus(tmp_path_factory.mktemp("prometheus"), [f"127.0.0.1:{pushgateway.port}"])
    try:
        demo.faults.add("ready-503")
        write_config(config(demo))
        assert (
            pytester.runpytest(
                "--smoke-config", "smoke.json", "--smoke-env", "production", "--smoke-pushgateway", pushgateway.url
            ).ret
            == 1
        )
        query = 'smoke_verdict{deployment="web",namespace="shop",smoke_verdict="critical"}'
        deadline = time.monotonic() + 30
        result: list = []
        while time.monotonic() < deadline and not result:
            answer = requests.get(prometheus.url + "/api/v1/query", params={"query": query}, timeout=5).json()
            assert answer["status"] == "success"
            result = answer["data"]["result"]
            time.sleep(0.5)
        assert len(result) == 1 and result[0]["value"][1] == "1"
        assert result[0]["metric"]["job"] == "pytest_smoke" and result[0]["metric"]["environment"] == "production"
    finally:
        prometheus.stop()


@pytest.mark.parametrize("name", ["smoke.prom", "smoke.om"])
def test_the_metrics_file_parses_with_the_client_library_and_is_replaced_whole(pytester, write_config, demo, name):
    demo.faults.add("ready-503")
    write_config(config(demo))
    assert (
        pytester.runpytest(
            "--smoke-config", "smoke.json", "--smoke-env", "production", "--smoke-metrics", f"out/{name}"
        ).ret
        == 1
    )
    text = (pytester.path / "out" / name).read_text()
    if name.endswith(".om"):
        assert text.endswith("# EOF\n")
        families = {f.name: f for f in openmetrics_parser.text_string_to_metric_families(text)}
        assert families["smoke_verdict"].type == "stateset" and families["smoke_build"].type == "info"
        found = {(s.name, frozenset(s.labels.items())): s.value for f in families.values() for s in f.samples}
    else:
        found = samples(text)
    assert value(found, "smoke_check_success", check="ready", deployment="web") == 0
    assert value(found, "smoke_check_duration_seconds", check="live", deployment="web") >= 0
    assert not [
        p for p in (pytester.path / "out").iterdir() if p.name.startswith(".smoke-metrics-")
    ]  # no temp file left


def test_a_bad_pushgateway_url_is_a_config_error_before_any_request(pytester, write_config, demo):
    write_config(config(demo, monitoring={"pushgateway": {"url": "ftp://gateway"}}))
    result = pytester.runpytest("--smoke-config", "smoke.json", "--smoke-env", "production")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*smoke.json: monitoring.pushgateway.url: not an http(s) URL with a host*"])
    assert demo.requests == []  # nothing was sent


def test_each_fleet_target_pushes_to_a_group_of_its_own(pytester, write_config, demo, pushgateway):
    doc = {
        "health_checks": [health("live", "/health/live")],
        "rollback_strategy": {"deployment": "fleet-web", "namespace": "shop"},
        "fleet": {"targets": {"eu-west-1": {"base_url": demo.url}, "us-east-1": {"base_url": demo.url}}},
    }
    write_config(doc, name="fleet.json")
    for target in ("eu-west-1", "us-east-1"):
        result = pytester.runpytest(
            "--smoke-config", "fleet.json", "--smoke-target", target, "--smoke-pushgateway", pushgateway.url
        )
        assert result.ret == 0, result.stdout.str()
    found = pushed(pushgateway)
    # The second target's push replaced its own group only: both verdicts are there, apart.
    for target in ("eu-west-1", "us-east-1"):
        assert value(found, "smoke_verdict", deployment="fleet-web", target=target, smoke_verdict="passed") == 1
        assert value(found, "smoke_check_success", deployment="fleet-web", target=target, check="live") == 1
