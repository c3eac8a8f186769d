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
from pytest_smoke.config import schema
from pytest_smoke.schema.quick import Unsure, compile_schema

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
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from paths(value, prefix + (key,))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            yield from paths(value, prefix + (index,))


ALL_PATHS = [p for p in paths(BASE) if p]


# Values near what a config holds: the other types a field is confused with, and the boundaries.
near_values = (
    st.sampled_from(
        [
            None,
            True,
            False,
            0,
            1,
            -1,
            0.5,
            1.0,
            2.0,
            86400,
            86401,
            1e300,
            float("nan"),
            "",
            " ",
            "x",
            "/health",
            "health",
            "GET",
            "get",
            "POST",
            "2xx",
            "200",
            "http://127.0.0.1:9",
            "${X}",
            "a\n",
            "__x",
            "x" * 300,
            [],
            {},
            ["a"],
            ["a", "a"],
            {"a": 1},
        ]
    )
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
)


@st.composite
def changed(draw, replacements, actions=("replace", "delete", "add")):
    """The seed config with one to three values replaced, deleted, or added under a new key."""
    doc = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(ALL_PATHS))
        parent = doc
        try:
            for part in path[:-1]:
                parent = parent[part]
            action = draw(st.sampled_from(actions))
            if action == "replace":
                parent[path[-1]] = draw(replacements)
            elif action == "delete" and isinstance(parent, dict):
                del parent[path[-1]]
            elif action == "add" and isinstance(parent, dict):
                parent[draw(st.text(min_size=1, max_size=10))] = draw(replacements)
        except (KeyError, IndexError, TypeError):
            continue
    return doc


def mutated():
    return changed(values)


def nearly_valid():
    """Most stay valid or miss by one rule."""
    return changed(near_values, actions=("replace", "replace", "delete"))


QUICK_CHECK = compile_schema(schema())


@settings(max_examples=600, deadline=None)
@given(doc=nearly_valid() | mutated())
def test_the_quick_schema_check_answers_as_jsonschema_does(doc):
    """The loader trusts a "valid" from pytest_smoke.schema.quick without asking jsonschema: the
    two must agree wherever the quick check answers at all."""
    import jsonschema

    try:
        quick = QUICK_CHECK(doc)
    except Unsure:
        return
    errors = [error.message for error in jsonschema.Draft202012Validator(schema()).iter_errors(doc)]
    assert quick == (not errors), errors


def test_the_quick_schema_check_knows_every_keyword_of_the_shipped_schema():
    # If the schema gains a keyword the quick check does not know, every load falls back to
    # jsonschema: correct, but slow. This test says so before a benchmark does.
    assert QUICK_CHECK(copy.deepcopy(BASE)) is True


@pytest.mark.parametrize(
    "value, valid",
    # NaN compares false with every bound, so the schema lets it through; the loader rejects it after.
    [(True, False), (1, True), (1.0, True), (0, False), (float("nan"), True), ("5", False), (10**30, False)],
)
def test_the_quick_check_and_jsonschema_agree_on_numbers_and_booleans(value, valid):
    import jsonschema

    doc = copy.deepcopy(BASE)
    doc["timeout_seconds"] = value
    assert jsonschema.Draft202012Validator(schema()).is_valid(doc) is valid
    assert QUICK_CHECK(doc) is valid


@pytest.mark.parametrize(
    "name, text",
    [
        (
            "smoke.json",
            '{"base_url": "http://127.0.0.1:9",\n '
            '"health_checks": [{"name": "a", "endpoint": "/a", "timeout_seconds": NaN}]}',
        ),
        (
            "smoke.yaml",
            "base_url: http://127.0.0.1:9\nhealth_checks:\n  - name: a\n    endpoint: /a\n    timeout_seconds: .nan\n",
        ),
    ],
)
def test_nan_is_rejected_with_its_path_and_line(tmp_path, no_network, name, text):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert (
        str(error.value) == f"smoke config error: {path}:{error.value.line}: "
        "health_checks[0].timeout_seconds: NaN is not allowed here: give a number"
    )
    assert error.value.line in (2, 5)


@pytest.mark.parametrize(
    "text, location",
    [
        ("base_url: http://127.0.0.1:9\nenvironments:\n  1: {}\n  a: {}\n", "environments"),
        (
            "base_url: http://127.0.0.1:9\nmonitoring:\n  pushgateway:\n    labels: {true: x}\n",
            "monitoring.pushgateway.labels",
        ),
    ],
)
def test_a_key_yaml_read_as_a_number_or_boolean_is_a_config_error(tmp_path, no_network, text, location):
    # Before: sorted() over mixed keys raised a TypeError out of the loader (a traceback), or
    # jsonschema's message showed a Python repr.
    path = tmp_path / "smoke.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="is not a string .*: quote it") as error:
        load_config(path)
    assert error.value.location == location


def test_a_yaml_date_is_left_to_jsonschema_and_named_in_the_error(tmp_path, no_network):
    path = tmp_path / "smoke.yaml"
    path.write_text(
        "base_url: http://127.0.0.1:9\ntimeout_seconds: 2026-11-29\nhealth_checks:\n  - {name: a, endpoint: /a}\n"
    )
    with pytest.raises(Unsure):
        QUICK_CHECK(yaml.safe_load(path.read_text()))
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert error.value.location == "timeout_seconds"


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


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
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
        "enabled: &flag true\nhealth_checks:\n  - &check {name: a, endpoint: /a}\n  - {<<: *check, name: b}\n"
        "base_url: http://x\n",
        "enabled: !!python/object/apply:os.system ['echo pwned']\n",
        "enabled: !custom tag\n",
        "health_checks: " + "[" * 3000 + "]" * 3000 + "\n",
        "timeout_seconds: .inf\n",
        "timeout_seconds: .nan\n",
        'base_url: http://x\nhealth_checks:\n  - {name: "\u00e9\u00e8\U0001f680", endpoint: /h}\n',
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
