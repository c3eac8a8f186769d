"""The JSON Schemas the package ships (config, report, fleet report) and the config's defaults.

The config schema is the one place a default is written: :func:`defaults` reads them, so the typed
settings (``pytest_smoke.settings``) never repeat one at a call site.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any, cast

CONFIG_SCHEMA = "smoke-config.schema.json"


def path(name: str = CONFIG_SCHEMA) -> str:
    """Where a shipped schema is on disk: for an editor's ``"$schema"``, for CI."""
    return str(resources.files(__name__).joinpath(name))


@lru_cache(maxsize=4)
def load(name: str = CONFIG_SCHEMA) -> dict[str, Any]:
    """A schema shipped inside the package (also usable by editors and CI)."""
    return cast("dict[str, Any]", json.loads(resources.files(__name__).joinpath(name).read_text("utf-8")))


@lru_cache(maxsize=32)
def defaults(section: str) -> dict[str, Any]:
    """The ``default`` of each key of a top-level config section (``auto_rollback``), as the
    schema declares it; ``""`` for the top level itself."""
    schema = load()
    node = schema if not section else schema["properties"][section]
    ref = node.get("$ref", "")
    if ref.startswith("#/$defs/"):
        node = schema["$defs"][ref[len("#/$defs/") :]]
    return {key: value["default"] for key, value in node.get("properties", {}).items() if "default" in value}
