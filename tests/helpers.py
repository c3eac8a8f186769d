"""Shared test data and builders. Fixtures live in conftest.py; plain values and helpers live here,
so test modules import them by name instead of reaching into conftest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

SEED_CONFIG = Path(__file__).parent / "data" / "seed-smoke-test-hook.json"

# Distinctive secrets: any of these in any output is a leak.
PG_PASSWORD = "pg-Secret-7781"
REDIS_PASSWORD = "redis-Secret-5512"
AMQP_PASSWORD = "amqp-Secret-9034"

# The Kubernetes API test double's two revisions: 1 runs GOOD_IMAGE, 2 (live) BAD_IMAGE.
GOOD_IMAGE, BAD_IMAGE = "django:v1.21.8-stable", "django:v1.22.0-context-api"


def health(name: str, endpoint: str, **extra: Any) -> dict[str, Any]:
    """A health check entry with a short timeout, as the tests write them."""
    return {"name": name, "endpoint": endpoint, "timeout_seconds": 5, **extra}
