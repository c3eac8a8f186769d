"""Fleet runs end to end: several local services as targets, one Kubernetes API double per
"cluster" (its own kubeconfig), ``python -m pytest_smoke.fleet run`` and ``merge`` and ``gate``.
Each target is a real pytest process, as in production."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from pytest_smoke.fleet.__main__ import main

from conftest import BAD_IMAGE, GOOD_IMAGE
from demo_service import DemoService
from helpers import deployment_patches, health
from kube_double import KubeDouble

SCHEMAS = Path(__file__).resolve().parents[1] / "pytest_smoke" / "schema"


class Cluster:
    """One target: its service and its API server double, with a kubeconfig of its own."""

    def __init__(self, name: str, tmp_path: Path, faults: set[str]):
        self.name = name
        self.service = DemoService(faults=faults).start()
        self.api = KubeDouble(polls_to_complete=1).start()
        self.api.add_deployment("django", {"django": GOOD_IMAGE})
        self.api.deploy("prod", "django", {"django": BAD_IMAGE})
        self.kubeconfig = self.api.write_kubeconfig(tmp_path / f"kubeconfig-{name}")

    def target(self, **labels: str) -> dict:
        return {
            "labels": labels,
            "base_url": self.service.url,
            "rollback_strategy": {"kubeconfig": str(self.kubeconfig)},
        }

    def stop(self) -> None:
        self.service.stop()
        self.api.stop()


@pytest.fixture
def clusters(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    started: dict[str, Cluster] = {}

    def start(name: str, *faults: str) -> Cluster:
        started[name] = Cluster(name, tmp_path, set(faults))
        return started[name]

    yield start
    for cluster in started.values():
        cluster.stop()


def fleet_config(tmp_path: Path, targets: dict, **fleet) -> Path:
    doc = {
        "auto_rollback": {"enabled": True, "requires_ops_confirmation": False, "rollback_timeout_seconds": 20},
        "rollback_strategy": {
            "type": "previous-image",
            "deployment": "django",
            "namespace": "prod",
            "max_rollback_attempts": 1,
        },
        "health_checks": [health("readiness", "/health/ready")],
        "fleet": {"targets": targets, **fleet},
    }
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def run_fleet(config: Path, *args: str) -> int:
    return main(["run", "--config", str(config), "--out", "out", "--json", "out/fleet.json", *args])


def fleet_report(tmp_path: Path) -> dict:
    report = json.loads((tmp_path / "out" / "fleet.json").read_text())
    validate_fleet_report(report)
    return report


def validate_fleet_report(report: dict) -> None:
    import jsonschema
    from referencing import Registry, Resource

    schemas = {
        name: json.loads((SCHEMAS / name).read_text())
        for name in ("smoke-fleet-report.schema.json", "smoke-report.schema.json")
    }
    registry = Registry().with_resources((schema["$id"], Resource.from_contents(schema)) for schema in schemas.values())
    jsonschema.Draft202012Validator(schemas["smoke-fleet-report.schema.json"], registry=registry).validate(report)


def by_target(report: dict) -> dict:
    return {entry["target"]: entry for entry in report["targets"]}


def test_an_all_green_fleet_marks_every_target_verified_and_writes_nothing_else(tmp_path, clusters, capsys):
    eu, us = clusters("eu-west-1"), clusters("us-east-1")
    config = fleet_config(tmp_path, {"eu-west-1": eu.target(region="eu"), "us-east-1": us.target(region="us")})
    assert run_fleet(config) == 0
    out = capsys.readouterr().out
    assert "✓ all 2 targets passed" in out
    report = fleet_report(tmp_path)
    assert report["verdict"]["state"] == "passed" and report["exit_status"] == 0
    for cluster in (eu, us):
        assert deployment_patches(cluster.api) == []
        assert by_target(report)[cluster.name]["report"]["verdict"]["verified"] is True


def test_one_failing_target_is_rolled_back_alone(tmp_path, clusters, capsys):
    eu, us = clusters("eu-west-1", "ready-503"), clusters("us-east-1")
    config = fleet_config(tmp_path, {"eu-west-1": eu.target(), "us-east-1": us.target()})
    assert run_fleet(config) == 1
    assert "✗ 1 of 2 targets failed: eu-west-1 rolled back" in capsys.readouterr().out
    assert deployment_patches(eu.api) and deployment_patches(us.api) == []
    assert eu.api.images("prod", "django") == {"django": GOOD_IMAGE}
    statuses = {name: entry["status"] for name, entry in by_target(fleet_report(tmp_path)).items()}
    assert statuses == {"eu-west-1": "rolled_back", "us-east-1": "passed"}


def test_a_failing_canary_wave_stops_the_fleet_before_any_request_to_later_waves(tmp_path, clusters, capsys):
    canary, eu, us = clusters("canary", "ready-503"), clusters("eu-west-1"), clusters("us-east-1")
    config = fleet_config(
        tmp_path,
        {
            "canary": canary.target(tier="canary"),
            "eu-west-1": eu.target(tier="main"),
            "us-east-1": us.target(tier="main"),
        },
        waves=[{"select": "tier=canary"}, {"select": "tier=main"}],
    )
    assert run_fleet(config) == 1
    out = capsys.readouterr().out
    assert "✗ 1 of 3 targets failed: canary rolled back; wave 2 not started" in out
    assert "not started: wave 1 failed at canary" in out
    assert eu.service.requests == [] and us.service.requests == []
    report = fleet_report(tmp_path)
    assert [wave["status"] for wave in report["waves"]] == ["failed", "not_started"]


def test_failures_everywhere_roll_back_at_most_max_rollbacks_targets_and_hold_the_rest(tmp_path, clusters, capsys):
    names = ["a", "b", "c", "d"]
    # Three of four fail at once (the runner's network, say): the cap, not each verdict, decides.
    started = {name: clusters(name, *(["ready-503"] if name != "d" else [])) for name in names}
    config = fleet_config(tmp_path, {name: started[name].target() for name in names}, max_rollbacks=1)
    assert run_fleet(config) == 10
    out = capsys.readouterr().out
    assert "✗ 3 of 4 targets failed: a rolled back; b rollback held; c rollback held" in out
    assert (
        "ROLLBACK HELD: rollback held: more targets failed than max_rollbacks (1) allows; a shared cause is likely"
        " (a rolled back already)"
    ) in out
    written = [name for name in names if deployment_patches(started[name].api)]
    assert written == ["a"]


def test_parallel_targets_share_the_cap(tmp_path, clusters, capsys):
    names = ["a", "b", "c"]
    started = {name: clusters(name, "ready-503") for name in names}
    config = fleet_config(tmp_path, {name: started[name].target() for name in names}, max_rollbacks=1)
    assert run_fleet(config, "--parallel", "3") == 10
    written = [name for name in names if deployment_patches(started[name].api)]
    assert len(written) == 1  # whichever came due first; the other two are held
    statuses = sorted(entry["status"] for entry in fleet_report(tmp_path)["targets"])
    assert statuses == ["rollback_held", "rollback_held", "rolled_back"]
    assert all((tmp_path / "out" / f"{name}.log").exists() for name in names)


def test_a_cluster_that_forbids_writes_does_not_stop_another_targets_rollback(tmp_path, clusters, capsys):
    eu, us = clusters("eu-west-1", "ready-503"), clusters("us-east-1", "ready-503")
    # RBAC lets the run's dry-run preflight through; a policy denies the real change at rollback time.
    us.api.fail_patches["template"] = 403
    config = fleet_config(tmp_path, {"eu-west-1": eu.target(), "us-east-1": us.target()}, max_rollbacks=2)
    assert run_fleet(config) == 10
    assert "✗ 2 of 2 targets failed: eu-west-1 rolled back; us-east-1 ROLLBACK FAILED" in capsys.readouterr().out
    assert eu.api.images("prod", "django") == {"django": GOOD_IMAGE}
    assert us.api.images("prod", "django") == {"django": BAD_IMAGE}


def test_distributed_reports_merge_to_the_in_process_verdict(tmp_path, clusters, capsys, pytester, monkeypatch):
    eu, us = clusters("eu-west-1", "ready-503"), clusters("us-east-1")
    config = fleet_config(tmp_path, {"eu-west-1": eu.target(), "us-east-1": us.target()})
    assert run_fleet(config, "--run-id", "fleet-1") == 1
    in_process = fleet_report(tmp_path)
    eu.api.deploy("prod", "django", {"django": BAD_IMAGE})  # the same deploy, verified again elsewhere
    # One process per target, as a Job per cluster would run it.
    for name in ("eu-west-1", "us-east-1"):
        monkeypatch.setenv("SMOKE_FLEET_RUN_ID", "fleet-2")
        pytester.runpytest_subprocess(
            "--smoke-config", str(config), "--smoke-target", name, "--smoke-report", str(tmp_path / f"jobs/{name}.json")
        )
    capsys.readouterr()
    merged = main(
        ["merge", "--config", str(config), "--run-id", "fleet-2", "--json", "merged.json"]
        + [str(tmp_path / f"jobs/{name}.json") for name in ("eu-west-1", "us-east-1")]
        + [str(tmp_path / "out" / "eu-west-1.json")]  # the earlier run's report: another run id
    )
    assert merged == 1
    report = json.loads((tmp_path / "merged.json").read_text())
    validate_fleet_report(report)
    assert report["verdict"]["state"] == in_process["verdict"]["state"] == "critical"
    assert [(t["target"], t["status"]) for t in report["targets"]] == [
        (t["target"], t["status"]) for t in in_process["targets"]
    ]
    assert report["refused"] == [
        {
            "report": str(tmp_path / "out" / "eu-west-1.json"),
            "reason": "from another fleet run (run id 'fleet-1', expected 'fleet-2')",
        }
    ]


def test_merge_refuses_what_it_cannot_trust_and_waits_for_who_never_reported(tmp_path, clusters, capsys):
    eu, us = clusters("eu-west-1"), clusters("us-east-1")
    config = fleet_config(tmp_path, {"eu-west-1": eu.target(), "us-east-1": us.target()})
    assert run_fleet(config, "--smoke-target", "eu-*") == 0  # us-east-1 not selected: no request
    assert us.service.requests == []
    assert fleet_report(tmp_path)["verdict"]["state"] == "partial"
    good = json.loads((tmp_path / "out" / "eu-west-1.json").read_text())
    other_config = {**good, "fleet": {**good["fleet"], "config_digest": "sha256:" + "0" * 64}}
    (tmp_path / "other.json").write_text(json.dumps(other_config))
    older = {**good, "finished_at": "2000-01-01T00:00:00.000Z", "exit_status": 1}
    (tmp_path / "older.json").write_text(json.dumps(older))
    (tmp_path / "garbage.json").write_text("{not json")
    hostile = json.loads(json.dumps(good))
    hostile["checks"][0]["name"] = "readiness\x1b[31m | <b>x</b>"
    hostile["fleet"]["target"] = "ap-south-1\x1b]0;pwned\x07"
    (tmp_path / "hostile.json").write_text(json.dumps(hostile))
    capsys.readouterr()
    files = ["other.json", "older.json", str(tmp_path / "out" / "eu-west-1.json"), "garbage.json", "hostile.json"]
    status = main(["merge", "--config", str(config), "--markdown", "fleet.md", "--junit", "fleet.xml", *files])
    out = capsys.readouterr().out
    assert status == 12  # us-east-1 never reported
    assert "? 1 of 2 targets not verified: us-east-1 never reported" in out
    assert "Refused: other.json: from another config" in out
    assert "Refused: garbage.json: is not JSON" in out
    assert "Refused: hostile.json: names target 'ap-south-1\\x1b]0;pwned\\x07', which the fleet does not have" in out
    assert "\x1b" not in out and "\x07" not in out
    markdown = (tmp_path / "fleet.md").read_text()
    assert "<b>" not in markdown and "\x1b" not in markdown
    validate_junit(tmp_path / "fleet.xml", suites=["eu-west-1", "us-east-1"])


def validate_junit(path: Path, suites: list[str]) -> None:
    import junitparser
    import xmlschema

    xmlschema.XMLSchema(str(Path(__file__).parent / "data" / "junit-10.xsd")).validate(str(path))
    parsed = junitparser.JUnitXml.fromfile(str(path))
    assert [suite.name for suite in parsed] == suites
    names = [(case.classname, case.name) for suite in parsed for case in suite]
    assert len(names) == len(set(names))


def test_the_gate_opens_only_for_a_wave_that_passed(tmp_path, clusters, capsys):
    canary, main_target = clusters("canary"), clusters("main", "ready-503")
    config = fleet_config(
        tmp_path,
        {"canary": canary.target(tier="canary"), "main": main_target.target(tier="main")},
        waves=[{"select": "tier=canary"}, {"select": "tier=main"}],
    )
    assert run_fleet(config) == 1
    reports = [str(tmp_path / "out" / f"{name}.json") for name in ("canary", "main")]
    assert main(["gate", "--config", str(config), "--wave", "1", *reports]) == 0
    assert main(["gate", "--config", str(config), "--wave", "2", *reports]) == 1
    assert (
        "gate: wave 2 did not pass: main: ✗ CRITICAL: Smoke tests failed - Rollback completed"
        in capsys.readouterr().out
    )
    assert main(["gate", "--config", str(config), "--wave", "3", *reports]) == 4


def test_a_dependency_down_behind_several_targets_counts_once_across_the_fleet(tmp_path, clusters, capsys):
    names = ["a", "b", "c"]
    started = {name: clusters(name) for name in names}
    targets = {name: started[name].target() for name in names}
    for name in names:  # one database behind every target, down
        targets[name]["dependency_checks"] = [{"name": "orders-db", "type": "tcp", "host": "127.0.0.1", "port": 9}]
    config = fleet_config(tmp_path, targets, max_rollbacks=3)  # the cap is not what holds them
    assert run_fleet(config) == 10
    out = capsys.readouterr().out
    assert "✗ 3 of 3 targets failed: a rolled back; b rollback held; c rollback held" in out
    assert (
        "rollback held: tcp://127.0.0.1:9 failed in another target of the fleet too:"
        " one outage, counted once across the fleet"
    ) in out
    assert [name for name in names if deployment_patches(started[name].api)] == ["a"]
    report = by_target(fleet_report(tmp_path))
    dependency = next(check for check in report["b"]["report"]["checks"] if check["kind"] == "dependency")
    assert dependency["facts"]["address"] == "tcp://127.0.0.1:9"


def test_one_targets_secret_never_reaches_another_targets_output(tmp_path, clusters, capsys, monkeypatch):
    eu, us = clusters("eu-west-1", "ready-503"), clusters("us-east-1", "ready-503")
    monkeypatch.setenv("EU_TOKEN", "eu-secret-token-4417")
    monkeypatch.setenv("US_TOKEN", "us-secret-token-9923")
    targets = {"eu-west-1": eu.target(), "us-east-1": us.target()}
    targets["eu-west-1"]["headers"] = {"X-Token": "${EU_TOKEN}"}
    targets["us-east-1"]["headers"] = {"X-Token": "${US_TOKEN}"}
    config = fleet_config(tmp_path, targets, max_rollbacks=2)
    assert run_fleet(config, "--markdown", "out/fleet.md", "--junit", "out/fleet.xml") == 1
    shown = capsys.readouterr().out
    outputs = {path.name: path.read_text() for path in (tmp_path / "out").iterdir()}
    for text in [shown, *outputs.values()]:
        assert "eu-secret-token-4417" not in text and "us-secret-token-9923" not in text


def test_xdist_inside_each_target_gives_the_same_verdicts(tmp_path, clusters, capsys):
    eu, us = clusters("eu-west-1", "ready-503"), clusters("us-east-1")
    config = fleet_config(tmp_path, {"eu-west-1": eu.target(), "us-east-1": us.target()})
    assert run_fleet(config, "--", "-p", "xdist", "-n", "2") == 1
    statuses = {name: entry["status"] for name, entry in by_target(fleet_report(tmp_path)).items()}
    assert statuses == {"eu-west-1": "rolled_back", "us-east-1": "passed"}
    assert "✗ 1 of 2 targets failed: eu-west-1 rolled back" in capsys.readouterr().out


def test_two_fleet_runs_at_once_roll_each_deployment_back_at_most_once(tmp_path, clusters):
    import threading

    from pytest_smoke.config import load_fleet
    from pytest_smoke.fleet.orchestrate import FleetRun
    from pytest_smoke.fleet.orchestrate import run_fleet as run_targets

    eu, us = clusters("eu-west-1", "ready-503"), clusters("us-east-1", "ready-503")
    config = fleet_config(tmp_path, {"eu-west-1": eu.target(), "us-east-1": us.target()}, max_rollbacks=2)
    fleet = load_fleet(config)
    results = []

    def one(out: str) -> None:
        run = FleetRun(config=config, out=tmp_path / out, say=lambda line: None)
        results.append(run_targets(fleet, ["eu-west-1", "us-east-1"], run))

    runs = [threading.Thread(target=one, args=(f"out{i}",)) for i in (1, 2)]
    for thread in runs:
        thread.start()
    for thread in runs:
        thread.join(timeout=120)
    assert len(results) == 2
    for cluster in (eu, us):
        rollbacks = [p for p in deployment_patches(cluster.api) if "rejected" not in json.dumps(p[2])]
        assert len(rollbacks) == 1, rollbacks  # the lease: one run rolls back, the other stands down
        assert cluster.api.images("prod", "django") == {"django": GOOD_IMAGE}


def test_merge_keeps_a_rollback_decisive_and_refuses_what_does_not_belong(tmp_path, clusters, capsys, monkeypatch):
    eu, us = clusters("eu-west-1", "ready-503"), clusters("us-east-1")
    config = fleet_config(tmp_path, {"eu-west-1": eu.target(), "us-east-1": us.target()})
    assert run_fleet(config, "--run-id", "r1") == 1
    out = tmp_path / "out"
    rolled_back = json.loads((out / "eu-west-1.json").read_text())
    # A retried Job tests the rolled-back version and passes: it cannot make the target green.
    retry = {**rolled_back, "exit_status": 0, "rollback": None, "finished_at": "2999-01-01T00:00:00.000Z"}
    retry["verdict"] = {**rolled_back["verdict"], "state": "passed", "critical": 0, "verified": True}
    (tmp_path / "retry.json").write_text(json.dumps(retry))
    passed = json.loads((out / "us-east-1.json").read_text())
    (tmp_path / "staging.json").write_text(json.dumps({**passed, "environment": "staging"}))
    (tmp_path / "odd-exit.json").write_text(
        json.dumps({**passed, "exit_status": 7, "finished_at": "2999-01-01T00:00:00.000Z"})
    )
    (tmp_path / "old.json").write_text(json.dumps({k: v for k, v in passed.items() if k != "fleet"}))
    files = [str(out / "eu-west-1.json"), str(out / "us-east-1.json")]
    files += [str(tmp_path / name) for name in ("retry.json", "staging.json", "odd-exit.json", "old.json")]
    capsys.readouterr()
    monkeypatch.setenv("SMOKE_FLEET_RUN_ID", "r1")  # merge and gate read it, as run does
    assert main(["merge", "--config", str(config), "--json", "merged.json", *files]) == 1  # eu: critical
    text = capsys.readouterr().out
    report = by_target(json.loads((tmp_path / "merged.json").read_text()))
    assert report["eu-west-1"]["status"] == "rolled_back"  # not the later green attempt
    assert report["us-east-1"]["exit_status"] == 12  # an exit status merge does not know: no verdict
    assert "eu-west-1: 2 reports; the one that recorded a rollback" in text
    assert "staging.json: for environment 'staging', and this merge has no --smoke-env" in text
    assert "old.json: not a fleet target's report" in text
    monkeypatch.setenv("SMOKE_FLEET_RUN_ID", "another-run")
    assert main(["merge", "--config", str(config), *files[:2]]) == 12  # every report refused: never reported


def test_two_runs_sharing_an_output_directory_keep_their_own_caps(tmp_path, clusters):
    import threading

    from pytest_smoke.config import load_fleet
    from pytest_smoke.fleet.orchestrate import FleetRun
    from pytest_smoke.fleet.orchestrate import run_fleet as run_targets

    a, b, c = clusters("a", "ready-503"), clusters("b", "ready-503"), clusters("c")
    config = fleet_config(tmp_path, {name: cl.target() for name, cl in zip("abc", (a, b, c))}, max_rollbacks=1)
    fleet = load_fleet(config)

    def one(names: list[str]) -> None:
        run_targets(fleet, names, FleetRun(config=config, out=tmp_path / "shared", say=lambda line: None))

    runs = [threading.Thread(target=one, args=(names,)) for names in (["a", "b"], ["c"])]
    for thread in runs:
        thread.start()
    for thread in runs:
        thread.join(timeout=120)
    assert len([cl for cl in (a, b) if deployment_patches(cl.api)]) == 1  # the first run's cap held
    assert len(list((tmp_path / "shared").glob("rollback-ledger-*.json"))) == 2


# -- a fleet session: one pytest command, every target's items, a process per target ------------------


@pytest.fixture
def in_pytester_dir(clusters, pytester, monkeypatch):
    """A fleet session runs where pytester writes its files (clusters moved to tmp_path)."""
    monkeypatch.chdir(pytester.path)


CUSTOM_TESTS = """
import pytest

@pytest.mark.smoke_required
def test_home(smoke_http):
    smoke_http.expect(smoke_http.get("/health/ready"), status=200)

def test_no_fixture():
    assert True
"""


def session_outcomes(result) -> dict[str, str]:
    """Node id -> outcome of every test the session replayed, from its own terminal lines (-rA)."""
    found = {}
    for line in result.outlines:
        for word in ("PASSED", "FAILED", "ERROR", "SKIPPED"):
            if line.startswith(word + " "):
                found[line.split(" ")[1]] = word
    return found


def test_a_fleet_session_collects_every_target_and_gives_the_fleet_verdict(clusters, pytester, in_pytester_dir):
    eu, us, ap = clusters("eu-west-1"), clusters("us-east-1", "ready-503"), clusters("ap-south-1")
    config = fleet_config(
        pytester.path, {"eu-west-1": eu.target(), "us-east-1": us.target(), "ap-south-1": ap.target()}, max_rollbacks=1
    )
    pytester.makepyfile(test_mine=CUSTOM_TESTS)
    result = pytester.runpytest(
        "--smoke-config",
        str(config),
        "--smoke-report",
        "fleet.json",
        "--junitxml",
        "pytest.xml",
        "-rA",
        "-p",
        "no:randomly",
    )
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*smoke fleet verdict*", "✗ 1 of 3 targets failed: us-east-1 rolled back"])
    outcomes = session_outcomes(result)
    assert outcomes["fleet.yaml::us-east-1::health[readiness]"] == "FAILED"
    assert outcomes["test_mine.py::test_home[us-east-1]"] == "FAILED"
    assert (
        outcomes["fleet.yaml::eu-west-1::health[readiness]"]
        == outcomes["test_mine.py::test_home[ap-south-1]"]
        == "PASSED"
    )
    # Each target is exactly its own run: only the failing one's Deployment is written.
    assert deployment_patches(us.api) and not deployment_patches(eu.api) and not deployment_patches(ap.api)
    report = json.loads((pytester.path / "fleet.json").read_text())
    validate_fleet_report(report)
    assert {t["target"]: t["status"] for t in report["targets"]} == {
        "eu-west-1": "passed",
        "us-east-1": "rolled_back",
        "ap-south-1": "passed",
    }
    # pytest's own JUnit file saw every target's items, replayed as they ran.
    import junitparser

    cases = {case.name for suite in junitparser.JUnitXml.fromfile(str(pytester.path / "pytest.xml")) for case in suite}
    assert {"health[readiness]", "test_home[eu-west-1]", "test_home[us-east-1]", "test_home[ap-south-1]"} <= cases


def two_targets_with_custom_tests(clusters, pytester) -> tuple[Cluster, Cluster, Path]:
    eu, us = clusters("eu-west-1"), clusters("us-east-1")
    config = fleet_config(pytester.path, {"eu-west-1": eu.target(), "us-east-1": us.target()})
    pytester.makepyfile(test_mine=CUSTOM_TESTS)
    return eu, us, config


def test_k_and_node_ids_select_across_the_fleet_and_the_rest_get_no_request(clusters, pytester, in_pytester_dir):
    eu, us, config = two_targets_with_custom_tests(clusters, pytester)
    result = pytester.runpytest("--smoke-config", str(config), "-k", "eu-west-1", "--smoke-report", "fleet.json")
    assert result.ret == 0
    assert us.service.requests == [] and eu.service.requests
    report = json.loads((pytester.path / "fleet.json").read_text())
    assert report["verdict"]["state"] == "partial"  # us-east-1 was not selected: the fleet is not verified
    assert {t["target"]: t["status"] for t in report["targets"]} == {"eu-west-1": "passed", "us-east-1": "not_selected"}
    eu.service.requests.clear()
    # Node ids name checks of targets: each target runs only what was named, in its own process.
    eu.service.requests.clear()
    result = pytester.runpytest(
        "--smoke-config",
        str(config),
        f"{config}::eu-west-1::health[readiness]",
        f"{config}::us-east-1",
        "-rA",
    )
    assert result.ret == 0
    assert eu.service.requests == [("GET", "/health/ready")] and us.service.requests == [("GET", "/health/ready")]
    assert set(session_outcomes(result)) == {
        "fleet.yaml::eu-west-1::health[readiness]",
        "fleet.yaml::us-east-1::health[readiness]",
    }


def test_lf_reruns_what_failed_anywhere_in_the_fleet_and_only_that(clusters, pytester, in_pytester_dir):
    eu, us = clusters("eu-west-1"), clusters("us-east-1", "ready-503")
    config = fleet_config(pytester.path, {"eu-west-1": eu.target(), "us-east-1": us.target()})
    config.write_text(config.read_text().replace("enabled: true", "enabled: false"))  # no rollback: rerun the same
    pytester.makepyfile(test_mine=CUSTOM_TESTS)
    assert pytester.runpytest("--smoke-config", str(config)).ret == 1
    eu.service.requests.clear()
    us.service.requests.clear()
    result = pytester.runpytest("--smoke-config", str(config), "--lf", "-rA", "--smoke-report", "fleet.json")
    assert result.ret == 1
    assert eu.service.requests == []  # nothing failed there
    assert set(session_outcomes(result)) == {
        "fleet.yaml::us-east-1::health[readiness]",
        "test_mine.py::test_home[us-east-1]",
    }
    entries = {t["target"]: t for t in json.loads((pytester.path / "fleet.json").read_text())["targets"]}
    assert entries["eu-west-1"]["status"] == "not_selected"


def test_a_session_with_waves_stops_at_a_failing_canary(clusters, pytester, in_pytester_dir):
    canary, eu = clusters("canary", "ready-503"), clusters("eu-west-1")
    config = fleet_config(
        pytester.path,
        {"canary": canary.target(tier="canary"), "eu-west-1": eu.target(tier="main")},
        waves=[{"select": "tier=canary"}, {"select": "tier=main"}],
    )
    result = pytester.runpytest("--smoke-config", str(config))
    assert result.ret == 1
    result.stdout.fnmatch_lines(["✗ 1 of 2 targets failed: canary rolled back; wave 2 not started"])
    assert eu.service.requests == []
    assert deployment_patches(canary.api) and not deployment_patches(eu.api)


def test_a_session_passes_n_to_each_target_and_keeps_secrets_per_target(
    clusters, pytester, monkeypatch, in_pytester_dir
):
    eu, us = clusters("eu-west-1", "ready-503"), clusters("us-east-1")
    monkeypatch.setenv("EU_TOKEN", "eu-secret-token-4417")
    monkeypatch.setenv("US_TOKEN", "us-secret-token-9923")
    targets = {"eu-west-1": eu.target(), "us-east-1": us.target()}
    targets["eu-west-1"]["headers"] = {"X-Token": "${EU_TOKEN}"}
    targets["us-east-1"]["headers"] = {"X-Token": "${US_TOKEN}"}
    config = fleet_config(pytester.path, targets)
    # A failing test whose locals (-l) and assertion show the target's config, headers included.
    pytester.makepyfile(
        test_mine=CUSTOM_TESTS + "\n\ndef test_headers(smoke_config):\n    assert smoke_config['headers'] == {}\n"
    )
    result = pytester.runpytest(
        "--smoke-config",
        str(config),
        "-p",
        "xdist",
        "-n",
        "2",
        "-vv",
        "-l",
        "--smoke-report",
        "fleet.json",
        "--smoke-markdown",
        "fleet.md",
        "--smoke-junit",
        "fleet.xml",
    )
    assert result.ret == 1
    result.stdout.fnmatch_lines(["✗ 1 of 2 targets failed: eu-west-1 rolled back"])
    assert "created: 2/2 workers" in (pytester.path / "smoke-fleet" / "eu-west-1.log").read_text()
    written = [pytester.path / name for name in ("fleet.json", "fleet.md", "fleet.xml")]
    written += [path for path in (pytester.path / "smoke-fleet").rglob("*") if path.is_file()]
    for text in [result.stdout.str(), result.stderr.str(), *(path.read_text() for path in written)]:
        assert "eu-secret-token-4417" not in text and "us-secret-token-9923" not in text
    validate_junit(pytester.path / "fleet.xml", suites=["eu-west-1", "us-east-1"])


def test_a_bad_target_stops_the_session_before_any_request(clusters, pytester, monkeypatch, in_pytester_dir):
    eu, us = clusters("eu-west-1"), clusters("us-east-1")
    monkeypatch.delenv("US_TOKEN", raising=False)
    targets = {"eu-west-1": eu.target(), "us-east-1": {**us.target(), "headers": {"X-Token": "${US_TOKEN}"}}}
    config = fleet_config(pytester.path, targets)
    result = pytester.runpytest("--smoke-config", str(config))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*fleet.yaml*fleet.targets.us-east-1.headers*US_TOKEN*"])
    assert eu.service.requests == [] and us.service.requests == []


# -- runs on different machines share the cap through a ConfigMap ledger ------------------------------


@pytest.fixture
def ledger_cluster(tmp_path):
    """The cluster every target run reaches (a management cluster), holding the fleet's ledger."""
    api = KubeDouble().start()
    yield api, api.write_kubeconfig(tmp_path / "kubeconfig-ledger")
    api.stop()


def run_jobs(config: Path, names: list[str], run_id: str | None, *args: str) -> dict[str, int]:
    """One pytest process per target, all at once, as Jobs in their own clusters would run."""
    import os
    import subprocess
    import sys

    environ = {key: value for key, value in os.environ.items() if key != "SMOKE_FLEET_RUN_ID"}
    if run_id:
        environ["SMOKE_FLEET_RUN_ID"] = run_id
    jobs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "pytest", "--smoke-config", str(config), "--smoke-target", name]
            + ["--smoke-report", f"jobs/{name}.json", "-p", "no:cacheprovider", *args],
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for name in names
    }
    codes = {}
    for name, job in jobs.items():
        output, _ = job.communicate(timeout=120)
        codes[name] = job.returncode
        (config.parent / f"{name}.out").write_bytes(output)
    return codes


def test_jobs_on_different_machines_share_the_cap_through_a_configmap_ledger(tmp_path, clusters, ledger_cluster):
    api, kubeconfig = ledger_cluster
    names = ["a", "b", "c"]
    started = {name: clusters(name, "ready-503") for name in names}  # every target fails at once
    config = fleet_config(
        tmp_path,
        {name: started[name].target() for name in names},
        max_rollbacks=1,
        ledger={"kubeconfig": str(kubeconfig), "namespace": "smoke-fleet", "cluster_uid": api.kube_system["uid"]},
    )
    codes = run_jobs(config, names, "deploy-42")
    written = [name for name in names if deployment_patches(started[name].api)]
    assert len(written) == 1, codes  # three processes raced for one slot: the API server's concurrency held
    assert sorted(codes.values()) == [1, 10, 10]
    held = [name for name in names if codes[name] == 10]
    assert "more targets failed than max_rollbacks (1) allows" in (tmp_path / f"{held[0]}.out").read_text()
    stored = api.config_maps[("smoke-fleet", "smoke-fleet-ledger-deploy-42")]
    assert json.loads(stored["data"]["ledger.json"])["rolled_back"] == written
    reports = [str(tmp_path / "jobs" / f"{name}.json") for name in names]
    assert main(["merge", "--config", str(config), "--run-id", "deploy-42", *reports]) == 10


def test_a_ledger_the_run_cannot_use_stops_it_before_any_request(tmp_path, clusters, ledger_cluster):
    api, kubeconfig = ledger_cluster
    eu = clusters("eu-west-1", "ready-503")
    ledger = {"kubeconfig": str(kubeconfig), "namespace": "smoke-fleet", "cluster_uid": api.kube_system["uid"]}
    config = fleet_config(tmp_path, {"eu-west-1": eu.target()}, ledger=ledger)
    assert run_jobs(config, ["eu-west-1"], None) == {"eu-west-1": 4}  # no run id: which ledger?
    assert "fleet.ledger: SMOKE_FLEET_RUN_ID is not set" in (tmp_path / "eu-west-1.out").read_text()
    # A dry run, or a run with the rollback off, changes nothing anywhere: the ledger included.
    assert run_jobs(config, ["eu-west-1"], None, "--smoke-no-rollback") == {"eu-west-1": 1}
    assert api.config_maps == {} and not deployment_patches(eu.api)
    eu.service.requests.clear()
    # Credentials that reach another cluster than the ledger's: refused before any request.
    config = fleet_config(tmp_path, {"eu-west-1": eu.target()}, ledger={**ledger, "cluster_uid": str(uuid.uuid4())})
    assert run_jobs(config, ["eu-west-1"], "deploy-43") == {"eu-west-1": 4}
    assert "not fleet.ledger.cluster_uid" in (tmp_path / "eu-west-1.out").read_text()
    config = fleet_config(tmp_path, {"eu-west-1": eu.target()}, ledger=ledger)
    api.forbidden = True  # RBAC lets the run read the ledger, not write it
    assert run_jobs(config, ["eu-west-1"], "deploy-43") == {"eu-west-1": 4}
    assert "fleet.ledger (namespace smoke-fleet):" in (tmp_path / "eu-west-1.out").read_text()
    assert eu.service.requests == [] and not deployment_patches(eu.api)


def test_a_session_refuses_a_fleet_run_id_used_before(clusters, pytester, in_pytester_dir, monkeypatch):
    eu, us = clusters("eu-west-1"), clusters("us-east-1")
    config = fleet_config(pytester.path, {"eu-west-1": eu.target(), "us-east-1": us.target()})
    monkeypatch.setenv("SMOKE_FLEET_RUN_ID", "deploy-7")
    assert pytester.runpytest("--smoke-config", str(config)).ret == 0
    eu.service.requests.clear()
    result = pytester.runpytest("--smoke-config", str(config))
    assert result.ret == pytest.ExitCode.USAGE_ERROR  # a second run would start with a fresh cap
    result.stderr.fnmatch_lines(["*a fleet run id is used once (SMOKE_FLEET_RUN_ID); no target was started*"])
    assert eu.service.requests == []


def test_what_a_session_leaves_out_keeps_each_target_partial(clusters, pytester, in_pytester_dir):
    eu, us, config = two_targets_with_custom_tests(clusters, pytester)
    result = pytester.runpytest("--smoke-config", str(config), "-k", "not test_home", "--smoke-report", "fleet.json")
    assert result.ret == 0
    report = json.loads((pytester.path / "fleet.json").read_text())
    assert report["verdict"]["state"] == "partial"  # a required test of each target was deselected
    for entry in report["targets"]:
        assert entry["report"]["verdict"]["verified"] is False
        left_out = [c for c in entry["report"]["checks"] if c["status"] == "not_selected"]
        assert [c["name"] for c in left_out] == [f"test_home[{entry['target']}]"]
    assert not any(p[0] == "deployments" and "verified" in json.dumps(p[2]) for p in eu.api.patches)
    # A collection error starts no target, --continue-on-collection-errors or not: no verdict.
    pytester.makepyfile(test_broken="import no_such_module\n")
    eu.service.requests.clear()
    result = pytester.runpytest("--smoke-config", str(config), "--continue-on-collection-errors")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert eu.service.requests == []


def test_a_session_that_ends_early_or_cannot_write_still_says_so(clusters, pytester, in_pytester_dir):
    eu, us = clusters("eu-west-1"), clusters("us-east-1")
    config = fleet_config(pytester.path, {"eu-west-1": eu.target(), "us-east-1": us.target()})
    (pytester.path / "a-file").write_text("")
    # An output that cannot be written: the verdict and its exit status stand. (--dist without -n
    # distributes nothing, here as in each target.)
    result = pytester.runpytest("--smoke-config", str(config), "--smoke-junit", "a-file/fleet.xml", "--dist", "load")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["✓ all 2 targets passed", "Warning: could not write a-file/fleet.xml*"])
    # A green report, then a run that ends before any target: the report says so, never the old verdict.
    assert pytester.runpytest("--smoke-config", str(config), "--smoke-report", "fleet.json").ret == 0
    pytester.makepyfile(test_broken="import no_such_module\n")
    result = pytester.runpytest("--smoke-config", str(config), "--smoke-report", "fleet.json")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    report = json.loads((pytester.path / "fleet.json").read_text())
    validate_fleet_report(report)
    assert report["exit_status"] == 2 and report["verdict"]["state"] == "inconclusive"
    assert "no fleet verdict: 1 error(s) during collection: no target was started" in report["notes"]


def test_a_session_replays_skips_and_honours_run_modes(clusters, pytester, in_pytester_dir):
    eu, us = clusters("eu-west-1", "ready-503"), clusters("us-east-1")
    config = fleet_config(pytester.path, {"eu-west-1": eu.target(), "us-east-1": us.target()})
    pytester.makepyfile(test_mine="import pytest\n\n@pytest.mark.skip(reason='later')\ndef test_later():\n    pass\n")
    # A skip crosses from a target as pytest's own (path, line, reason), for -v and --junitxml alike.
    result = pytester.runpytest("--smoke-config", str(config), "-v", "--junitxml", "pytest.xml", "-W", "error")
    assert result.ret == 1  # eu-west-1 is critical: the fleet's verdict, no INTERNALERROR
    result.stdout.fnmatch_lines(["*test_mine.py::test_later[[]us-east-1[]] SKIPPED (later)*"])
    assert "INTERNALERROR" not in result.stdout.str()
    eu.service.requests.clear()
    rolled_back = len(deployment_patches(eu.api))
    # --setup-plan runs nothing, in each target as in a one-target run: no request, no rollback.
    pytester.runpytest("--smoke-config", str(config), "--setup-plan")
    assert eu.service.requests == [] and len(deployment_patches(eu.api)) == rolled_back
    (pytester.path / "a-file").write_text("")
    result = pytester.runpytest("--smoke-config", str(config), "--smoke-fleet-out", "a-file/sub")
    assert result.ret == pytest.ExitCode.USAGE_ERROR and eu.service.requests == []
    # A value that starts with "-" reaches each target whole: eu-west-1's due rollback is held.
    result = pytester.runpytest("--smoke-config", str(config), "--smoke-hold-rollback=-frozen by ops", "-n", "0")
    assert result.ret == 10
    result.stdout.fnmatch_lines(["*eu-west-1*rollback held*"])


def test_sigterm_to_a_session_reaches_its_targets_before_any_rollback(clusters, pytester, in_pytester_dir):
    import signal
    import time

    a, b = clusters("a", "ready-503"), clusters("b", "ready-503")
    config = fleet_config(pytester.path, {"a": a.target(), "b": b.target()})
    pytester.makepyfile(test_slow="import time\n\ndef test_slow():\n    time.sleep(6)\n")
    session = subprocess.Popen(
        [sys.executable, "-m", "pytest", "--smoke-config", str(config), "--smoke-report", "fleet.json"],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while not a.service.requests and time.monotonic() < deadline:  # target a is checking
        time.sleep(0.1)
    time.sleep(0.5)
    session.send_signal(signal.SIGTERM)
    output, _ = session.communicate(timeout=60)
    assert session.returncode == pytest.ExitCode.INTERRUPTED, output.decode()
    assert not deployment_patches(a.api) and b.service.requests == []  # a stood down, b never started
    report = json.loads((pytester.path / "fleet.json").read_text())
    assert report["exit_status"] == 2 and any(note.startswith("no fleet verdict") for note in report["notes"])


def test_a_one_target_run_of_a_fleet_config_stays_green_under_warnings_as_errors(clusters, pytester, in_pytester_dir):
    eu = clusters("eu-west-1")
    config = fleet_config(pytester.path, {"eu-west-1": eu.target(), "us-east-1": eu.target()})
    pytester.makepyfile(test_mine="class TestShop:\n    def test_home(self, smoke_http):\n        pass\n")
    result = pytester.runpytest("--smoke-config", str(config), "--smoke-target", "eu-west-1", "-W", "error", "-rA")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["PASSED test_mine.py::TestShop::test_home[[]eu-west-1[]]"])
