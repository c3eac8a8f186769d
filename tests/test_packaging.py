"""The package as users install it: a distribution name of its own, a clear stop when the unrelated
pytest-smoke distribution (same import package) is installed too, and CI templates that fail
closed when the plugin is missing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.child_plugins("*")  # the stale entry point must be autoloaded, as pip leaves it
def test_the_unrelated_pytest_smoke_distribution_stops_the_run_with_a_clear_usage_error(
    pytester, write_config, demo, monkeypatch
):
    # An installed pytest-smoke 0.11.0 as pip leaves it: its metadata and its pytest11 entry point,
    # which names our import package too (its files and ours overwrite each other).
    site = pytester.path / "site"
    info = site / "pytest_smoke-0.11.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pytest-smoke\nVersion: 0.11.0\n")
    (info / "entry_points.txt").write_text("[pytest11]\nsmoke = pytest_smoke.plugin\n")
    monkeypatch.setenv("PYTHONPATH", str(site))
    write_config({"base_url": demo.url, "health_checks": [{"name": "h", "endpoint": "/health"}]})
    result = pytester.runpytest_subprocess("--smoke-config", "smoke.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "pytest-smoke 0.11.0 is installed next to pytest-deploy-smoke" in err
    assert "pip uninstall -y pytest-smoke pytest-deploy-smoke && pip install 'pytest-deploy-smoke[all]'" in err
    assert "Traceback" not in err + result.stdout.str()


def commands_of(path: Path) -> list[str]:
    doc = yaml.safe_load(path.read_text())
    found: list[str] = []

    def walk(value):
        if isinstance(value, dict):
            for key, item in value.items():
                if key in ("run", "script", "before_script") and isinstance(item, (str, list)):
                    found.extend([item] if isinstance(item, str) else item)
                else:
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(doc)
    return found


@pytest.mark.parametrize("template", ["github-actions.yml", "gitlab-ci.yml"])
def test_ci_templates_install_this_distribution_and_name_the_config_on_the_command_line(template):
    commands = commands_of(ROOT / "example_suites" / "ci" / template)
    installs = [c for c in commands if "pip install" in c]
    assert installs and all("pytest-deploy-smoke[all]" in c and "pytest-smoke[" not in c for c in installs)
    runs = [c for c in commands if "pytest" in c and "pip install" not in c]
    # Fail closed: with the plugin missing or replaced, an unknown --smoke-config is exit 4, never a silent pass.
    assert runs and all("--smoke-config" in c for c in runs)


def test_no_install_line_names_the_other_distribution():
    for path in [
        ROOT / "README.md",
        ROOT / "example_suites" / "kubernetes" / "Dockerfile",
        *(ROOT / "example_suites").rglob("*.yml"),
    ]:
        assert not re.search(r"pip install [\"']?pytest-smoke\b", path.read_text()), path


def test_one_version_everywhere():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    import pytest_smoke

    root = Path(__file__).resolve().parents[1]
    version = tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"]
    assert pytest_smoke.__version__ == version
    first_release = re.search(r"^## (\S+)", (root / "CHANGELOG.md").read_text(), re.MULTILINE)
    assert first_release is not None and first_release.group(1) == version
    images = re.findall(
        r"image: \S+/pytest-smoke:(\S+)",
        "".join(p.read_text() for p in (root / "example_suites" / "kubernetes").glob("*.yaml")),
    )
    assert images and set(images) == {version}
