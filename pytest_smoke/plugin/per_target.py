"""Registered as a plugin only when the config has a ``fleet:``: every developer's test asks for
``smoke_target`` (through the autouse fixture below), so each runs once per target with the target
in its id, whether it asks for a smoke fixture or not. A test that ran in every target under one id
would mix their outcomes (``--lf``, JUnit) and could not be selected per target."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _smoke_fleet_target(smoke_target: str | None) -> str | None:
    return smoke_target
