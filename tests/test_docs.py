"""The docs cannot drift: the configuration reference is generated from the schema (every key has a
description or a default), the site builds with --strict (broken links fail), every option is
documented, the documented configs run, and every documented command is accounted for."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SCHEMA = ROOT / "pytest_smoke" / "schema" / "smoke-config.schema.json"

# Every command a reader is told to type, and how it is verified. A new command in the docs fails
# test_every_documented_command_is_verified until it is added here with its proof.
VERIFIED_COMMANDS = {
    "python3 -m venv .venv && . .venv/bin/activate && pip install . && "
    "pytest --smoke-config example_suites/demo/smoke-test-hook.json example_suites/demo": (
        ".ci/run: the built wheel, no extras, is installed in a fresh venv and runs this demo (exit 0)"
    ),
    "DEMO_FAULTS=ready-503,login-500 pytest --smoke-config example_suites/demo/smoke-test-hook.json "
    "example_suites/demo": "test_the_failing_demo_command_fails",
    (
        "apt-get update && apt-get install -y postgresql redis-server rabbitmq-server prometheus "
        'prometheus-pushgateway make && pip install -e ".[test]" && python3 -m pytest -n auto'
    ): ".ci/run: these packages, then exactly `python3 -m pytest -n auto`",
    "python3 -m venv .venv && . .venv/bin/activate && pip install "
    '"pytest-deploy-smoke[all]"': ".ci/run: the built wheel with [all] in a fresh venv",
    'pip install "pytest-deploy-smoke[all]"': ".ci/run: the built wheel with [all] in a fresh venv",
    "pytest --smoke-config smoke.yaml": "test_the_first_configs_run_green",
    "pytest --smoke-config smoke.yaml --smoke-report smoke-report.json": "test_the_first_configs_run_green",
    # Needs a cluster, which these machines cannot run; the manifests are parsed and their RBAC
    # verbs checked against the code by tests/test_deploy_integration.py.
    "kubectl apply -f example_suites/kubernetes/rbac.yaml -f "
    "example_suites/kubernetes/configmap.yaml": "not run: needs a cluster",
    "kubectl create -f example_suites/kubernetes/job.yaml": "not run: needs a cluster",
    "kubectl logs -f job/<name> -n prod": "not run: needs a cluster",
}


def documented_commands() -> list[tuple[str, str]]:
    found = []
    for page in [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]:
        for block in re.findall(r"```bash\n(.*?)```", page.read_text(encoding="utf-8"), re.S):
            found += [
                (page.name, line.strip())
                for line in block.splitlines()
                if line.strip() and not line.strip().startswith("#")
            ]
    return found


def yaml_blocks(page: Path, starting: str) -> list[str]:
    return [
        block
        for block in re.findall(r"```yaml\n(.*?)```", page.read_text(encoding="utf-8"), re.S)
        if block.startswith(starting)
    ]


def test_every_schema_key_has_a_description_or_a_default():
    schema = json.loads(SCHEMA.read_text())
    missing = []

    def walk(node, path):
        if not isinstance(node, dict):
            return
        for key, value in (node.get("properties") or {}).items():
            if isinstance(value, dict):
                if "description" not in value and "default" not in value:
                    missing.append(f"{path}.{key}")
                walk(value, f"{path}.{key}")
        for key in ("items", "additionalProperties", "then"):
            walk(node.get(key), f"{path}[{key}]")
        for key in ("allOf", "oneOf", "anyOf"):
            for index, sub in enumerate(node.get(key) or []):
                walk(sub, f"{path}.{key}[{index}]")

    walk(schema, "")
    for name, node in schema["$defs"].items():
        walk(node, f"$defs.{name}")
    assert missing == []


def test_the_configuration_reference_is_generated_from_the_current_schema():
    done = subprocess.run([sys.executable, str(DOCS / "gen_reference.py"), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, "docs/configuration.md is stale: run python docs/gen_reference.py"
    reference = (DOCS / "configuration.md").read_text()
    for key in json.loads(SCHEMA.read_text())["properties"]:
        assert f"| `{key}` |" in reference


def test_the_site_builds_with_strict_link_checking(tmp_path):
    pytest.importorskip("mkdocs", reason="mkdocs is in the test extras")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "troubleshooting" / "index.html").exists()


def test_every_option_is_documented():
    main = (ROOT / "pytest_smoke" / "plugin" / "main.py").read_text()
    options = re.findall(r'"(--smoke-[a-z-]+)"', main)
    documented = (DOCS / "options.md").read_text()
    assert options and [option for option in options if f"`{option}" not in documented] == []


def test_every_documented_command_is_verified():
    unverified = sorted(
        {f"{page}: {command}" for page, command in documented_commands() if command not in VERIFIED_COMMANDS}
    )
    assert unverified == []


def test_the_first_configs_run_green(pytester, demo, postgres_server, redis_server, monkeypatch):
    configs = [
        (page, config)
        for page in (ROOT / "README.md", DOCS / "getting-started.md")
        for config in yaml_blocks(page, "base_url:")
    ]
    assert len(configs) == 3  # the README's, and getting started's HTTP-only one and its full one
    for page, config in configs:
        (pytester.path / "smoke.yaml").write_text(config)
        monkeypatch.setenv("SMOKE_BASE_URL", demo.url)
        monkeypatch.setenv("DATABASE_URL", postgres_server.url)
        monkeypatch.setenv("REDIS_URL", redis_server.url)
        monkeypatch.setenv("SMOKE_USER", "test@example.com")
        monkeypatch.setenv("SMOKE_PASSWORD", "test")
        monkeypatch.setenv(
            "KUBECONFIG", str(pytester.path / "no-cluster")
        )  # no cluster here: a rollback would be refused
        result = pytester.runpytest("--smoke-config", "smoke.yaml", "--smoke-report", "smoke-report.json")
        assert result.ret == 0, f"{page.name}\n{result.stdout.str()}"
        report = json.loads((pytester.path / "smoke-report.json").read_text())
        declared = set(re.findall(r"\{?name: ([\w-]+)", config))
        assert {c["name"]: c["status"] for c in report["checks"]} == dict.fromkeys(declared, "passed")
        assert {"live", "ready", "user-login"} <= declared


def test_the_failing_demo_command_fails(pytester, monkeypatch):
    monkeypatch.setenv("DEMO_FAULTS", "ready-503,login-500")
    demo = pytester.path / "example_suites" / "demo"
    demo.mkdir(parents=True)
    for name in ("conftest.py", "demo_service.py", "smoke-test-hook.json", "test_custom_smoke.py"):
        (demo / name).write_text((ROOT / "example_suites" / "demo" / name).read_text())
    result = pytester.runpytest("--smoke-config", "example_suites/demo/smoke-test-hook.json", "example_suites/demo")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["✗ CRITICAL: Smoke tests failed*", "*readiness: /health/ready returned 503*"])


def test_every_documented_exit_status_is_reached_by_a_test():
    # docs/exit-codes.md is a promise per status: each one needs a test that runs pytest and
    # asserts it (ret == N, or the ExitCode of that value); a new documented status without one fails here.
    table = (DOCS / "exit-codes.md").read_text(encoding="utf-8")
    documented = {int(code) for code in re.findall(r"^\| \**(\d+)\** \|", table, re.MULTILINE)}
    assert {0, 1, 2, 3, 4, 5, 10, 11, 12} <= documented
    sources = "\n".join(path.read_text(encoding="utf-8") for path in (ROOT / "tests").glob("test_*.py"))
    names = {code.value: code.name for code in pytest.ExitCode}
    for code in sorted(documented):
        asserted = re.search(rf"\.ret == {code}\b", sources) or (
            code in names and re.search(rf"\.ret == pytest\.ExitCode\.{names[code]}\b", sources)
        )
        assert asserted, f"exit status {code} is documented but no test asserts it"
