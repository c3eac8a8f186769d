"""Starts the bundled demo service for the demo smoke suite.

A real deployment has its service already running; here the demo starts one on a free local port
and points the smoke config at it through SMOKE_BASE_URL. Only the controller starts it: xdist
workers inherit the variable.
"""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from demo_service import DemoService  # noqa: E402

_service = None


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    global _service
    if hasattr(config, "workerinput") or os.environ.get("SMOKE_BASE_URL"):
        return
    _service = DemoService().start()
    os.environ["SMOKE_BASE_URL"] = _service.url


def pytest_unconfigure(config):
    global _service
    if _service is not None:
        _service.stop()
        os.environ.pop("SMOKE_BASE_URL", None)
        _service = None
