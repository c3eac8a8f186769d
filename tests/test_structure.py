"""The architecture is a contract, not a description: pyproject's [tool.importlinter] layers."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(
    shutil.which("lint-imports") is None, reason="import-linter is not installed (pip install -e '.[test]')"
)
def test_data_flows_one_way_and_only_the_glue_imports_pytest():
    result = subprocess.run(["lint-imports", "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


def test_the_plain_layers_run_without_pytest():
    """model, config, checks, verdict, cluster, report and notify import with pytest unavailable."""
    code = (
        "import sys; sys.modules['pytest'] = None; sys.modules['_pytest'] = None\n"
        "import pytest_smoke.model, pytest_smoke.config, pytest_smoke.checks, pytest_smoke.checks.critical_path\n"
        "import pytest_smoke.verdict, pytest_smoke.cluster.rollback, pytest_smoke.cluster.rollout_wait\n"
        "import pytest_smoke.report.document, pytest_smoke.report.markdown, pytest_smoke.report.junit, "
        "pytest_smoke.notify\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "ok", result.stderr


def test_the_report_schema_admits_every_state_the_model_can_write():
    """A status the model has and the schema lacks would make a valid run's report invalid, and
    ``python -m pytest_smoke.fleet merge`` would refuse it."""
    import json
    import typing
    from pathlib import Path

    from pytest_smoke import model

    schema = json.loads(
        (Path(__file__).resolve().parents[1] / "pytest_smoke" / "schema" / "smoke-report.schema.json").read_text()
    )
    props = schema["properties"]
    assert set(props["decision"]["properties"]["action"]["enum"]) == set(typing.get_args(model.Action))
    rollback = next(branch for branch in props["rollback"]["oneOf"] if branch.get("type") == "object")
    assert set(rollback["properties"]["status"]["enum"]) == set(typing.get_args(model.RollbackStatus))
    checks = props["checks"]["items"]["properties"]
    assert set(typing.get_args(model.Status)) <= set(checks["status"]["enum"])
