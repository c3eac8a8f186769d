"""Health checks: one HTTP request to an endpoint of the deployed service."""

from __future__ import annotations

from ..specs import HealthCheckSpec
from .base import CheckContext, CheckResult, Deadline
from .http import exchange, join_url, new_session, verify_reply, with_certificate


def check(spec: HealthCheckSpec, ctx: CheckContext) -> CheckResult:
    deadline = Deadline(spec.get("timeout_seconds", 5))
    method = spec.get("method", "GET")
    endpoint = spec["endpoint"]
    url = join_url(ctx.base_url, endpoint)
    with new_session(ctx) as session:
        # The label names the full URL: a timeout must say which host did not answer.
        reply = exchange(
            session,
            method,
            url,
            deadline,
            headers=spec.get("headers"),
            label=f"{method} {url}",
            follow_redirects=spec.get("follow_redirects", ctx.follow_redirects),
            max_redirects=ctx.max_redirects,
        )
    result = verify_reply(reply, method, endpoint, spec.get("expected_status", 200), spec.get("expect"))
    return with_certificate(result, url, ctx, spec, deadline)
