"""Shared test data and builders. Fixtures live in conftest.py; plain values and helpers live here,
so test modules import them by name instead of reaching into conftest."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from incident_receivers import Receiver as BaseReceiver

SEED_CONFIG = Path(__file__).parent / "data" / "seed-smoke-test-hook.json"

# Distinctive secrets: any of these in any output is a leak.
PG_PASSWORD = "pg-Secret-7781"
REDIS_PASSWORD = "redis-Secret-5512"
AMQP_PASSWORD = "amqp-Secret-9034"
SLACK_TOKEN = "T000-slack-Secret-B111"
SMTP_PASSWORD = "smtp-Secret-4242"

# The Kubernetes API test double's two revisions: 1 runs GOOD_IMAGE, 2 (live) BAD_IMAGE.
GOOD_IMAGE, BAD_IMAGE = "django:v1.21.8-stable", "django:v1.22.0-context-api"


def health(name: str, endpoint: str, **extra: Any) -> dict[str, Any]:
    """A health check entry with a short timeout, as the tests write them."""
    return {"name": name, "endpoint": endpoint, "timeout_seconds": 5, **extra}


def smoke_doc(demo, kube, *, confirm=True, threshold=1, strategy=None, **auto):
    return {
        "base_url": demo.url,
        "auto_rollback": {
            "enabled": True,
            "critical_failure_threshold": threshold,
            "requires_ops_confirmation": confirm,
            "rollback_timeout_seconds": 20,
            "confirmation_timeout_seconds": 3,
            **auto,
        },
        "health_checks": [
            health("basic-health", "/health"),
            health("readiness", "/health/ready"),
            health("liveness", "/health/live", required=False, timeout_seconds=1),
        ],
        "critical_paths": [
            {
                "name": "user-login",
                "steps": [
                    {
                        "method": "POST",
                        "endpoint": "/api/auth/login",
                        "payload": {"email": "test@example.com", "password": "test"},
                    }
                ],
            }
        ],
        "rollback_strategy": {
            "type": "previous-image",
            "deployment": "django",
            "namespace": "prod",
            "kubeconfig": str(kube.kubeconfig),
            "max_rollback_attempts": 1,
            **(strategy or {}),
        },
    }


def deployment_patches(api):
    """Patches that change the Deployment's pod template: a rollback (not the lease, not the
    bookkeeping annotations a green run writes)."""
    return [
        p
        for p in api.patches
        if p[0] == "deployments" and "template" in json.dumps(p[2]) and not _only_tests_template(p[2])
    ]


def _only_tests_template(body):
    """A JSON patch whose template op is only a ``test`` (a guard), not a write."""
    return isinstance(body, list) and not any(
        op.get("path", "").startswith("/spec/template") and op.get("op") != "test" for op in body
    )


def run_in_background(pytester, *args):
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


class Receiver(BaseReceiver):
    """Captures webhook and Slack posts (``posts``); answers with ``reply``."""

    def __init__(self, reply=None, status=200):
        self.reply, self.status = reply, status
        super().__init__()

    @property
    def posts(self):
        return self.received

    def answer(self, request):
        return self.status, {}, self.reply or {"ok": True}


def roll_back(action, strategy, auto, **kwargs):
    """``carry_out`` as the plugin calls it: with what runs now recorded as the tested revision
    (pass ``tested=`` to say otherwise)."""
    from pytest_smoke.cluster.kube import Kube
    from pytest_smoke.cluster.rollback import carry_out
    from pytest_smoke.model import Target

    kwargs.setdefault("confirm", None)
    if "tested" not in kwargs:
        target = Target.from_settings(strategy)
        kwargs["tested"] = Kube(target).state() if target is not None else None
    return carry_out(action, strategy, auto, **kwargs)


# -- bounds, asserted with margins relative to what they measure --------------------------------------
# No fixed wall-clock limit: on a loaded 2-core machine start-ups and threads stretch, sleeps do not.
# A bound is proven when the run ends nearer the bound than the behaviour it guards against.
ENDLESS = float("inf")


def assert_cut_short(elapsed: float, bound: float, unbounded: float = ENDLESS) -> None:
    """``elapsed`` ended nearer ``bound`` than ``unbounded`` (what the fault would take without
    the bound; keep it several times the bound). For a fault that never ends, five times the
    bound plus five seconds: a bound that was ignored still fails, a slow machine does not."""
    limit = (bound + unbounded) / 2 if unbounded != ENDLESS else 5 * bound + 5
    assert elapsed < limit, f"took {elapsed:.1f} s: bounded at {bound:g} s, the fault lasts {unbounded:g} s"


def session_seconds(result: Any) -> float:
    """The child run's session time from its summary line ("... in 2.34s"): interpreter start-up
    and plugin imports are not in it, so a loaded machine does not inflate it."""
    import re

    found = re.findall(r" in ([\d.]+)s\b", result.stdout.str())
    assert found, result.stdout.str()[-2000:]
    return float(found[-1])


# The command handler's usual command: kubectl sets the previous image, no shell in between.
KUBECTL_SET_IMAGE = [
    "kubectl",
    "set",
    "image",
    "deployment/{deployment}",
    "{container}={previous_image}",
    "-n",
    "{namespace}",
]
