"""The built-in check types and rollback handlers, as ordinary implementations of the plugin's
own hooks. They answer last (``trylast``), so any plugin may add a name or replace one."""

from __future__ import annotations

from typing import Any

import pytest


class BuiltinExtensions:
    @pytest.hookimpl(trylast=True)
    def pytest_smoke_check_type(self, name: str) -> Any:
        from ..checks import builtin_check_type

        return builtin_check_type(name)

    @pytest.hookimpl(trylast=True)
    def pytest_smoke_rollback_handler(self, name: str) -> Any:
        from ..cluster.rollback import builtin_handler

        return builtin_handler(name)
