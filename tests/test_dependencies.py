"""Dependency checks against real PostgreSQL, Redis and RabbitMQ servers started from the system
binaries, plus HTTP and TCP dependencies and the custom-type extension point."""

from __future__ import annotations

import json
import time
from contextlib import contextmanager

import pytest

from pytest_smoke.checks import CheckContext, CheckFailed, run_check
from pytest_smoke.model import Check
from pytest_smoke.redact import Redactor

from helpers import AMQP_PASSWORD, PG_PASSWORD, REDIS_PASSWORD, SEED_CONFIG, assert_cut_short, health
from servers import free_port


def dep(name, type_, **extra):
    return {"name": name, "type": type_, "timeout_seconds": 3, **extra}


def run(spec, environ=None):
    ctx = CheckContext(redactor=Redactor(), environ=environ or {})
    return run_check(Check.of("dependency", spec), ctx), ctx


def fails(spec, environ=None):
    ctx = CheckContext(redactor=Redactor(), environ=environ or {})
    started = time.monotonic()
    with pytest.raises(CheckFailed) as failure:
        run_check(Check.of("dependency", spec), ctx)
    return failure.value, time.monotonic() - started, ctx


@contextmanager
def paused(server):
    server.pause()
    try:
        yield
    finally:
        server.resume()


# -- postgres --------------------------------------------------------------------------------------


def test_postgres_select_1_reports_the_server_version(postgres_server):
    result, _ = run(dep("db", "postgres", dsn=postgres_server.url))
    assert result.summary.startswith("'SELECT 1' returned 1 on PostgreSQL 1")
    assert result.facts["server_version"][0].isdigit()


def test_postgres_connection_from_libpq_environment_variables(postgres_server):
    environ = {
        "PGHOST": "127.0.0.1",
        "PGPORT": str(postgres_server.port),
        "PGUSER": "app",
        "PGPASSWORD": PG_PASSWORD,
        "PGDATABASE": "postgres",
    }
    # libpq reads PG* from the real process environment, as it would in a deploy pipeline.
    import os

    saved = {k: os.environ.get(k) for k in environ}
    os.environ.update(environ)
    try:
        result, _ = run(dep("db", "postgres"), environ=environ)
    finally:
        for key, value in saved.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)
    assert "returned 1" in result.summary


def test_postgres_database_url_fallback(postgres_server):
    result, _ = run(dep("db", "postgres", query="SELECT 41 + 1"), environ={"DATABASE_URL": postgres_server.url})
    assert "returned 42" in result.summary


def test_postgres_wrong_password_is_named_and_the_password_never_shown(postgres_server):
    wrong = postgres_server.url.replace(PG_PASSWORD, "wrong-Password-123")
    failure, _, ctx = fails(dep("db", "postgres", dsn=wrong))
    assert failure.reason == 'Database connection failed: password authentication failed for user "app"'
    assert failure.kind == "db_auth"
    assert "wrong-Password-123" not in ctx.redactor.text(str(failure))


def test_postgres_bad_query_fails_with_the_servers_reason(postgres_server):
    failure, _, _ = fails(dep("db", "postgres", dsn=postgres_server.url, query="SELECT * FROM no_such_table"))
    assert failure.reason == 'Database query failed: relation "no_such_table" does not exist'


def test_postgres_statement_timeout_bounds_a_slow_query(postgres_server):
    failure, elapsed, _ = fails(
        dep("db", "postgres", dsn=postgres_server.url, query="SELECT pg_sleep(30)", timeout_seconds=1)
    )
    assert "statement timeout" in failure.reason or "timed out" in failure.reason
    assert_cut_short(elapsed, 1, unbounded=30)


# -- redis -----------------------------------------------------------------------------------------


def test_redis_ping(redis_server):
    result, _ = run(dep("cache", "redis", url=redis_server.url))
    assert result.summary == "PING -> True"


def test_redis_url_from_environment_and_custom_command(redis_server):
    result, _ = run(dep("cache", "redis", command="ECHO smoke"), environ={"REDIS_URL": redis_server.url})
    assert result.summary == "ECHO smoke -> 'smoke'"


def test_redis_with_password(redis_auth_server):
    result, _ = run(dep("cache", "redis", url=redis_auth_server.url))
    assert result.summary == "PING -> True"


@pytest.mark.parametrize("password", [None, "wrong-redis-pw"])
def test_redis_missing_or_wrong_password(redis_auth_server, password):
    url = (
        f"redis://127.0.0.1:{redis_auth_server.port}/0"
        if password is None
        else f"redis://:{password}@127.0.0.1:{redis_auth_server.port}/0"
    )
    failure, _, ctx = fails(dep("cache", "redis", url=url))
    assert failure.reason.startswith(f"Redis unavailable: authentication failed at 127.0.0.1:{redis_auth_server.port}")
    assert failure.kind == "redis_auth"
    if password:
        assert password not in ctx.redactor.text(str(failure))


# -- amqp ------------------------------------------------------------------------------------------


def test_amqp_connects_and_finds_the_queue(rabbitmq_server):
    result, _ = run(dep("mq", "amqp", url=rabbitmq_server.url, queue="orders"))
    assert (
        result.summary
        == f"connected to 127.0.0.1:{rabbitmq_server.port}, channel open, queue 'orders' exists (0 messages)"
    )


def test_amqp_missing_queue(rabbitmq_server):
    failure, _, _ = fails(dep("mq", "amqp", url=rabbitmq_server.url, queue="no-such-queue"))
    assert failure.reason == f"Message queue: queue 'no-such-queue' does not exist at 127.0.0.1:{rabbitmq_server.port}"


def test_amqp_wrong_password(rabbitmq_server):
    url = rabbitmq_server.url.replace(AMQP_PASSWORD, "wrong-amqp-pw")
    failure, _, ctx = fails(dep("mq", "amqp", url=url))
    assert failure.reason.startswith(
        f"Message queue connection failed: authentication refused at 127.0.0.1:{rabbitmq_server.port}"
    )
    assert "wrong-amqp-pw" not in ctx.redactor.text(str(failure))


# -- every server type: down, and hanging -----------------------------------------------------------

SERVER_TYPES = {
    "postgres": (
        "postgres_server",
        "dsn",
        "postgresql://app:x@127.0.0.1:{port}/postgres",
        "Database connection failed",
    ),
    "redis": ("redis_server", "url", "redis://127.0.0.1:{port}/0", "Redis unavailable"),
    "amqp": ("rabbitmq_server", "url", "amqp://smoke:x@127.0.0.1:{port}/%2F", "Message queue connection failed"),
}


@pytest.mark.parametrize("type_", sorted(SERVER_TYPES))
def test_server_down_is_connection_refused(type_):
    _, key, url, prefix = SERVER_TYPES[type_]
    port = free_port()
    failure, elapsed, _ = fails(dep("dep", type_, timeout_seconds=30, **{key: url.format(port=port)}))
    assert failure.reason == f"{prefix}: connection refused at 127.0.0.1:{port}"
    assert_cut_short(elapsed, 0, unbounded=30)  # a refusal is final: it does not wait out the timeout


@pytest.mark.parametrize("type_, timeout", [("postgres", 2), ("redis", 1.5), ("amqp", 2)])
def test_server_that_hangs_fails_within_the_timeout(request, type_, timeout):
    fixture, key, _, _ = SERVER_TYPES[type_]
    server = request.getfixturevalue(fixture)  # a real server, stopped with SIGSTOP
    with paused(server):
        failure, elapsed, _ = fails(dep("dep", type_, timeout_seconds=timeout, **{key: server.url}))
    assert f"timed out after {timeout:g} s" in failure.reason
    assert_cut_short(elapsed, timeout)


# -- http and tcp ----------------------------------------------------------------------------------


def test_http_dependency_posts_and_checks_json(demo):
    spec = dep(
        "auth",
        "http",
        url=demo.url + "/api/auth/login",
        method="POST",
        payload={"email": "test@example.com", "password": "test"},
        expected_status=200,
        expect={"json": {"token_type": "bearer"}},
    )
    result, _ = run(spec)
    assert result.facts["status"] == 200
    spec["payload"] = {"email": "test@example.com", "password": "nope"}
    failure, _, _ = fails(spec)
    # The status, and what the body shows against the expectation.
    assert (
        failure.reason
        == f"{demo.url}/api/auth/login returned 401 (expected 200); body.token_type is missing (keys: error)"
    )
    assert failure.kind == "http_auth"


def test_tcp_dependency(demo):
    port = int(demo.url.rsplit(":", 1)[1])
    result, _ = run(dep("port", "tcp", host="127.0.0.1", port=port))
    assert result.summary.startswith(f"connected to 127.0.0.1:{port}")
    closed = free_port()
    failure, _, _ = fails(dep("port", "tcp", host="127.0.0.1", port=closed))
    assert failure.reason == f"TCP connect failed: connection refused at 127.0.0.1:{closed}"


# -- through pytest: classification and secrets ----------------------------------------------------


def test_required_failure_is_critical_optional_is_a_warning_and_no_password_leaks(
    pytester, write_config, postgres_server, redis_auth_server, rabbitmq_server, monkeypatch
):
    monkeypatch.setenv("DB_DSN", postgres_server.url.replace(PG_PASSWORD, "leaky-Db-pass-1"))
    monkeypatch.setenv("CACHE_URL", redis_auth_server.url.replace(REDIS_PASSWORD, "leaky-Redis-pass-2"))
    monkeypatch.setenv("MQ_URL", rabbitmq_server.url)
    write_config(
        {
            "dependency_checks": [
                dep("database", "postgres", dsn="${DB_DSN}", required=True),
                dep("redis-cache", "redis", url="${CACHE_URL}", required=False),
                dep("queue", "amqp", url="${MQ_URL}", queue="orders"),
            ]
        }
    )
    result = pytester.runpytest("--smoke-config", "smoke.json", "-v", "-rA", "--junitxml=junit.xml")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            'Database connection failed: password authentication failed for user "app"',
            "severity: critical (required check)",
            f"Redis unavailable: authentication failed at 127.0.0.1:{redis_auth_server.port}*",
            "severity: warning (optional check)",
        ]
    )
    everything = result.stdout.str() + result.stderr.str() + (pytester.path / "junit.xml").read_text()
    for secret in ("leaky-Db-pass-1", "leaky-Redis-pass-2", AMQP_PASSWORD):
        assert secret not in everything
    junit = (pytester.path / "junit.xml").read_text()
    assert (
        'dependency[database].smoke_severity" value="critical"' in junit
        and 'dependency[redis-cache].smoke_severity" value="warning"' in junit
    )


def test_seed_config_verbatim_against_real_servers(pytester, demo, postgres_server, redis_server, monkeypatch):
    for key, value in {
        "SMOKE_BASE_URL": demo.url,
        "PGHOST": "127.0.0.1",
        "PGPORT": str(postgres_server.port),
        "PGUSER": "app",
        "PGPASSWORD": PG_PASSWORD,
        "PGDATABASE": "postgres",
        "REDIS_URL": redis_server.url,
    }.items():
        monkeypatch.setenv(key, value)
    config = pytester.path / ".coditect" / "config" / "smoke-test-hook.json"
    config.parent.mkdir(parents=True)
    config.write_text(SEED_CONFIG.read_text())
    result = pytester.runpytest("--smoke-config", ".coditect/config/smoke-test-hook.json", "-v")
    result.assert_outcomes(passed=7)
    assert PG_PASSWORD not in result.stdout.str()


# -- custom check types ----------------------------------------------------------------------------


def test_a_plugin_adds_a_check_type_through_the_hook(pytester, write_config):
    pytester.makeconftest(
        """
        from pytest_smoke import CheckFailed, CheckResult

        def kafka(spec, ctx):
            if spec["brokers"] == "down:9092":
                raise CheckFailed("Kafka unavailable: no broker answered at down:9092", kind="queue_down")
            return CheckResult(summary="3 brokers up")

        def pytest_smoke_check_type(name):
            return kafka if name == "kafka" else None
        """
    )
    write_config(
        {
            "dependency_checks": [
                {"name": "events", "type": "kafka", "brokers": "up:9092"},
                {"name": "events-dr", "type": "kafka", "brokers": "down:9092", "required": False},
            ]
        }
    )
    result = pytester.runpytest("--smoke-config", "smoke.json", "-v")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["Kafka unavailable: no broker answered at down:9092", "severity: warning (optional check)"]
    )


def test_custom_type_that_ignores_its_timeout_is_still_stopped(pytester, write_config):
    pytester.makeconftest(
        """
        import time

        def pytest_smoke_check_type(name):
            return (lambda spec, ctx: time.sleep(30)) if name == "sleepy" else None
        """
    )
    write_config({"dependency_checks": [{"name": "nats", "type": "sleepy", "timeout_seconds": 1}]})
    started = time.monotonic()
    # A process of its own: its exit must not wait for the sleeping thread either.
    result = pytester.runpytest_subprocess("--smoke-config", "smoke.json")
    assert_cut_short(time.monotonic() - started, 1, unbounded=30)
    result.stdout.fnmatch_lines(["nats: timed out after 1 s"])


def test_unknown_type_is_a_config_error_listing_known_types(pytester, write_config):
    write_config({"dependency_checks": [{"name": "x", "type": "mongo"}]})
    result = pytester.runpytest("--smoke-config", "smoke.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*dependency_checks[[]0[]].type: unknown dependency type 'mongo' (built in: postgres, redis, http, amqp, "
            "tcp, grpc; a plugin adds one by implementing pytest_smoke_check_type)*"
        ]
    )


def test_a_plugin_can_replace_a_built_in_type_because_built_ins_answer_last(pytester, write_config):
    pytester.makeconftest(
        """
        def pytest_smoke_check_type(name):
            return (lambda spec, ctx: "answered by the plugin") if name == "tcp" else None
        """
    )
    write_config({"dependency_checks": [{"name": "nowhere", "type": "tcp", "host": "127.0.0.1", "port": 1}]})
    result = pytester.runpytest("--smoke-config", "smoke.json", "--smoke-report=report.json")
    assert result.ret == 0  # port 1 is closed: only the plugin's function can pass
    report = json.loads((pytester.path / "report.json").read_text())
    assert report["checks"][0]["facts"]["summary"] == "answered by the plugin"


def test_a_plugin_adds_a_rollback_handler_through_the_hook(pytester, write_config, demo):
    demo.faults.add("ready-503")
    pytester.makeconftest(
        """
        from pathlib import Path
        from pytest_smoke.model import Plan

        class ArgoUndo:
            def plan(self, target, strategy):
                return Plan("argo-undo", None, "kubectl argo rollouts undo web")

            def execute(self, plan, strategy, timeout, progress):
                Path("undone.txt").write_text(plan.manual_command)

        def pytest_smoke_rollback_handler(name):
            return ArgoUndo() if name == "argo-undo" else None
        """
    )
    write_config(
        {
            "base_url": demo.url,
            "health_checks": [health("readiness", "/health/ready")],
            "auto_rollback": {"enabled": True, "requires_ops_confirmation": False},
            "rollback_strategy": {"type": "argo-undo"},
        }
    )
    result = pytester.runpytest("--smoke-config", "smoke.json")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*CRITICAL: Smoke tests failed - Rollback completed*"])
    assert (pytester.path / "undone.txt").read_text() == "kubectl argo rollouts undo web"


def test_an_unknown_rollback_handler_is_a_usage_error(pytester, write_config, demo):
    write_config(
        {
            "base_url": demo.url,
            "health_checks": [health("basic", "/health")],
            "rollback_strategy": {"type": "argo-undo"},
        }
    )
    result = pytester.runpytest("--smoke-config", "smoke.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*rollback_strategy.type: unknown rollback handler 'argo-undo' (built in: previous-image, rollout-undo, "
            "command; a plugin adds one by implementing pytest_smoke_rollback_handler)*"
        ]
    )
    assert demo.requests == []


def test_postgres_expect_equals_compares_the_first_value_and_shows_it(postgres_server):
    schema = "SELECT version_num FROM (VALUES ('a1b2c3')) AS alembic_version(version_num)"
    result, _ = run(dep("db", "postgres", dsn=postgres_server.url, query=schema, expect={"equals": "a1b2c3"}))
    assert "returned 'a1b2c3' on PostgreSQL" in result.summary
    run(
        dep(
            "db",
            "postgres",
            dsn=postgres_server.url,
            query="SELECT count(*) FROM pg_database WHERE datname = 'postgres'",
            expect={"equals": 1},
        )
    )
    failure, _, _ = fails(dep("db", "postgres", dsn=postgres_server.url, query=schema, expect={"equals": "ffff00"}))
    assert failure.reason.startswith('Database query "SELECT version_num FROM (VALUES')
    assert failure.reason.endswith(" returned 'a1b2c3' (expected 'ffff00')")
    failure, _, _ = fails(
        dep("db", "postgres", dsn=postgres_server.url, query="SELECT 1 WHERE false", expect={"equals": 1})
    )
    assert failure.reason == "Database query 'SELECT 1 WHERE false' returned no rows (expected 1)"


def test_redis_expect_equals_compares_the_reply(redis_server):
    import redis

    redis.Redis.from_url(redis_server.url).set("release", "2026.12.1")
    run(dep("cache", "redis", url=redis_server.url, command="GET release", expect={"equals": "2026.12.1"}))
    run(dep("cache", "redis", url=redis_server.url, command="EXISTS release", expect={"equals": 1}))
    failure, _, _ = fails(
        dep("cache", "redis", url=redis_server.url, command="GET release", expect={"equals": "2026.12.2"})
    )
    assert failure.reason == "Redis GET release returned '2026.12.1' (expected '2026.12.2')"


def test_expect_equals_never_shows_a_value_when_the_expected_one_is_a_secret(redis_server):
    import redis

    redis.Redis.from_url(redis_server.url).set("api_token", "Old-Token-Secret-123")
    ctx = CheckContext(redactor=Redactor({"New-Token-Secret-456"}))
    with pytest.raises(CheckFailed) as failure:
        run_check(
            Check.of(
                "dependency",
                dep(
                    "cache",
                    "redis",
                    url=redis_server.url,
                    command="GET api_token",
                    expect={"equals": "New-Token-Secret-456"},
                ),
            ),
            ctx,
        )
    assert (
        failure.value.reason
        == "Redis GET api_token returned a different value (not shown: the expected value is a secret) (expected ***)"
    )


def test_expect_equals_compares_big_numbers_exactly():
    from pytest_smoke.checks.base import same_value

    assert not same_value(20261207123456788, 20261207123456789)
    assert not same_value("9007199254740993", 9007199254740992)
    assert same_value("42", 42) and same_value(42.0, 42) and not same_value("forty-two", 42) and not same_value(True, 1)
