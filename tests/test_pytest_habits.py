"""pytest habits keep working on a smoke run: node ids, --lf/--ff/--sw, -k, the re-run line, the
order of checks, custom-test fixtures, other plugins, and JUnit as CI systems read it. Every test
runs a real pytest in a subprocess against a real local service."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import health

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "example_suites" / "demo"))
from demo_service import DemoService  # noqa: E402

XSD = Path(__file__).parent / "data" / "junit-10.xsd"
EXIT_CRITICAL = 1


@pytest.fixture
def failing_demo():
    """The demo service with readiness answering 503."""
    service = DemoService(faults={"ready-503"}).start()
    yield service
    service.stop()


def three_checks(service: DemoService) -> dict:
    return {
        "base_url": service.url,
        "health_checks": [
            health("basic-health", "/health"),
            health("readiness", "/health/ready"),
            health("liveness", "/health/live", required=False),
        ],
        "dependency_checks": [
            {
                "name": "auth",
                "type": "http",
                "url": f"{service.url}/api/auth/login",
                "method": "POST",
                "payload": {"email": "test@example.com", "password": "test"},
                "timeout_seconds": 5,
            }
        ],
    }


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("--smoke-config", "smoke.json", *args)


def outcomes_of(result: pytest.RunResult) -> dict[str, str]:
    """node id -> PASSED/FAILED/SKIPPED from a -rA summary."""
    found = {}
    for line in result.outlines:
        match = re.match(r"^(PASSED|FAILED|SKIPPED|ERROR) (\S+)", line)
        if match:
            found[match.group(2)] = match.group(1)
    return found


# -- selection and re-runs ---------------------------------------------------------------------------


def test_a_failed_node_id_passed_back_reruns_exactly_that_check(pytester, write_config, failing_demo):
    write_config(three_checks(failing_demo))
    pytester.makepyfile(
        test_x="import pytest\n@pytest.mark.smoke_optional\ndef test_a():\n    pass\ndef test_b():\n    pass\n"
    )
    first = run(pytester, "-rA")
    assert first.ret == EXIT_CRITICAL
    failed = [nodeid for nodeid, word in outcomes_of(first).items() if word == "FAILED"]
    assert failed == ["smoke.json::health[readiness]"]

    again = run(pytester, "-rA", failed[0])
    assert outcomes_of(again) == {"smoke.json::health[readiness]": "FAILED"}
    assert again.ret == EXIT_CRITICAL
    # Next to a test file: exactly the two named, not every check.
    both = run(pytester, "-rA", failed[0], "test_x.py::test_a")
    assert outcomes_of(both) == {"smoke.json::health[readiness]": "FAILED", "test_x.py::test_a": "PASSED"}


def test_a_plain_run_with_a_test_folder_still_gets_every_check(pytester, write_config, demo):
    write_config(three_checks(demo))
    pytester.makepyfile(test_x="def test_a():\n    pass\n")
    result = run(pytester, "-rA", "test_x.py")
    assert set(outcomes_of(result)) == {
        "smoke.json::health[basic-health]",
        "smoke.json::health[readiness]",
        "smoke.json::health[liveness]",
        "smoke.json::dependency[auth]",
        "test_x.py::test_a",
    }
    assert result.ret == 0


def test_last_failed_and_failed_first_rerun_the_failed_check(pytester, write_config, failing_demo):
    write_config(three_checks(failing_demo))
    assert run(pytester, "-rA").ret == EXIT_CRITICAL
    last_failed = run(pytester, "-rA", "--lf")
    assert outcomes_of(last_failed) == {"smoke.json::health[readiness]": "FAILED"}
    assert "run-last-failure: rerun previous 1 failure" in last_failed.stdout.str()
    failed_first = run(pytester, "-v", "--ff")
    ran = [line.split(" ")[0] for line in failed_first.outlines if line.startswith("smoke.json::")]
    assert ran[0] == "smoke.json::health[readiness]" and len(ran) == 4


def test_stepwise_stops_at_the_failure_and_resumes_there(pytester, write_config, failing_demo):
    write_config(three_checks(failing_demo))
    first = run(pytester, "-rA", "--sw", "--smoke-concurrency", "1")
    assert outcomes_of(first) == {
        "smoke.json::health[basic-health]": "PASSED",
        "smoke.json::health[readiness]": "FAILED",
    }
    failing_demo.faults.clear()
    resumed = run(pytester, "-rA", "--sw", "--smoke-concurrency", "1")
    assert "smoke.json::health[basic-health]" not in outcomes_of(resumed)
    assert outcomes_of(resumed)["smoke.json::health[readiness]"] == "PASSED"


def test_k_matches_what_a_user_sees_and_nothing_internal(pytester, write_config, demo):
    write_config(three_checks(demo))
    for internal in ("facts", "pytestmark", "smoke_check", "generated_check"):
        result = run(pytester, "-rA", "-k", internal)
        assert outcomes_of(result) == {}, internal
    assert set(outcomes_of(run(pytester, "-rA", "-k", "readiness"))) == {"smoke.json::health[readiness]"}
    assert set(outcomes_of(run(pytester, "-rA", "-k", "dependency"))) == {"smoke.json::dependency[auth]"}
    assert set(outcomes_of(run(pytester, "-rA", "-m", "smoke_optional"))) == {"smoke.json::health[liveness]"}


def rerun_line(result: pytest.RunResult) -> str:
    lines = [line for line in result.outlines if line.startswith("Re-run: ")]
    assert len(lines) == 1, result.outlines
    return lines[0].removeprefix("Re-run: ")


def test_the_rerun_line_reproduces_the_run_dry_run_included(pytester, write_config, failing_demo, kube):
    doc = three_checks(failing_demo)
    doc["auto_rollback"] = {"enabled": True, "critical_failure_threshold": 1, "requires_ops_confirmation": False}
    doc["rollback_strategy"] = {
        "type": "previous-image",
        "deployment": "django",
        "namespace": "prod",
        "kubeconfig": str(kube.kubeconfig),
    }
    write_config(doc)
    pytester.makepyfile(test_x="def test_a():\n    pass\n")
    first = run(pytester, "--smoke-no-rollback", "test_x.py")
    line = rerun_line(first)
    assert "--smoke-no-rollback" in shlex.split(line) and "test_x.py" in shlex.split(line)
    # Pasted into a shell in the same folder, it runs the same checks and still changes nothing.
    pasted = subprocess.run(
        line.replace("pytest", f"{shlex.quote(sys.executable)} -m pytest", 1),
        shell=True,
        cwd=pytester.path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert pasted.returncode == first.ret == EXIT_CRITICAL
    assert "Rollback dry run" in pasted.stdout
    assert [p for p in kube.patches if p[0] == "deployments" and "rollback-lease" not in json.dumps(p[2])] == []


def test_the_demos_own_rerun_line_runs_the_demo(pytester):
    root = Path(__file__).resolve().parents[1]
    command = [
        "--smoke-config",
        "example_suites/demo/smoke-test-hook.json",
        "example_suites/demo",
        "-p",
        "no:cacheprovider",
    ]
    first = subprocess.run(
        [sys.executable, "-m", "pytest", *command], cwd=root, capture_output=True, text=True, timeout=300
    )
    assert first.returncode == 0, first.stdout[-2000:]
    line = next(line for line in first.stdout.splitlines() if line.startswith("Re-run: ")).removeprefix("Re-run: ")
    args = shlex.split(line)
    assert args[0] == "pytest"
    again = subprocess.run(
        [sys.executable, "-m", "pytest", *args[1:]], cwd=root, capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0, again.stdout[-2000:]
    assert "✓ Smoke tests passed" in again.stdout


@pytest.mark.child_plugins("randomly", "pytest_jsonreport")
def test_with_pytest_randomly_checks_still_run_first_in_config_order(pytester, write_config, failing_demo):
    pytest.importorskip("pytest_randomly")
    doc = three_checks(failing_demo)
    doc["health_checks"].append(health("second-failure", "/nope"))
    write_config(doc)
    pytester.makepyfile(**{f"test_{n}": "def test_it():\n    pass\n" for n in "abcdef"})
    for seed in ("1", "2", "3"):
        result = run(pytester, "-v", "-p", "randomly", f"--randomly-seed={seed}")
        ran = [line.split(" ")[0] for line in result.outlines if re.match(r"^\S+::\S+ (PASSED|FAILED)", line)]
        checks = [nodeid for nodeid in ran if nodeid.startswith("smoke.json::")]
        assert checks == [
            "smoke.json::health[basic-health]",
            "smoke.json::health[readiness]",
            "smoke.json::health[liveness]",
            "smoke.json::health[second-failure]",
            "smoke.json::dependency[auth]",
        ], (seed, ran)
        assert ran[: len(checks)] == checks and len(ran) == len(checks) + 6, (seed, ran)
        text = result.stdout.str()
        # The numbered verdict follows the config, whatever the run order.
        assert text.index("1. Health Check: readiness") < text.index("2. Health Check: second-failure")


# -- custom smoke tests ----------------------------------------------------------------------------------

CUSTOM_TESTS = """
import pytest

@pytest.mark.smoke_required
def test_sees_the_resolved_environment(smoke_base_url, smoke_http, smoke_config, smoke_dependencies):
    assert smoke_base_url == smoke_config["base_url"]
    reply = smoke_http.get("/health/ready")
    smoke_http.expect(reply, status=200)
    assert reply.request.headers["X-Team"] == "payments"
    assert smoke_dependencies["auth"]["url"].startswith(smoke_base_url)
    with pytest.raises(TypeError):
        smoke_config["base_url"] = "elsewhere"
    print("BASE", smoke_base_url)
"""


def test_custom_tests_get_the_resolved_base_url_and_a_bound_session(pytester, write_config, demo):
    other = DemoService(faults={"ready-503"}).start()  # prod is broken: staging is what this run checks
    try:
        doc = three_checks(other)
        doc["headers"] = {"X-Team": "payments"}
        doc["environments"] = {
            "staging": {
                "base_url": demo.url,
                "dependency_checks": [
                    {
                        "name": "auth",
                        "type": "http",
                        "url": f"{demo.url}/api/auth/login",
                        "method": "POST",
                        "payload": {"email": "test@example.com", "password": "test"},
                    }
                ],
            }
        }
        write_config(doc)
        pytester.makepyfile(test_custom=CUSTOM_TESTS)
        result = run(pytester, "-rA", "-s", "--smoke-env", "staging")
        assert result.ret == 0, result.stdout.str()
        assert f"BASE {demo.url}" in result.stdout.str()
        assert outcomes_of(result)["test_custom.py::test_sees_the_resolved_environment"] == "PASSED"
    finally:
        other.stop()


def test_a_service_failure_in_a_fixture_is_a_critical_failure_not_an_execution_error(
    pytester, write_config, failing_demo
):
    write_config(
        {
            "base_url": failing_demo.url,
            "headers": {"Authorization": "Bearer tok-Secret-551"},
            "health_checks": [health("basic-health", "/health")],
        }
    )
    pytester.makepyfile(
        test_custom="""
import pytest

@pytest.fixture
def ready(smoke_http):
    smoke_http.expect(smoke_http.get("/health/ready"), status=200)

@pytest.fixture
def broken_fixture():
    raise KeyError("a bug in the test code")

@pytest.mark.smoke_required
def test_needs_readiness(ready):
    pass

@pytest.mark.smoke_optional
def test_with_a_buggy_fixture(broken_fixture):
    pass
"""
    )
    result = run(pytester, "--smoke-report", "report.json")
    text = result.stdout.str()
    assert result.ret == EXIT_CRITICAL, text
    assert "1. Smoke Test: test_needs_readiness: " in text and "/health/ready returned 503 (expected 200)" in text
    report = json.loads((pytester.path / "report.json").read_text())
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses["test_needs_readiness"] == "failed"
    assert statuses["test_with_a_buggy_fixture"] == "not_evaluated"
    assert "tok-Secret-551" not in text


def test_a_refused_connection_through_smoke_http_reads_like_a_check_failure(pytester, write_config, demo):
    from servers import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    write_config({"base_url": dead, "health_checks": [health("basic-health", "/health", required=False)]})
    pytester.makepyfile(
        test_custom="""
import pytest

@pytest.mark.smoke_required
def test_login(smoke_http):
    smoke_http.post("/api/auth/login", json={"email": "a@b.c", "password": "pw-Secret-77"})
"""
    )
    result = run(pytester, "-rA")
    text = result.stdout.str()
    assert result.ret == EXIT_CRITICAL
    assert f"1. Smoke Test: test_login: connection refused at {dead.removeprefix('http://')}" in text
    assert "reproduce: curl -sS -X POST" in text and "pw-Secret-77" not in text


def test_without_a_smoke_config_the_fixtures_skip(pytester):
    pytester.makepyfile("def test_it(smoke_http):\n    pass\n")
    result = pytester.runpytest_subprocess("-rs")
    result.assert_outcomes(skipped=1)
    assert "needs a smoke config" in result.stdout.str()


# -- other plugins ---------------------------------------------------------------------------------------


def test_without_pytest_timeout_strict_markers_and_warnings_as_errors_run(pytester, write_config, demo):
    write_config(three_checks(demo))
    result = run(pytester, "-p", "no:timeout", "-p", "no:benchmark", "--strict-markers", "-W", "error")
    assert result.ret == 0, result.stdout.str()
    assert "✓ Smoke tests passed" in result.stdout.str()


@pytest.mark.child_plugins("pytest_jsonreport")
def test_json_report_reads_the_final_exit_status(pytester, write_config, demo, failing_demo):
    pytest.importorskip("pytest_jsonreport")
    doc = three_checks(demo)
    doc["health_checks"][2]["endpoint"] = "/nope"  # optional: a warnings-only run, exit 0
    write_config(doc)
    result = run(pytester, "--json-report", "--json-report-file=jr.json")
    assert result.ret == 0
    assert json.loads((pytester.path / "jr.json").read_text())["exitcode"] == 0
    write_config(three_checks(failing_demo))
    result = run(pytester, "--json-report", "--json-report-file=jr.json")
    assert result.ret == EXIT_CRITICAL
    assert json.loads((pytester.path / "jr.json").read_text())["exitcode"] == EXIT_CRITICAL


@pytest.mark.child_plugins("sugar")
def test_sugar_shows_the_line_of_the_failed_check_in_the_config(pytester, write_config, failing_demo):
    pytest.importorskip("pytest_sugar")
    path = write_config(three_checks(failing_demo))
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if '"readiness"' in text)
    result = run(pytester, "--force-sugar")
    assert re.search(rf"smoke\.json\S*:{line - 1}\b|smoke\.json\S*:{line}\b", result.stdout.str()), result.stdout.str()
    assert "smoke.json:?" not in result.stdout.str()


@pytest.mark.child_plugins("html", "metadata")
def test_html_report_shows_the_facts_of_a_passing_check(pytester, write_config, demo):
    pytest.importorskip("pytest_html")
    write_config(three_checks(demo))
    result = run(pytester, "--html=report.html", "--self-contained-html")
    assert result.ret == 0
    html = (pytester.path / "report.html").read_text()
    assert "status: 200" in html and "endpoint: /health/ready" in html


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_tb_line_gives_the_whole_reason(pytester, write_config, failing_demo, workers):
    doc = three_checks(failing_demo)
    doc["health_checks"][1]["endpoint"] = "/health/ready?probe=a-long-query-string-that-goes-on"
    write_config(doc)
    result = run(pytester, "--tb=line", *workers)
    reason = (
        "/health/ready?probe=a-long-query-string-that-goes-on returned 503 (expected 200); "
        "failing: database: connection failed"
    )
    assert any(line.endswith(reason) and "smoke.json:" in line for line in result.outlines), result.stdout.str()


# -- JUnit as CI systems read it ---------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_pytest_junit_has_a_one_line_message_and_the_facts_of_a_failure(pytester, write_config, failing_demo, workers):
    from junitparser import Failure, JUnitXml, Properties

    def properties(case):
        return {p.name: p.value for p in (case.child(Properties) or [])}

    write_config(three_checks(failing_demo))
    result = run(pytester, "--junitxml=pytest.xml", "--smoke-report=report.json", "-o", "junit_family=xunit1", *workers)
    assert result.ret == EXIT_CRITICAL
    cases = {case.name: case for suite in JUnitXml.fromfile(str(pytester.path / "pytest.xml")) for case in suite}
    failed = cases["health[readiness]"]
    [failure] = [r for r in failed.result if isinstance(r, Failure)]
    assert failure.message == "/health/ready returned 503 (expected 200); failing: database: connection failed"
    assert "severity: critical (required check)" in failure.text
    props = properties(failed)
    assert props["smoke_status"] == "503" and props["smoke_endpoint"] == "/health/ready"
    assert float(props["smoke_elapsed_ms"]) > 0
    passed_props = set(properties(cases["health[basic-health]"]))
    assert {"smoke_status", "smoke_endpoint", "smoke_elapsed_ms", "smoke_summary"} <= passed_props
    assert {"smoke_status", "smoke_endpoint", "smoke_elapsed_ms", "smoke_summary"} <= set(props)
    report = json.loads((pytester.path / "report.json").read_text())
    facts = next(c["facts"] for c in report["checks"] if c["name"] == "readiness")
    assert facts["status"] == 503 and facts["endpoint"] == "/health/ready" and facts["elapsed_ms"] > 0


def test_smoke_junit_meets_the_surefire_schema_and_names_tests_as_pytest_does(pytester, write_config, failing_demo):
    import xmlschema
    from junitparser import JUnitXml

    write_config(three_checks(failing_demo))
    for folder in ("api", "web"):
        pytester.mkpydir(folder)
        (pytester.path / folder / "test_login.py").write_text(
            "import pytest\n"
            f"@pytest.mark.smoke_{'required' if folder == 'api' else 'optional'}\n"
            "def test_login():\n    pass\n"
        )
    result = run(pytester, "--smoke-junit=smoke.xml", "--junitxml=pytest.xml", "-o", "junit_family=xunit2")
    assert result.ret == EXIT_CRITICAL
    schema = xmlschema.XMLSchema(str(XSD))
    schema.validate(str(pytester.path / "smoke.xml"))
    schema.validate(str(pytester.path / "pytest.xml"))
    ours = {
        (case.classname, case.name) for suite in JUnitXml.fromfile(str(pytester.path / "smoke.xml")) for case in suite
    }
    pytests = {
        (case.classname, case.name) for suite in JUnitXml.fromfile(str(pytester.path / "pytest.xml")) for case in suite
    }
    assert ("api.test_login", "test_login") in ours and ("web.test_login", "test_login") in ours
    assert ("smoke.json", "health[readiness]") in ours
    assert ours == pytests


def test_a_check_name_pytest_escapes_is_still_one_check(pytester, write_config, failing_demo):
    """pytest escapes ids (non-ASCII, tabs, backslashes): the verdict must still see one check, run."""
    write_config({"base_url": failing_demo.url, "health_checks": [health("prêt\tà\\servir", "/health/ready")]})
    result = run(pytester, "-rA", "--smoke-report", "report.json")
    nodeid = "smoke.json::health[pr%C3%AAt%09%C3%A0%5Cservir]"  # percent-encoded: the same on every pytest
    assert outcomes_of(result) == {nodeid: "FAILED"}
    [check] = json.loads((pytester.path / "report.json").read_text())["checks"]
    assert check["status"] == "failed" and check["name"] == "prêt\tà\\servir"
    again = run(pytester, "-rA", nodeid)
    assert outcomes_of(again) == {nodeid: "FAILED"}


def test_the_rerun_line_masks_options_that_hold_credentials(pytester, write_config, demo):
    write_config(three_checks(demo))
    result = run(pytester, "-o", "api_token=T-Secret-4410", "--smoke-report", "report.json")
    line = rerun_line(result)
    assert "api_token=***" in line and "T-Secret-4410" not in result.stdout.str()
    assert "T-Secret-4410" not in (pytester.path / "report.json").read_text()
    # Found by review: "session" in a name is not a credential when it names a duration.
    result = run(pytester, "-o", "session_timeout=600", "-o", "session_token=S-4410")
    line = rerun_line(result)
    assert "session_timeout=600" in line and "session_token=***" in line and "S-4410" not in result.stdout.str()


def test_stepwise_stopping_at_a_critical_failure_still_gives_the_verdict(pytester, write_config, failing_demo):
    write_config(three_checks(failing_demo))
    result = run(pytester, "--sw", "--smoke-concurrency", "1")
    assert result.ret == EXIT_CRITICAL, result.stdout.str()
    assert "✗ CRITICAL: Smoke tests failed" in result.stdout.str()


def test_a_service_failure_in_an_autouse_fixture_fails_the_checks_it_guards(pytester, write_config, failing_demo):
    write_config(three_checks(failing_demo))
    pytester.makeconftest("""
import pytest

@pytest.fixture(autouse=True)
def service_ready(smoke_http):
    smoke_http.expect(smoke_http.get("/health/ready"), status=200)
""")
    result = run(pytester)
    text = result.stdout.str()
    assert result.ret == EXIT_CRITICAL, text
    assert "✗ CRITICAL: Smoke tests failed" in text  # not INCONCLUSIVE: the fixture judged the service
    assert f"Health Check: basic-health: {failing_demo.url}/health/ready returned 503 (expected 200)" in text


def test_a_symlinked_config_is_one_complete_run(pytester, demo):
    import os

    hidden = pytester.path / ".smoke"
    hidden.mkdir()
    (hidden / "prod.json").write_text(json.dumps(three_checks(demo)))
    os.symlink(hidden / "prod.json", pytester.path / "smoke.json")
    result = run(pytester, "-rA")
    assert result.ret == 0
    assert "✓ Smoke tests passed" in result.stdout.str() and "PARTIAL" not in result.stdout.str()
    assert set(outcomes_of(result)) == {
        f"smoke.json::{kind}"
        for kind in ("health[basic-health]", "health[readiness]", "health[liveness]", "dependency[auth]")
    }


def test_k_matches_a_check_name_as_written(pytester, write_config, demo):
    write_config({"base_url": demo.url, "health_checks": [health("prêt", "/health"), health("other", "/health")]})
    assert set(outcomes_of(run(pytester, "-rA", "-k", "prêt"))) == {"smoke.json::health[pr%C3%AAt]"}


def test_a_failing_smoke_http_call_shows_the_tests_line_not_the_plugins_internals(pytester, write_config, demo):
    pytester.makepyfile(
        test_profile="""
        import pytest

        @pytest.mark.smoke_required
        def test_profile(smoke_http):
            response = smoke_http.get("/health/ready")
            smoke_http.expect(response, status=200)
    """
    )
    demo.faults.add("ready-503")
    write_config({"base_url": demo.url, "health_checks": []})
    result = pytester.runpytest("--smoke-config", "smoke.json", "-p", "no:cacheprovider", "test_profile.py")
    assert result.ret == 1
    output = result.stdout.str()
    assert (
        "pytest_smoke/checks/" not in output and "requests/sessions.py" not in output
    )  # frames hidden, as pytest's own
    result.stdout.fnmatch_lines(["FAILED test_profile.py::test_profile - pytest_smoke.CheckFailed: *"])


def test_a_partial_run_lists_every_item_left_out_and_why(pytester, write_config, failing_demo):
    write_config(three_checks(failing_demo))
    pytester.makepyfile(test_custom="import pytest\n\n@pytest.mark.smoke_optional\ndef test_orders():\n    pass\n")

    def left_out(*args):
        run(pytester, *args, "--smoke-report", "report.json")
        checks = json.loads((pytester.path / "report.json").read_text())["checks"]
        return {c["name"]: c["reason"] for c in checks if c["status"] == "not_selected"}

    by_k = "not selected: deselected (-k, -m or --deselect)"
    assert left_out("-k", "health") == {"auth": by_k, "test_orders": by_k}  # generated and custom alike
    by_lf = "not selected: not collected: --lf runs only what failed last time"
    # --lf skips test_custom.py before collection: what it never collected is unknown, and may hold
    # required tests, so the run is partial and never verified.
    unknown = (
        "not selected: --lf ran only what failed last time; "
        "the tests it did not collect (required ones among them) are unknown"
    )
    assert left_out("--lf") == {
        "basic-health": by_lf,
        "liveness": by_lf,
        "auth": by_lf,
        "tests --lf did not collect": unknown,
    }
    report = json.loads((pytester.path / "report.json").read_text())
    assert report["verdict"]["state"] == "critical" and not report["verdict"]["verified"]  # readiness still fails
    failing_demo.faults.clear()
    assert left_out("--lf")["tests --lf did not collect"] == unknown
    report = json.loads((pytester.path / "report.json").read_text())
    assert report["verdict"]["state"] == "partial" and not report["verdict"]["verified"]
