"""pytest-smoke: post-deploy smoke checks as pytest items, with a safe Kubernetes rollback.

The public surface is small on purpose:

- :func:`load_config` / :class:`ConfigError`: read and validate a smoke config.
- :func:`register_check_type`, :class:`CheckFailed`, :class:`CheckResult`: add a dependency type.
"""

__version__ = "0.1.0"

from .checks import CheckContext, CheckFailed, CheckResult, register_check_type  # noqa: E402
from .config import ConfigError, load_config  # noqa: E402

__all__ = [
    "CheckContext",
    "CheckFailed",
    "CheckResult",
    "ConfigError",
    "__version__",
    "load_config",
    "register_check_type",
]
