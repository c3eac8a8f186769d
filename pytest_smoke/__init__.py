"""pytest-deploy-smoke (import package ``pytest_smoke``): post-deploy smoke checks as pytest items,
with a safe Kubernetes rollback.

The public surface is small on purpose:

- :func:`load_config` / :class:`ConfigError`: read and validate a smoke config.
- :class:`CheckContext`, :class:`CheckFailed`, :class:`CheckResult`: write a dependency type, which a
  plugin provides through the ``pytest_smoke_check_type`` hook.

Names are resolved on first use: pytest imports this package for every run through the plugin
entry point, and a run without a smoke config should not pay for YAML or JSON Schema.
"""

import importlib
from typing import Any

__version__ = "0.2.0.dev0"

_PUBLIC = {
    "CheckContext": "checks",
    "CheckFailed": "checks",
    "CheckResult": "checks",
    "ConfigError": "config",
    "load_config": "config",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
