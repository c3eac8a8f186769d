"""Config loading and validation, through pytest the way a user runs it, and the plain API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_smoke import ConfigError, load_config
from pytest_smoke.config import schema

from helpers import SEED_CONFIG, health

SEED_DOC = Path(__file__).resolve().parents[2] / "shared" / "seed" / "post-deploy-smoke-test.txt"


def seed() -> dict:
    return json.loads(SEED_CONFIG.read_text())


def test_bundled_seed_config_is_the_seed_documents_config():
    if not SEED_DOC.exists():
        pytest.skip("the seed document is not beside this checkout")
    text = SEED_DOC.read_text()
    block = text[text.index('{\n"enabled"') : text.index("\nIntegration")].strip()
    assert json.loads(block) == seed()


def test_seed_config_loads_verbatim_and_generates_one_item_per_check(pytester, monkeypatch):
    pytester.mkdir(".coditect")
    config_dir = pytester.mkdir(".coditect/config")
    (config_dir / "smoke-test-hook.json").write_text(SEED_CONFIG.read_text())
    monkeypatch.setenv("SMOKE_BASE_URL", "http://127.0.0.1:9")
    result = pytester.runpytest("--smoke-config", ".coditect/config/smoke-test-hook.json", "--collect-only", "-q")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            ".coditect/config/smoke-test-hook.json::health[[]basic-health[]]",
            ".coditect/config/smoke-test-hook.json::health[[]readiness[]]",
            ".coditect/config/smoke-test-hook.json::health[[]liveness[]]",
            ".coditect/config/smoke-test-hook.json::dependency[[]database[]]",
            ".coditect/config/smoke-test-hook.json::dependency[[]redis-cache[]]",
            ".coditect/config/smoke-test-hook.json::critical_path[[]user-login[]]",
            ".coditect/config/smoke-test-hook.json::critical_path[[]core-api[]]",
            "7 tests collected*",
        ]
    )


def test_seed_config_as_yaml_loads_the_same(tmp_path):
    import yaml

    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(seed()))
    config = load_config(path, base_url="http://x")
    assert [c.node_name for c in config.checks] == [
        c.node_name for c in load_config(SEED_CONFIG, base_url="http://x").checks
    ]
    assert [c.required for c in config.checks] == [True, True, False, True, False, True, True]


def test_shipped_schema_is_valid_json_schema_and_accepts_the_seed():
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(schema())
    jsonschema.validate(seed(), schema())


@pytest.mark.parametrize(
    "mutate, location, expected",
    [
        (
            lambda d: d["health_checks"][1].update(expected_status="200"),
            "health_checks[1].expected_status",
            "expected an HTTP status",
        ),
        (lambda d: d["health_checks"][0].update(colour="red"), "health_checks[0].colour", "unknown key 'colour'"),
        (lambda d: d["health_checks"][2].pop("endpoint"), "health_checks[2]", "missing required key 'endpoint'"),
        (lambda d: d.update(timeout_seconds=-5), "timeout_seconds", "expected a number > 0, got integer -5"),
        (lambda d: d["auto_rollback"].update(enabled="yes"), "auto_rollback.enabled", "expected true or false"),
        (lambda d: d["dependency_checks"][0].update(query=1), "dependency_checks[0].query", "expected a string"),
        (
            lambda d: d["critical_paths"][0]["steps"][1].update(method="FETCH"),
            "critical_paths[0].steps[1].method",
            "expected one of",
        ),
        (
            lambda d: d["health_checks"][1].update(name="basic-health"),
            "health_checks[1].name",
            "duplicate check name 'basic-health'",
        ),
        (lambda d: d["critical_paths"][1].update(steps=[]), "critical_paths[1].steps", "expected at least 1 item"),
    ],
)
def test_invalid_config_is_a_usage_error_naming_file_path_and_expectation(
    pytester, write_config, mutate, location, expected
):
    doc = seed()
    doc["base_url"] = "http://127.0.0.1:9"
    mutate(doc)
    write_config(doc)
    result = pytester.runpytest("--smoke-config", "smoke.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "smoke.json:" in err
    assert f"{location}: " in err
    assert expected in err
    assert "Traceback" not in err + result.stdout.str()


def test_error_message_carries_the_line_of_the_bad_value(tmp_path):
    path = tmp_path / "smoke.json"
    path.write_text(
        SEED_CONFIG.read_text().replace(
            '"expected_status": 200,\n"timeout_seconds": 10', '"expected_status": "ok",\n"timeout_seconds": 10'
        )
    )
    with pytest.raises(ConfigError) as error:
        load_config(path, base_url="http://x")
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if '"ok"' in text)
    assert error.value.line == line
    assert str(error.value).startswith(f"smoke config error: {path}:{line}: health_checks[1].expected_status:")


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "smoke.yaml"
    path.write_text("enabled: true\nhealth_checks:\n  - name: a\n    endpoint: [unclosed\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert "invalid YAML" in str(error.value) and error.value.line is not None


def test_yaml_tags_cannot_run_code(tmp_path):
    path = tmp_path / "smoke.yaml"
    path.write_text("enabled: !!python/object/apply:os.system ['touch pwned']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(path)
    assert not (tmp_path / "pwned").exists()


def test_duplicate_json_keys_are_rejected(tmp_path):
    path = tmp_path / "smoke.json"
    path.write_text('{"enabled": true, "enabled": false}')
    with pytest.raises(ConfigError, match="duplicate key 'enabled'"):
        load_config(path)


def test_missing_file_and_unknown_extension(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.json")
    (tmp_path / "smoke.toml").write_text("")
    with pytest.raises(ConfigError, match="use a .json, .yaml or .yml file"):
        load_config(tmp_path / "smoke.toml")


def test_interpolation_with_defaults_and_secret_tracking(tmp_path):
    doc = {
        "base_url": "${SVC_URL:-http://127.0.0.1:8000}",
        "headers": {"Authorization": "Bearer ${API_TOKEN}", "X-Env": "${DEPLOY_ENV:-staging}", "X-Cost": "$$5"},
        "health_checks": [health("h", "/health")],
    }
    path = tmp_path / "smoke.json"
    path.write_text(json.dumps(doc))
    config = load_config(path, env={"API_TOKEN": "tok-abcdef"})
    assert config.base_url == "http://127.0.0.1:8000"
    assert config.headers == {"Authorization": "Bearer tok-abcdef", "X-Env": "staging", "X-Cost": "$5"}
    assert "tok-abcdef" in config.secrets
    assert "staging" not in config.secrets  # defaults live in the file: not secret


def test_unset_variable_without_default_stops_the_run_before_any_request(pytester, write_config, demo, monkeypatch):
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    write_config(
        {"base_url": demo.url, "health_checks": [health("h", "/health", headers={"X-Key": "${NOT_SET_ANYWHERE}"})]}
    )
    result = pytester.runpytest("--smoke-config", "smoke.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*smoke.json:*: health_checks[[]0[]].headers.X-Key: environment variable NOT_SET_ANYWHERE is not set*"]
    )
    assert demo.requests == []


def test_config_found_through_ini_option_and_environment(pytester, write_config, demo, monkeypatch):
    write_config({"base_url": demo.url, "health_checks": [health("h", "/health")]}, name="conf/smoke.json")
    pytester.makeini("[pytest]\nsmoke_config = conf/smoke.json\n")
    pytester.runpytest().assert_outcomes(passed=1)
    pytester.makeini("[pytest]\n")
    monkeypatch.setenv("SMOKE_CONFIG", str(pytester.path / "conf" / "smoke.json"))
    pytester.runpytest().assert_outcomes(passed=1)


def test_without_a_smoke_config_the_plugin_stays_out_of_the_way(pytester, monkeypatch):
    monkeypatch.delenv("SMOKE_CONFIG", raising=False)
    pytester.makepyfile("def test_plain(): pass")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert "smoke:" not in result.stdout.str()


def test_environment_overrides_are_deep_merged(pytester, write_config, demo):
    doc = {
        "base_url": "http://127.0.0.1:9",
        "health_checks": [health("h", "/health")],
        "environments": {
            "prod": {"base_url": demo.url, "auto_rollback": {"enabled": True}},
            "staging": {"health_checks": [health("h", "/health/ready"), health("extra", "/health/live")]},
        },
    }
    path = write_config(doc)
    prod = load_config(path, environment="prod")
    assert prod.base_url == demo.url and prod.data["auto_rollback"] == {"enabled": True}
    staging = load_config(path, environment="staging")
    assert [c.spec["endpoint"] for c in staging.checks] == ["/health/ready", "/health/live"]
    result = pytester.runpytest("--smoke-config", "smoke.json", "--smoke-env", "prod")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["smoke: *smoke.json, environment prod: 1 health*"])
    bad = pytester.runpytest("--smoke-config", "smoke.json", "--smoke-env", "qa")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*unknown environment 'qa' (from --smoke-env); known: prod, staging*"])


def test_environment_override_is_validated_too(tmp_path):
    path = tmp_path / "smoke.json"
    path.write_text(json.dumps({"base_url": "http://x", "environments": {"prod": {"timeout_seconds": "long"}}}))
    with pytest.raises(
        ConfigError, match=r"timeout_seconds: expected a number, got string \"long\" \(with environment 'prod'\)"
    ):
        load_config(path, environment="prod")


def test_enabled_false_generates_nothing_and_says_so(pytester, write_config):
    doc = seed()
    doc["enabled"] = False
    doc["base_url"] = "http://127.0.0.1:9"
    write_config(doc)
    result = pytester.runpytest("--smoke-config", "smoke.json")
    result.stdout.fnmatch_lines(["smoke: disabled (enabled: false in *smoke.json); no smoke checks generated"])
    assert "health[" not in result.stdout.str()


def test_relative_endpoint_without_base_url_is_a_config_error(pytester, write_config, monkeypatch):
    monkeypatch.delenv("SMOKE_BASE_URL", raising=False)
    write_config(seed())
    result = pytester.runpytest("--smoke-config", "smoke.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*health_checks[[]0[]].endpoint: endpoint '/health' is relative but no base URL is set*"]
    )


def test_base_url_precedence_cli_over_config_over_environment(tmp_path):
    path = tmp_path / "smoke.json"
    path.write_text(json.dumps({"health_checks": [health("h", "/health")]}))
    assert load_config(path, env={"SMOKE_BASE_URL": "http://env"}).base_url == "http://env"
    path.write_text(json.dumps({"base_url": "http://file", "health_checks": [health("h", "/health")]}))
    assert load_config(path, env={"SMOKE_BASE_URL": "http://env"}).base_url == "http://file"
    assert load_config(path, base_url="http://cli", env={"SMOKE_BASE_URL": "http://env"}).base_url == "http://cli"


def test_url_credentials_and_an_authorization_header_together_are_a_config_error(pytester, write_config, monkeypatch):
    monkeypatch.setenv("SVC_PASSWORD", "svc-Secret-9911")
    monkeypatch.setenv("SVC_TOKEN", "tok-Secret-4471")
    write_config(
        {
            "base_url": "http://svc:${SVC_PASSWORD}@127.0.0.1:9",
            "headers": {"Authorization": "Bearer ${SVC_TOKEN}"},
            "health_checks": [{"name": "h", "endpoint": "/health"}],
        }
    )
    result = pytester.runpytest("--smoke-config", "smoke.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "headers.Authorization: base_url carries credentials (user:password@) and headers sets Authorization" in err
    assert "svc-Secret-9911" not in err + result.stdout.str() and "tok-Secret-4471" not in err + result.stdout.str()


def test_a_check_name_from_an_environment_variable_is_refused_before_it_reaches_a_node_id(
    pytester, write_config, monkeypatch
):
    monkeypatch.setenv("TENANT_TOKEN", "tenant-Secret-4711")
    write_config(
        {"base_url": "http://127.0.0.1:1", "health_checks": [{"name": "ready-${TENANT_TOKEN}", "endpoint": "/ready"}]}
    )
    result = pytester.runpytest("--smoke-config", "smoke.json", "-v", "--junitxml=junit.xml")
    assert result.ret == 4
    result.stderr.fnmatch_lines(
        ["*smoke.json:*health_checks[[]0[]].name: a check name cannot use ${VAR}: it becomes the pytest node id*"]
    )
    assert "tenant-Secret-4711" not in result.stdout.str() + result.stderr.str()


@pytest.mark.parametrize(
    "base_url", ["http://127.0.0.1:9/api?x=1", "http://127.0.0.1:9/api#frag", "http://127.0.0.1:9/api?"]
)
def test_a_base_url_with_a_query_or_fragment_is_a_config_error(tmp_path, base_url):
    # urljoin would drop them silently (a fragment drops /api too): the request would go elsewhere.
    path = tmp_path / "smoke.json"
    path.write_text(json.dumps({"base_url": base_url, "health_checks": [health("h", "/h")]}))
    with pytest.raises(
        ConfigError, match=r"smoke\.json:1: base_url: base URL has a query or fragment .*put the query in each endpoint"
    ):
        load_config(path)


def test_a_misspelt_key_gets_a_did_you_mean(tmp_path):
    path = tmp_path / "smoke.json"
    path.write_text(
        json.dumps({"base_url": "http://x", "health_checks": [{"name": "h", "endpoint": "/h", "expected_stauts": 200}]})
    )
    message = (
        r"health_checks\[0\]\.expected_stauts: unknown key 'expected_stauts'; "
        r"did you mean 'expected_status'\? \(allowed here: "
    )
    with pytest.raises(ConfigError, match=message):
        load_config(path)
