"""The docs' recipes against real apps: what the naive config misses and the recipe catches."""

from __future__ import annotations

import uuid
from http.server import BaseHTTPRequestHandler

import pytest

from helpers import health
from servers import LocalHTTPServer, QuietHandler

pytestmark = pytest.mark.slow_server


@pytest.fixture
def static_health_app(postgres_server):
    """An app like MLflow's tracking server: /health answers 200 whatever the database does;
    /api/items reads a table, 500 when it cannot."""
    import psycopg

    table = f"items_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (id int)")

    class App(QuietHandler, BaseHTTPRequestHandler):
        def do_GET(self):
            status, body = 200, {"status": "ok"}
            if self.path == "/api/items":
                try:
                    with psycopg.connect(postgres_server.url) as conn:
                        body = {"count": conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]}
                except psycopg.Error as exc:
                    status, body = 500, {"error": str(exc).splitlines()[0]}
            self.answer(status, body)

    server = LocalHTTPServer(App)
    server.table = table
    yield server
    server.stop()
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}")


def test_the_static_health_recipe_catches_a_dropped_table_the_naive_config_misses(
    pytester, write_config, postgres_server, static_health_app
):
    import psycopg

    app, table = static_health_app, static_health_app.table
    naive = {
        "base_url": app.url,
        "health_checks": [health("live", "/health"), health("ready", "/health")],
        "dependency_checks": [{"name": "database", "type": "postgres", "dsn": postgres_server.url}],
    }
    recipe = {
        "base_url": app.url,
        "health_checks": [health("live", "/health")],
        "dependency_checks": [
            {
                "name": "schema",
                "type": "postgres",
                "dsn": postgres_server.url,
                "query": f"SELECT to_regclass('public.{table}') IS NOT NULL",
                "expect": {"equals": True},
            }
        ],
        "critical_paths": [
            {"name": "read-items", "steps": [{"endpoint": "/api/items", "expect": {"json": {"count": 0}}}]}
        ],
    }
    write_config(recipe)
    assert pytester.runpytest("--smoke-config", "smoke.json").ret == 0  # healthy: the recipe passes
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute(f"DROP TABLE {table}")
    write_config(naive)
    assert pytester.runpytest("--smoke-config", "smoke.json").ret == 0  # the false green the recipe is for
    write_config(recipe)
    result = pytester.runpytest("--smoke-config", "smoke.json")
    assert result.ret == 1
    result.stdout.fnmatch_lines(
        [
            "✗ CRITICAL: Smoke tests failed*",
            "*Dependency: schema: Database query * returned False (expected True)",
            "2. Critical Path: read-items: step 1/1 (GET /api/items) returned 500 (expected any 2xx)*",
        ]
    )


def test_a_config_of_health_gets_only_gets_a_note_saying_what_it_cannot_see(pytester, write_config, static_health_app):
    write_config(
        {"base_url": static_health_app.url, "health_checks": [health("live", "/health"), health("ready", "/health")]}
    )
    result = pytester.runpytest("--smoke-config", "smoke.json")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        ["Note: every required check is a GET of a health endpoint: *add a critical path that reads through the API*"]
    )
    write_config(
        {
            "base_url": static_health_app.url,
            "health_checks": [health("live", "/health")],
            "critical_paths": [{"name": "read", "steps": [{"endpoint": "/api/items"}]}],
        }
    )
    assert "every required check is a GET" not in pytester.runpytest("--smoke-config", "smoke.json").stdout.str()
