"""Property-based: random mutations of valid configs are either accepted or rejected with a usage
error that names the file and the path. Never a traceback, never a request, never a rollback."""

from __future__ import annotations

import copy
import json
import socket

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_smoke import ConfigError, load_config

from helpers import SEED_CONFIG

BASE = json.loads(SEED_CONFIG.read_text())
BASE["base_url"] = "http://127.0.0.1:9"
BASE["critical_paths"][0]["steps"][0]["save"] = {"token": "body.access_token"}
BASE["critical_paths"][0]["steps"][1]["headers"] = {"Authorization": "Bearer {token}"}
BASE["environments"] = {"prod": {"base_url": "http://127.0.0.1:10", "auto_rollback": {"enabled": False}}}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["${UNSET_VAR_FOR_FUZZ}", "${HOME:-x}", "{unknown}", "GET", "/health", "-1", "\u202e\u0000"]),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)


def paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from paths(value, prefix + (key,))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            yield from paths(value, prefix + (index,))


ALL_PATHS = [p for p in paths(BASE) if p]


@st.composite
def mutated(draw):
    doc = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(ALL_PATHS))
        parent = doc
        try:
            for part in path[:-1]:
                parent = parent[part]
            action = draw(st.sampled_from(["replace", "delete", "add"]))
            if action == "replace":
                parent[path[-1]] = draw(values)
            elif action == "delete" and isinstance(parent, dict):
                del parent[path[-1]]
            elif isinstance(parent, dict):
                parent[draw(st.text(min_size=1, max_size=10))] = draw(values)
        except (KeyError, IndexError, TypeError):
            continue
    return doc


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("loading a config must never open a connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def check_outcome(path):
    try:
        config = load_config(path, env={"HOME": "/root"})
    except ConfigError as error:
        text = str(error)
        assert text.startswith(f"smoke config error: {path}")
        assert "Traceback" not in text
        # What is wrong is said in words, never as a Python repr, and a location is shown as given.
        assert len(error.message.split()) >= 2, error.message
        assert " object at 0x" not in text and "<class " not in text
        if error.location:
            assert f": {error.location}: " in text
        return None
    return config


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(doc=mutated(), as_yaml=st.booleans())
def test_mutated_configs_are_accepted_or_rejected_cleanly(tmp_path, no_network, doc, as_yaml):
    path = tmp_path / ("smoke.yaml" if as_yaml else "smoke.json")
    try:
        text = yaml.safe_dump(doc, allow_unicode=True) if as_yaml else json.dumps(doc)
    except (ValueError, yaml.YAMLError):
        return
    path.write_text(text, encoding="utf-8")
    check_outcome(path)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200))
def test_arbitrary_text_never_crashes_the_loader(tmp_path, no_network, text):
    for name in ("smoke.json", "smoke.yaml"):
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        check_outcome(path)


@pytest.mark.parametrize(
    "text",
    [
        "enabled: &flag true\nhealth_checks:\n  - &check {name: a, endpoint: /a}\n  - {<<: *check, name: b}\nbase_url: http://x\n",
        "enabled: !!python/object/apply:os.system ['echo pwned']\n",
        "enabled: !custom tag\n",
        "health_checks: " + "[" * 3000 + "]" * 3000 + "\n",
        "timeout_seconds: .inf\n",
        "timeout_seconds: .nan\n",
        "base_url: http://x\nhealth_checks:\n  - {name: \"\u00e9\u00e8\U0001f680\", endpoint: /h}\n",
    ],
)
def test_yaml_anchors_tags_nesting_and_unicode(tmp_path, no_network, text):
    path = tmp_path / "smoke.yaml"
    path.write_text(text, encoding="utf-8")
    config = check_outcome(path)
    if "<<" in text:
        assert config is not None and [c.name for c in config.checks] == ["a", "b"]


def test_deep_nesting_in_json(tmp_path, no_network):
    path = tmp_path / "smoke.json"
    path.write_text('{"health_checks": ' + "[" * 100000 + "]" * 100000 + "}")
    with pytest.raises(ConfigError, match="nested too deeply|invalid JSON|expected"):
        load_config(path)


def test_a_bad_config_through_pytest_is_exit_4_with_no_traceback_and_no_request(pytester, write_config, demo):
    doc = copy.deepcopy(BASE)
    doc["base_url"] = demo.url
    doc["auto_rollback"]["requires_ops_confirmation"] = "sometimes"
    write_config(doc)
    result = pytester.runpytest("--smoke-config", "smoke.json", "--smoke-confirm-rollback")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert demo.requests == []
