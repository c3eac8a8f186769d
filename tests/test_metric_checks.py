"""Metric checks against a real Prometheus (Debian's package) that scrapes a local target exposing
``http_requests_total`` by status code through prometheus-client, with traffic driven into it."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests
from prometheus_client import CollectorRegistry, Counter, start_http_server

import servers
from servers import free_port

ERROR_RATE = 'sum(rate(http_requests_total{code=~"5.."}[{window}])) / sum(rate(http_requests_total[{window}]))'


class TrafficTarget:
    """An app's /metrics: requests by code, incremented 20 times a second at ``error_share``."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("http_requests", "requests by status code", ["code"], registry=self.registry)
        self.requests.labels(code="200").inc(0)
        self.requests.labels(code="500").inc(0)
        self.port = free_port()
        self.server, _ = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)
        self.error_share = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drive, daemon=True)
        self._thread.start()

    def _drive(self):
        tick = 0
        while not self._stop.wait(0.05):
            tick += 1
            failing = (tick % 100) < self.error_share * 100
            self.requests.labels(code="500" if failing else "200").inc()

    def stop(self):
        self._stop.set()
        self._thread.join(2)
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def target():
    app = TrafficTarget()
    yield app
    app.stop()


@pytest.fixture(scope="module")
def prometheus(target, tmp_path_factory):
    server = servers.start_prometheus(
        tmp_path_factory.mktemp("prometheus"), [f"127.0.0.1:{target.port}"], honor_labels=False
    )
    try:
        # Bounded wait until rate() has two scrapes to work with.
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            response = requests.get(
                server.url + "/api/v1/query", params={"query": "sum(rate(http_requests_total[30s]))"}, timeout=5
            )
            # A Prometheus still starting (or busy replaying its WAL on a loaded machine) answers 503.
            answer = response.json() if response.status_code == 200 else {"data": {"result": []}}
            if answer["data"]["result"] and float(answer["data"]["result"][0]["value"][1]) > 0:
                break
            time.sleep(0.5)
        else:
            raise RuntimeError("Prometheus never scraped the target")
        yield server
    finally:
        server.stop()


def metric(name, url, query=ERROR_RATE, condition="result < 0.05", **extra):
    return {
        "name": name,
        "url": url,
        "query": query,
        "condition": condition,
        "window": "30s",
        "unit": "percent",
        **extra,
    }


def run(pytester, write_config, *checks):
    write_config({"metric_checks": list(checks)})
    result = pytester.runpytest("--smoke-config", "smoke.json", "--smoke-report", "report.json")
    report = {c["name"]: c for c in json.loads((pytester.path / "report.json").read_text())["checks"]}
    return result, report


def test_a_low_error_rate_passes_and_a_high_one_fails_in_operator_words(pytester, write_config, target, prometheus):
    target.error_share = 0.0
    result, report = run(pytester, write_config, metric("error-rate", prometheus.url))
    assert result.ret == 0, result.stdout.str()
    assert report["error-rate"]["facts"]["summary"] == "error-rate 0% over the last 30s, limit: < 5%"
    result.stdout.fnmatch_lines(["- Metrics: OK (error-rate)"])

    target.error_share = 0.4
    deadline = time.monotonic() + 30  # until the new traffic dominates the 30 s window
    while time.monotonic() < deadline:
        result, report = run(pytester, write_config, metric("error-rate", prometheus.url))
        if result.ret == 1:
            break
        time.sleep(1)
    target.error_share = 0.0
    assert result.ret == 1
    assert report["error-rate"]["status"] == "failed" and report["error-rate"]["failure_kind"] == "metric_condition"
    assert report["error-rate"]["reason"].startswith("error-rate ") and report["error-rate"]["reason"].endswith(
        "% over the last 30s, limit: < 5%"
    )
    result.stdout.fnmatch_lines(["*1. Metric: error-rate: error-rate *% over the last 30s, limit: < 5%"])


def test_no_data_nan_a_bad_query_and_a_dead_prometheus_are_never_a_pass(pytester, write_config, prometheus):
    dead = f"http://127.0.0.1:{free_port()}"
    result, report = run(
        pytester,
        write_config,
        metric("no-series", prometheus.url, query='sum(rate(http_requests_total{code="999"}[{window}])) > 0'),
        metric("nan", prometheus.url, query='sum(rate(http_requests_total{code="999"}[{window}])) / 0', required=False),
        metric("bad-query", prometheus.url, query="sum(rate(http_requests_total[{window}]", required=False),
        metric("prometheus-down", dead, timeout_seconds=2, required=False),
    )
    assert result.ret == 12  # a required check not evaluated: inconclusive, no rollback, never verified
    assert {name: c["status"] for name, c in report.items()} == dict.fromkeys(report, "not_evaluated")
    assert (
        report["no-series"]["reason"]
        == "not evaluated: no-series: the query returned no data (no series: nothing to judge)"
    )
    assert report["bad-query"]["reason"].startswith(
        "not evaluated: bad-query: query failed: Prometheus answered 400 bad_data: "
    )
    assert report["prometheus-down"]["reason"] == (
        f"not evaluated: prometheus-down: Prometheus at {dead}/api/v1/query is unreachable "
        f"(connection refused at {dead.split('//')[1]})"
    )
    result.stdout.fnmatch_lines(
        ["? INCONCLUSIVE: required checks could not be evaluated - no rollback, deployment NOT verified"]
    )


def test_repeated_measurements_fail_only_beyond_the_failure_limit(pytester, write_config, prometheus):
    # "result > 2" never holds for a ratio: every measurement breaks it.
    result, report = run(
        pytester,
        write_config,
        metric("strict", prometheus.url, condition="result > 2", count=3, interval=0.2, failure_limit=2),
    )
    assert result.ret == 1
    assert report["strict"]["reason"].endswith("limit: > 200% (3 of 3 measurements failed, 2 allowed)")
    result, report = run(
        pytester,
        write_config,
        metric("lenient", prometheus.url, condition="result > 2", count=3, interval=0.2, failure_limit=3),
    )
    assert result.ret == 0  # as Argo's failureLimit: within the limit, the analysis succeeds
    assert report["lenient"]["facts"]["summary"].endswith("(0 of 3 measurements met it, 3 failed, 3 allowed)")


def test_the_window_starts_when_the_rollout_completed():
    from pytest_smoke.checks.base import CheckContext
    from pytest_smoke.checks.metric import window_of

    completed = time.time() - 125
    window, since = window_of({"window": "5m"}, CheckContext(deployed_at=completed))
    assert (
        window in ("125s", "126s")
        and since == f"since {time.strftime('%H:%M:%S', time.localtime(completed))} (rollout completed)"
    )
    assert window_of({"window": "5m"}, CheckContext()) == ("5m", "over the last 5m")
    assert window_of({}, CheckContext(deployed_at=time.time() - 3))[0] == "30s"  # at least two scrapes


def test_a_condition_that_is_not_a_comparison_is_a_config_error(pytester, write_config):
    write_config({"metric_checks": [metric("m", "http://127.0.0.1:9", condition="__import__('os').system('x')")]})
    result = pytester.runpytest("--smoke-config", "smoke.json")
    assert result.ret == 4
    result.stderr.fnmatch_lines(
        [
            "*metric_checks?0?.condition: condition \"__import__('os').system('x')\" is not a comparison of result "
            "with a number*"
        ]
    )


def test_the_documented_metric_configs_load(tmp_path):
    from pathlib import Path

    from pytest_smoke.config import load_config

    page = (Path(__file__).resolve().parents[1] / "docs" / "writing-checks.md").read_text()
    blocks = [block.split("```", 1)[0] for block in page.split("```yaml\n")[1:] if block.startswith("metric_checks:")]
    assert len(blocks) == 2
    for number, block in enumerate(blocks):
        path = tmp_path / f"metrics-{number}.yaml"
        path.write_text(block)
        config = load_config(path, env={"PROM_URL": "http://127.0.0.1:9090"})
        assert [check.kind for check in config.checks] and all(check.kind == "metric" for check in config.checks)
