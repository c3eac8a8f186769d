"""What to do about each kind of failure: an ``Issue:`` sentence, the impact and next steps.

Every report (terminal, JUnit, JSON, Markdown, notifications) takes its remediation from here.
Teams extend or override entries from config (``remediation: {kind: {issue, steps}}``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping


@dataclass(frozen=True)
class Remedy:
    issue: str
    steps: tuple[str, ...]


CATALOGUE: dict[str, Remedy] = {
    "timeout": Remedy(
        "The service did not answer within the check's timeout",
        (
            "Check pod health and recent restarts: kubectl get pods -l app={deployment} -n {namespace}",
            "Read the logs of the new version: kubectl logs deploy/{deployment} -n {namespace} --since=10m",
        ),
    ),
    "connection_refused": Remedy(
        "Nothing is listening at the checked address",
        (
            "Check that the Service has ready endpoints: kubectl get endpoints {deployment} -n {namespace}",
            "Check the container port and the readiness probe in the new pod template",
        ),
    ),
    "dns_failure": Remedy(
        "The host name does not resolve",
        (
            "Check the base_url / host in the smoke config and the Service name",
            "Check cluster DNS: kubectl get svc -n {namespace}",
        ),
    ),
    "tls_error": Remedy(
        "The TLS handshake failed (certificate not trusted, expired or for another host)",
        (
            "Inspect the certificate: openssl s_client -connect HOST:443 -servername HOST",
            "Point ca_bundle at the right CA rather than turning verify_tls off",
        ),
    ),
    "certificate_expiring": Remedy(
        "The served TLS certificate expires soon (the reason names the date, subject and issuer)",
        (
            "Check the renewal: kubectl get certificate -n {namespace} (cert-manager) or the issuer's dashboard",
            "Inspect what is served: openssl s_client -connect HOST:443 -servername HOST | "
            "openssl x509 -noout -dates -subject -issuer",
            "A rollback does not renew a certificate: set rollback: false on this "
            "check so it alerts without rolling back",
        ),
    ),
    "grpc_not_serving": Remedy(
        "The gRPC health service reports NOT_SERVING",
        (
            "Read the logs of the new version: kubectl logs deploy/{deployment} -n {namespace} --since=10m",
            "Check what the server's health servicer depends on (its database, its upstreams)",
        ),
    ),
    "grpc_service_unknown": Remedy(
        "The gRPC server does not know the service name the check asks about",
        (
            "Check the service name in the smoke config against the server's registered services",
            "A new version that dropped or renamed a service breaks its clients: compare with the previous image",
        ),
    ),
    "grpc_no_health": Remedy(
        "The gRPC server does not implement grpc.health.v1.Health",
        ("Register the standard health servicer (grpcio-health-checking) in the new version, as the previous one did",),
    ),
    "latency": Remedy(
        "Repeated requests answered, but too slowly at the measured percentile (one "
        "slow pod, a cold cache, a slow query)",
        (
            "Find the slow pod: kubectl top pods -l app={deployment} -n {namespace}, then read its logs",
            "Compare with the previous version over the same repeat: N (check the percentile's limit fits the service)",
        ),
    ),
    "metric_condition": Remedy(
        "The new version's metrics break the condition (error rate, latency) under real traffic",
        (
            "Compare with the previous version in the dashboard over the same window",
            "Read the logs of the new version: kubectl logs deploy/{deployment} -n {namespace} --since=10m",
        ),
    ),
    "metric_inconclusive": Remedy(
        "The metric could not be judged: no data, NaN, a query error or Prometheus unreachable",
        (
            "Run the query in Prometheus's UI; check the metric names and labels and that the target is scraped",
            "With no traffic yet, widen the window or give the check an initial_delay_seconds",
        ),
    ),
    "connection_reset": Remedy(
        "The connection broke mid-response",
        ("Read the logs for crashes: kubectl logs deploy/{deployment} -n {namespace} --previous",),
    ),
    "redirect_loop": Remedy(
        "The endpoint redirects in a loop", ("Check ingress and proxy redirect rules for the endpoint",)
    ),
    "redirect_limit": Remedy(
        "The endpoint redirects more times than max_redirects allows",
        ("Follow the chain in the reason: check ingress and app redirect rules, or raise max_redirects",),
    ),
    "component_down": Remedy(
        "The health endpoint names failing components (listed in the reason)",
        (
            "Check each failing component from the new pods first (its Service, "
            "credentials, network policy in {namespace})",
            "Read the logs of the new version for that component: kubectl logs "
            "deploy/{deployment} -n {namespace} --since=10m",
        ),
    ),
    "csrf_rejected": Remedy(
        "The request was rejected by CSRF protection (a 403 CSRF failure page), not by the credentials",
        (
            'Send the CSRF token: save it from the page or cookie (save: {{"csrf": "cookies.csrftoken"}}), '
            "then send it as X-CSRFToken or csrfmiddlewaretoken",
            "Save the token again after login: Django rotates it when the session changes",
        ),
    ),
    "bad_request": Remedy(
        "The endpoint rejected the request as malformed (400)",
        (
            "Check the body format the endpoint expects: JSON (payload) or an HTML form (form), and its field names",
            "Compare with the excerpt in this report: it usually names the rejected field",
        ),
    ),
    "readiness_503": Remedy(
        "The service reports it is not ready (often a dependency, such as the database)",
        (
            "Read the readiness details: kubectl logs deploy/{deployment} -n {namespace} --since=10m",
            "Check the dependency checks in this report for the root cause",
        ),
    ),
    "http_5xx": Remedy(
        "The service answered with a server error",
        (
            "Read the logs of the new version: kubectl logs deploy/{deployment} -n {namespace} --since=10m",
            "Compare with the previous revision: kubectl rollout history deployment/{deployment} -n {namespace}",
        ),
    ),
    "http_auth": Remedy(
        "The request was rejected as unauthenticated (401)",
        ("Check the smoke credentials (secrets referenced through ${{VAR}}) and the auth service",),
    ),
    "http_forbidden": Remedy(
        "The request was authenticated but forbidden (403)",
        (
            "Check what the smoke user may do: its roles, scopes or group for this endpoint",
            "Compare the new version's authorization rules (permissions, policies, scopes) with the previous one",
        ),
    ),
    "database_error": Remedy(
        "The service answered with a database error: the request was likely fine, the database was not",
        (
            "Check that the release's migrations ran against this database (its schema version, missing tables)",
            "Read the logs of the new version for the failing query: kubectl logs "
            "deploy/{deployment} -n {namespace} --since=10m",
            "Check the database itself: connections, locks, disk (a dependency check on it tells the two apart)",
        ),
    ),
    "http_method": Remedy(
        "The endpoint does not accept this method (405)",
        ("Check the method in the smoke config against the new API: did the route or its allowed methods change?",),
    ),
    "http_status": Remedy(
        "The endpoint answered with an unexpected status",
        ("Check the endpoint and expected_status in the smoke config against the new API",),
    ),
    "expectation": Remedy(
        "The response did not meet the check's expectations",
        ("Compare the response excerpt in this report with the expect block in the config",),
    ),
    "db_auth": Remedy(
        "Database connection failed: the credentials were rejected",
        ("Check the database secret mounted in the new pods and in the smoke job",),
    ),
    "db_unreachable": Remedy(
        "Database connection failed",
        ("Check the database host, port and network policy from the namespace {namespace}",),
    ),
    "db_query": Remedy("The database query failed", ("Check migrations shipped with this deployment",)),
    "redis_auth": Remedy("Redis rejected the credentials (NOAUTH / WRONGPASS)", ("Check the Redis password secret",)),
    "redis_down": Remedy("Redis cache is unavailable", ("Check the Redis service and its pods",)),
    "redis_command": Remedy("The Redis command failed", ("Check the command in the smoke config",)),
    "queue_down": Remedy("The message queue is unreachable", ("Check the broker service and its pods",)),
    "queue_auth": Remedy("The message queue rejected the credentials", ("Check the AMQP user, password and vhost",)),
    "queue_missing": Remedy("The expected queue does not exist", ("Check the queue declarations of this release",)),
    "rate_limit_not_enforced": Remedy(
        "Rate limiting is not enforced",
        ("Check the rate-limit middleware or gateway policy shipped with this release",),
    ),
    "save_missing": Remedy(
        "A response lacked a value a later step needs (API contract change?)",
        ("Compare the response with the step's save paths",),
    ),
    "crashed": Remedy("The process running the check crashed", ("Re-run the suite; report the crash if it repeats",)),
    "error": Remedy(
        "The check could not run (test execution error)",
        ("Read the error in this report; it is a problem of the check, not necessarily of the service",),
    ),
    "failed": Remedy("The check failed", ("Read the failure details in this report",)),
    "internal_error": Remedy(
        "The runner hit an unexpected error: a problem of the runner, not of the service",
        ("Re-run with --full-trace to see the internal traceback; report it if it is a bug of the plugin",),
    ),
    "budget": Remedy(
        "The run budget (timeout_seconds) ran out before the check could finish",
        ("Raise the top-level timeout_seconds, or lower the checks' own timeouts and retries",),
    ),
    "request_error": Remedy(
        "The runner could not build the request (URL or header)",
        ("Fix the config value the reason names; the service was not asked",),
    ),
    "config": Remedy("The check's settings could not be used", ("Fix the config value the reason names",)),
    "rollback_refused": Remedy(
        "The automatic rollback did not happen: it was unsafe, or not this run's to do",
        (
            "Review history: kubectl rollout history deployment/{deployment} -n {namespace}",
            "Roll back by hand if needed: {manual_command}",
        ),
    ),
    "rollback_held": Remedy(
        "A rollback was due and is held: more targets of the fleet failed than max_rollbacks allows, or"
        " a dependency failed behind other targets too, so a shared cause is likely",
        (
            "Compare with the fleet's other targets: the same failure everywhere points at a shared cause",
            "If this target's deploy is at fault, roll back by hand: {manual_command}",
        ),
    ),
    "rollback_failed": Remedy(
        "ROLLBACK FAILED: alert ops team immediately",
        (
            "Roll back by hand: {manual_command}",
            "Watch it: kubectl rollout status deployment/{deployment} -n {namespace}",
            "Review history: kubectl rollout history deployment/{deployment} -n {namespace}",
        ),
    ),
    "rollback_unmarked": Remedy(
        "Rolled back, but the revision rolled away from is not marked rejected",
        (
            "Mark it by hand so no later run rolls forward onto it: "
            "kubectl annotate rs <its ReplicaSet> -n {namespace} pytest-smoke.dev/rejected=true --overwrite",
            "Review history: kubectl rollout history deployment/{deployment} -n {namespace}",
        ),
    ),
    "rollback_awaiting": Remedy(
        "A rollback is waiting for ops confirmation",
        (
            "To roll back now: {manual_command}",
            "Or re-run with --smoke-confirm-rollback",
        ),
    ),
}

IMPACT = {
    "health": "CRITICAL - Service cannot handle requests",
    "dependency": "CRITICAL - A required dependency is unavailable",
    "critical_path": "CRITICAL - Core functionality broken",
    "metric": "CRITICAL - The new version misbehaves under real traffic",
    "custom": "CRITICAL - A required smoke test failed",
}


def remedy(kind: str, overrides: Mapping[str, Any] | None = None) -> Remedy:
    if overrides and kind in overrides:
        entry = overrides[kind]
        base = CATALOGUE.get(kind, CATALOGUE["failed"])
        return Remedy(entry.get("issue", base.issue), tuple(entry.get("steps", base.steps)))
    return CATALOGUE.get(kind, CATALOGUE["failed"])


# What steps may name; a run without a Deployment in its config has none of the first two.
KNOWN_VALUES = frozenset({"deployment", "namespace", "manual_command"})
WITHOUT_DEPLOYMENT = (
    "Read the new version's logs and restarts, and compare with the previous version "
    "(name the Deployment in rollback_strategy and the advice gives the exact kubectl commands)"
)


def fill_steps(steps: Iterable[str], values: Mapping[str, str]) -> list[str]:
    """The steps with the run's values filled in. A step naming a value the run does not have (a
    kubectl command without a Deployment in the config) is left out: advice never shows a
    placeholder. A team's own step with other braces stays as written."""
    filled = []
    for step in steps:
        try:
            filled.append(step.format(**values))
        except KeyError as missing:
            if missing.args[0] not in KNOWN_VALUES:
                filled.append(step)
        except (IndexError, ValueError):
            filled.append(step)
    if steps and not filled:  # every step needed the Deployment: say where the exact commands come from
        filled.append(WITHOUT_DEPLOYMENT)
    return filled


def remedy_kind(outcome: Any) -> str:
    """The catalogue entry for an outcome: its failure kind, else what its status says."""
    if outcome.failure_kind:
        return str(outcome.failure_kind)
    return "error" if outcome.status == "not_evaluated" else "failed"
