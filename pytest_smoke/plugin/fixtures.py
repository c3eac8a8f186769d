"""Fixtures for developers' own smoke tests: what the config already names, resolved.

Registered with every pytest run; without a smoke config a test that asks for one is skipped.
"""

from __future__ import annotations

from typing import Any, Generator, Mapping

import pytest

from ..model import default_timeout
from .run import SmokeRun, get_run

# checks.client is imported in the fixtures that use it, once a smoke config is found: every pytest
# run imports this module (plugin.main), and checks.client with requests adds ~110 ms.


def _smoke_run(config: pytest.Config) -> SmokeRun:
    run = get_run(config)
    if run is None:
        pytest.skip("needs a smoke config (--smoke-config, the smoke_config ini option or SMOKE_CONFIG)")
    return run


@pytest.fixture(scope="session")
def smoke_target(pytestconfig: pytest.Config) -> str | None:
    """The fleet target this run checks (``fleet.targets.NAME``), or None for a config without
    ``fleet:``. With a fleet, a test that asks for it, or for any fixture here, runs once per
    target with the target in its id (``test_login[eu-west-1]``), so ``-k eu-west-1`` selects it."""
    run = _smoke_run(pytestconfig)
    return run.config.target.name if run.config.target is not None else None


@pytest.fixture(scope="session")
def smoke_base_url(pytestconfig: pytest.Config, smoke_target: str | None) -> str:
    """The base URL the generated checks use: ``--smoke-base-url``, the selected environment's
    ``base_url``, the config's, or ``SMOKE_BASE_URL``, in that order."""
    run = _smoke_run(pytestconfig)
    if not run.config.base_url:
        pytest.fail(
            f"smoke_base_url: {run.config.path} sets no base_url (nor does --smoke-base-url or SMOKE_BASE_URL)",
            pytrace=False,
        )
    return run.config.base_url


@pytest.fixture
def smoke_http(pytestconfig: pytest.Config, smoke_target: str | None) -> Generator[Any, None, None]:
    """A ``requests.Session`` bound to the base URL (relative paths are joined to it), sending the
    config's headers with its TLS settings and a default timeout. A request that cannot reach the
    service fails like a generated check (reason, redacted curl line), in a test or in a fixture;
    ``smoke_http.expect(response, status=200, json=...)`` judges a response the same way."""
    from ..checks.client import BoundSession  # lazy: see the top

    run = _smoke_run(pytestconfig)
    session = BoundSession(run.context, timeout=default_timeout("health"))
    yield session
    session.close()


@pytest.fixture(scope="session")
def smoke_config(pytestconfig: pytest.Config, smoke_target: str | None) -> Mapping[str, Any]:
    """The resolved config (environment and ``${VAR}`` applied), read-only and redacted."""
    from ..checks.client import read_only  # lazy: see the top

    run = _smoke_run(pytestconfig)
    return read_only(run.redactor.value(run.config.data))  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def smoke_dependencies(pytestconfig: pytest.Config, smoke_target: str | None) -> Mapping[str, Mapping[str, Any]]:
    """Each dependency check's resolved entry by name (``url``, ``host``, ``port``...), read-only.
    Credentials are left in, so a test can connect: outputs redact them, as everywhere."""
    from ..checks.client import read_only  # lazy: see the top

    run = _smoke_run(pytestconfig)
    dependencies = {check.name: check.spec for check in run.config.checks if check.kind == "dependency"}
    return read_only(dependencies)  # type: ignore[no-any-return]
