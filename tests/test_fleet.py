"""Fleet configs: one file, many targets; a run checks one target, as a whole run of its own."""

from __future__ import annotations

import json

import pytest

from pytest_smoke.config import ConfigError, load_config, load_fleet
from pytest_smoke.selector import SelectorError, parse

from helpers import health


def fleet_doc(*targets: tuple[str, dict], waves=None, **fleet):
    section = {"targets": dict(targets), **fleet}
    if waves is not None:
        section["waves"] = waves
    return {"health_checks": [health("readiness", "/health/ready")], "fleet": section}


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ("region=eu", {"region": "eu"}, True),
        ("region==eu,tier!=canary", {"region": "eu"}, True),
        ("region=eu,tier!=canary", {"region": "eu", "tier": "canary"}, False),
        ("region in (eu, us),!legacy", {"region": "us"}, True),
        ("region notin (eu,us)", {"region": "ap"}, True),
        ("tier", {"region": "eu"}, False),
        ("!tier", {"region": "eu"}, True),
    ],
)
def test_label_selectors_read_as_kubectl_reads_them(selector, labels, matches):
    assert parse(selector).matches(labels) is matches


@pytest.mark.parametrize("selector", ["", "region=", "region in ()", "=eu", "region in (eu", "a b"])
def test_a_selector_that_does_not_parse_names_its_requirement(selector):
    if selector == "region=":
        assert parse(selector).matches({"region": ""})  # an empty value, as Kubernetes allows
        return
    with pytest.raises(SelectorError):
        parse(selector)


def test_a_target_run_checks_only_its_target_and_names_it_in_every_node_id(pytester, write_config, demo):
    from demo_service import DemoService

    other = DemoService(faults=set()).start()
    try:
        write_config(
            fleet_doc(
                ("eu-west-1", {"labels": {"region": "eu"}, "base_url": demo.url}),
                ("us-east-1", {"labels": {"region": "us"}, "base_url": other.url}),
            ),
            name="fleet.yaml",
        )
        result = pytester.runpytest(
            "--smoke-config", "fleet.yaml", "--smoke-target", "eu-west-1", "--smoke-report", "out/eu-west-1.json", "-v"
        )
    finally:
        other.stop()
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["fleet.yaml::eu-west-1::health[[]readiness[]] PASSED*"])
    assert other.requests == [] and demo.requests  # the other target received no request
    report = json.loads((pytester.path / "out" / "eu-west-1.json").read_text())
    assert report["fleet"]["target"] == "eu-west-1" and report["fleet"]["labels"] == {"region": "eu"}
    assert report["fleet"]["config_digest"].startswith("sha256:") and report["fleet"]["wave"] is None


def test_k_selects_by_target_and_a_target_comes_from_smoke_target(pytester, write_config, demo, monkeypatch):
    write_config(fleet_doc(("eu-west-1", {"base_url": demo.url})), name="fleet.yaml")
    monkeypatch.setenv("SMOKE_TARGET", "eu-west-1")
    assert pytester.runpytest("--smoke-config", "fleet.yaml", "-k", "eu-west-1").ret == 0
    result = pytester.runpytest("--smoke-config", "fleet.yaml", "-k", "us-east-1")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    assert [path for _, path in demo.requests] == ["/health/ready"]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            fleet_doc(("a", {"base_url": "http://127.0.0.1:9"}), ("b", {"base_url": "ftp://127.0.0.1"})),
            "fleet.yaml:11: fleet.targets.b.base_url: base URL has the scheme 'ftp'",
        ),
        (
            fleet_doc(("a", {"base_url": "http://127.0.0.1:9", "timeout_seconds": "slow"})),
            "fleet.targets.a.timeout_seconds: expected a number",
        ),
        (
            fleet_doc(
                ("a", {"labels": {"tier": "canary"}}),
                ("b", {"labels": {"tier": "main"}}),
                waves=[{"select": "tier=canary"}, {"select": "tier in (canary, main)"}],
            ),
            "fleet.waves[1].select: target 'a' is in wave 1 already: a target is in one wave",
        ),
        (
            fleet_doc(("a", {"labels": {"tier": "canary"}}), ("b", {}), waves=[{"select": "tier=canary"}]),
            "fleet.waves: target 'b' is in no wave: every target is in exactly one",
        ),
        (
            fleet_doc(("a", {"labels": {"tier": "canary"}}), waves=[{"select": "tier=main"}]),
            "fleet.waves[0].select: selects no target ('tier=main')",
        ),
        (fleet_doc(("a", {}), waves=[{"select": "tier in (canary"}]), "fleet.waves[0].select: cannot parse"),
        (fleet_doc(("a", {"fleet": {}})), "fleet.targets.a.fleet: a target cannot set fleet"),
        (fleet_doc(("bad name", {})), "fleet.targets"),
    ],
)
def test_every_target_and_wave_is_checked_before_any_request(pytester, write_config, doc, message):
    write_config({"base_url": "http://127.0.0.1:9", **doc}, name="fleet.yaml")
    last = list(doc["fleet"]["targets"])[-1]
    result = pytester.runpytest("--smoke-config", "fleet.yaml", "--smoke-target", last)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str(), result.stderr.str()
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_a_fleet_config_needs_one_target_and_a_plain_config_none(tmp_path):
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps(fleet_doc(("eu-west-1", {}), ("us-east-1", {}))))
    with pytest.raises(ConfigError, match=r"a fleet of 2 target\(s\) \(eu-west-1, us-east-1\): a run checks one"):
        load_config(path, env={})
    with pytest.raises(ConfigError, match=r"unknown target 'eu-west1' .* did you mean 'eu-west-1'\?"):
        load_config(path, env={}, target="eu-west1")
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps({"health_checks": [health("h", "/h")]}))
    with pytest.raises(ConfigError, match="--smoke-target eu-west-1: this config has no fleet: section"):
        load_config(plain, env={}, target="eu-west-1")


def test_targets_override_the_top_level_after_the_environment(tmp_path):
    path = tmp_path / "fleet.json"
    doc = fleet_doc(
        ("eu", {"base_url": "http://eu.internal", "rollback_strategy": {"namespace": "eu"}}),
        waves=[{"select": "!tier"}],
        max_rollbacks=2,
    )
    doc["rollback_strategy"] = {"type": "previous-image", "deployment": "web", "namespace": "default"}
    doc["environments"] = {"prod": {"headers": {"X-Env": "prod"}}}
    path.write_text(json.dumps(doc))
    config = load_config(path, env={"SMOKE_FLEET_RUN_ID": "run-7"}, environment="prod", target="eu")
    assert config.base_url == "http://eu.internal"
    assert config.data["rollback_strategy"] == {"type": "previous-image", "deployment": "web", "namespace": "eu"}
    assert config.data["headers"] == {"X-Env": "prod"} and "fleet" not in config.data
    assert config.target.wave == 1 and config.fleet_run_id == "run-7"
    fleet = load_fleet(path)
    assert fleet.max_rollbacks == 2 and [wave.targets for wave in fleet.waves] == [("eu",)]
    assert fleet.digest == config.fleet.digest


def test_the_example_fleet_and_its_manifests_name_the_same_targets_in_wave_order():
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1] / "example_suites" / "fleet"
    fleet = load_fleet(root / "fleet.yaml")
    in_order = [name for wave in fleet.waves for name in wave.targets]
    for name in in_order:  # every target loads as a whole config
        assert load_config(root / "fleet.yaml", env={}, target=name).target.name == name
    job, merge_job = yaml.safe_load_all((root / "indexed-job.yaml").read_text())
    script = job["spec"]["template"]["spec"]["containers"][0]["args"][0]
    assert script.split("\n")[0].split()[2:] == in_order and job["spec"]["completions"] == len(in_order)
    assert merge_job["spec"]["template"]["spec"]["containers"][0]["args"] == [f"/reports/{n}.json" for n in in_order]
    workflow = yaml.safe_load((root / "github-actions-fleet.yml").read_text())
    matrices = [job["strategy"]["matrix"]["target"] for job in workflow["jobs"].values() if "strategy" in job]
    assert matrices == [list(wave.targets) for wave in fleet.waves]
    # The Helm hook, rendered for one cluster's release: it runs that target of this fleet.
    values = {"{{ .Values.smoke.target }}": "eu-west-1", "{{ .Values.smoke.fleetRunId }}": "shop-1"}
    text = (root / "helm-hook-job.yaml").read_text()
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    hook = yaml.safe_load(text)
    container = hook["spec"]["template"]["spec"]["containers"][0]
    env = {entry["name"]: entry["value"] for entry in container["env"]}
    assert env["SMOKE_TARGET"] == "eu-west-1" and env["SMOKE_FLEET_RUN_ID"] == "shop-1"
    assert "--smoke-config=/etc/smoke/fleet.yaml" in container["args"] and hook["spec"]["backoffLimit"] == 0
    assert "for target in " + " ".join(in_order) + "; do" in text  # the pipeline deploys in wave order


def test_a_fleet_sessions_report_stream_is_read_a_whole_line_at_a_time(tmp_path):
    from pytest_smoke.plugin.stream import StreamReader

    path = tmp_path / "target.stream.jsonl"
    reader = StreamReader(path)
    assert list(reader.events()) == []  # the target has not started writing
    path.write_text('{"event": "logstart", "nodeid": "a"}\n{"event": "logfin')
    assert list(reader.events()) == [{"event": "logstart", "nodeid": "a"}]  # the half line waits
    with open(path, "a") as handle:
        handle.write('ish", "nodeid": "a"}\n')
    assert list(reader.events()) == [{"event": "logfinish", "nodeid": "a"}]
    assert list(reader.events()) == []


def test_an_interrupted_fleet_still_exits_with_what_its_targets_did():
    from pytest_smoke.fleet.merge import FleetResult, TargetResult

    def fleet(*codes: int) -> FleetResult:
        targets = [TargetResult(f"t{i}", {}, None, "x", code, "") for i, code in enumerate(codes)]
        return FleetResult(config="f.yaml", digest="sha256:0", run_id="r", targets=targets, ended_early=2)

    assert fleet(0, 12).exit_status == 2  # nothing worse than the interruption: no verdict
    assert fleet(1, 12).exit_status == 1  # a target failed critically (and may have rolled back)
    assert fleet(1, 10).exit_status == 10  # a rollback needs a human: never hidden behind "interrupted"
