"""The built-in check types and rollback handlers, as ordinary implementations of the plugin's
own hooks. They answer last (``trylast``), so any plugin may add a name or replace one."""

from __future__ import annotations

from typing import Any

import pytest

from ..checks import builtin_check_type


class BuiltinExtensions:
    @pytest.hookimpl(trylast=True)
    def pytest_smoke_check_type(self, name: str) -> Any:
        return builtin_check_type(name)

    @pytest.hookimpl(trylast=True)
    def pytest_smoke_rollback_handler(self, name: str) -> Any:
        # Lazy: every pytest run imports this module (plugin.main), and the cluster code adds ~11 ms.
        from ..cluster.rollback import builtin_handler

        return builtin_handler(name)
