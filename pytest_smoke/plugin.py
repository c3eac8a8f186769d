"""pytest glue: options, markers, and one ``pytest.Function`` item per configured check.

Registered through the ``pytest11`` entry point, so installing the package is enough. Without a
smoke config (``--smoke-config``, ini ``smoke_config`` or env ``SMOKE_CONFIG``) the plugin does
nothing at all, so an ordinary test run is unaffected.

The config file usually lives in a dot-directory (``.coditect/config/``) that pytest never
recurses into, so instead of relying on file discovery the session's own collect report gets one
more collector: a :class:`SmokeFile` built from the option.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Iterator

import pytest

from .model import FACT_KEYS, decode, encode
from .redact import shorten
from .scheduler import DEFAULT_CONCURRENCY, DEFAULT_PER_HOST

if TYPE_CHECKING:
    from .checks import CheckResult, Deadline
    from .config import Check, SmokeConfig
    from .scheduler import CheckScheduler

# Every pytest run loads this module through the entry point, smoke config or not: everything
# else (YAML, JSON Schema, the checks, the controller) is imported only once a config is found.

REQUIRED_MARKER = "smoke_required"
OPTIONAL_MARKER = "smoke_optional"
# pytest-timeout backstop past a check's own deadline; the check normally fails first, cleanly.
TIMEOUT_BACKSTOP_SECONDS = 10.0

# Environment variables a dependency check falls back to when its config entry names no address.
CHECK_ENVIRONMENT = ("DATABASE_URL", "PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE", "REDIS_URL", "AMQP_URL")

smoke_run_key = pytest.StashKey["SmokeRun"]()
CONTROLLER_NAME = "smoke-controller"


class SmokeRun:
    """Everything one process knows about this smoke run."""

    def __init__(self, config: SmokeConfig, concurrency: int, fail_fast: bool, per_host: int = DEFAULT_PER_HOST):
        from .checks import CheckContext
        from .redact import Redactor

        self.config = config
        self.redactor = Redactor(config.secrets)
        self.context = CheckContext(
            base_url=config.base_url,
            headers=config.headers,
            verify=config.verify,
            redactor=self.redactor,
            # Only what the checks read: no frame of ours holds a copy of the whole environment.
            environ={name: os.environ[name] for name in CHECK_ENVIRONMENT if name in os.environ},
        )
        self._budget: Deadline | None = None
        self.concurrency = concurrency
        self.per_host = per_host
        self.fail_fast = fail_fast
        self.scheduler: CheckScheduler | None = None
        self.consumed: set[str] = set()  # checks whose pooled result an item has already reported
        self.deselected_required: list[list[str]] = []  # [node id, name] of required custom tests deselected
        self.stop_reason: str | None = None
        self.log_records: Any = None  # RedactingLogRecords, while the run lasts
        self.host_slots: Any = None  # HostSlots in an xdist worker: the per-host limit across workers

    @property
    def budget(self) -> Deadline:
        """The config's timeout_seconds bounds every check of the run, started or not. It starts
        with the first check (after any rollout wait), in whichever process runs checks."""
        if self._budget is None:
            from .checks import Deadline

            self._budget = Deadline(self.config.timeout)
        return self._budget

    def run_one(self, check: Check) -> CheckResult:
        from .checks import run_check, target_host

        host = target_host(check.kind, check.spec, self.config.base_url) if self.host_slots else None
        if host is None or self.host_slots is None:
            return run_check(check.kind, check.spec, self.context, budget=self.budget, timeout=check.timeout)
        with self.host_slots.hold(host, self.budget.remaining()):
            return run_check(check.kind, check.spec, self.context, budget=self.budget, timeout=check.timeout)

    def stop_starting_checks(self, reason: str) -> None:
        if self.stop_reason is None:
            self.stop_reason = reason
        if self.scheduler is not None:
            self.scheduler.cancel_pending(reason)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("smoke", "post-deploy smoke checks (pytest-smoke)")
    group.addoption(
        "--smoke-config",
        metavar="PATH",
        help="Smoke config (JSON or YAML) to generate checks from. Falls back to the "
        "smoke_config ini option, then the SMOKE_CONFIG environment variable.",
    )
    group.addoption(
        "--smoke-base-url",
        metavar="URL",
        help="Base URL that relative endpoints are joined to. Overrides base_url in the config; "
        "SMOKE_BASE_URL is used when neither is set.",
    )
    group.addoption(
        "--smoke-env",
        metavar="NAME",
        help="Apply the config's environments.NAME overrides (e.g. prod, staging).",
    )
    group.addoption(
        "--smoke-no-rollback",
        action="store_true",
        help="Dry run: report the verdict and what the rollback would do, change nothing.",
    )
    group.addoption(
        "--smoke-confirm-rollback",
        action="store_true",
        help="Pre-approve a rollback that needs ops confirmation (also SMOKE_CONFIRM_ROLLBACK=1).",
    )
    group.addoption(
        "--smoke-report",
        metavar="PATH",
        help="Write the versioned JSON report (checks, verdict, decision, rollback, timeline) for dashboards.",
    )
    group.addoption(
        "--smoke-markdown",
        metavar="PATH",
        help="Write the run as Markdown. Also appended to $GITHUB_STEP_SUMMARY when that is set.",
    )
    group.addoption(
        "--smoke-junit",
        metavar="PATH",
        help="Write a JUnit file with one suite per severity (critical, warning, passed).",
    )
    group.addoption(
        "--smoke-wait-rollout",
        metavar="deployment/NAME",
        help="Before any check, wait until the Deployment is fully rolled out, like kubectl rollout status "
        "(config wait_for_rollout; namespace and credentials from it or rollback_strategy).",
    )
    group.addoption(
        "--smoke-concurrency",
        type=int,
        metavar="N",
        help=f"Run up to N generated checks at once (config max_concurrency; default {DEFAULT_CONCURRENCY}). "
        "1 runs them one after another.",
    )
    group.addoption(
        "--smoke-fail-fast",
        action="store_true",
        help="Critical-first: once a required check fails, checks not yet started are skipped (config fail_fast).",
    )
    parser.addini("smoke_config", "Smoke config path, relative to the ini file's directory.", type="string")


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hooks

    pluginmanager.add_hookspecs(hooks)


def find_config_path(config: pytest.Config) -> Path | None:
    option = config.getoption("smoke_config")
    if option:
        return Path(option)
    ini = config.getini("smoke_config")
    if ini:
        base = config.inipath.parent if config.inipath else config.rootpath
        return base / ini
    if os.environ.get("SMOKE_CONFIG"):
        return Path(os.environ["SMOKE_CONFIG"])
    return None


@pytest.hookimpl(trylast=True)  # after conftests, which may register check types or set env
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{REQUIRED_MARKER}: a smoke check whose failure is critical and can trigger a rollback."
    )
    config.addinivalue_line(
        "markers", f"{OPTIONAL_MARKER}: a smoke check whose failure is a warning; the deployment continues."
    )
    path = find_config_path(config)
    if path is None:
        return
    from . import preflight
    from .config import ConfigError, load_config
    from .controller import SmokeController

    try:
        smoke_config = load_config(
            path,
            environment=config.getoption("smoke_env"),
            base_url=config.getoption("smoke_base_url"),
        )
        preflight.check(
            smoke_config,
            junit_path=config.getoption("smoke_junit"),
            wait_rollout=config.getoption("smoke_wait_rollout"),
        )
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    concurrency = config.getoption("smoke_concurrency")
    if concurrency is None:
        concurrency = smoke_config.data.get("max_concurrency", DEFAULT_CONCURRENCY)
    if concurrency < 1:
        raise pytest.UsageError(f"--smoke-concurrency must be 1 or more, got {concurrency}")
    fail_fast = bool(config.getoption("smoke_fail_fast") or smoke_config.data.get("fail_fast", False))
    per_host = int(smoke_config.data.get("max_concurrency_per_host", DEFAULT_PER_HOST))
    run = config.stash[smoke_run_key] = SmokeRun(smoke_config, concurrency, fail_fast, per_host)
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        import tempfile

        from .scheduler import HostSlots

        run.host_slots = HostSlots(os.path.join(tempfile.gettempdir(), f"pytest-smoke-{workerinput['testrunuid']}"), per_host)
    from .redact import RedactingLogRecords

    run.log_records = RedactingLogRecords(run.redactor)
    run.log_records.install()
    config.pluginmanager.register(CheckExecution(run), "smoke-check-execution")
    if not hasattr(config, "workerinput") and not config.getoption("collectonly"):
        config.pluginmanager.register(SmokeController(config, smoke_config, run.redactor), CONTROLLER_NAME)


def get_run(config: pytest.Config) -> SmokeRun | None:
    return config.stash.get(smoke_run_key, None)


def pytest_report_header(config: pytest.Config) -> list[str]:
    run = get_run(config)
    if run is None:
        return []
    sc = run.config
    if not sc.enabled:
        return [f"smoke: disabled (enabled: false in {sc.path}); no smoke checks generated"]
    counts = {kind: sum(1 for c in sc.checks if c.kind == kind) for kind in ("health", "dependency", "critical_path")}
    env = f", environment {sc.environment}" if sc.environment else ""
    lines = [
        f"smoke: {sc.path}{env}: {counts['health']} health, {counts['dependency']} dependency, "
        f"{counts['critical_path']} critical path check(s)",
    ]
    if sc.base_url:
        lines.append(f"smoke: base URL {run.redactor.text(sc.base_url)}")
    if sc.verify is False:
        lines.append("smoke: WARNING: verify_tls is false; TLS certificates are not checked")
    channels = sc.section("notifications")
    undefined = [n for n in sc.section("rollback_strategy").get("notify_channels") or [] if n not in channels]
    if undefined:
        lines.append(f"smoke: WARNING: notify_channels names channels not defined under notifications: {', '.join(undefined)}")
    return lines


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    report = yield
    if isinstance(collector, pytest.Session) and report.passed:
        run = get_run(collector.config)
        if run is not None and run.config.enabled and run.config.checks:
            # First, so generated checks run and report before custom tests.
            report.result.insert(0, SmokeFile.from_parent(collector, path=run.config.path.resolve()))
    return report


@pytest.hookimpl(trylast=True)  # after conftests, which may add markers here
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Custom tests in a smoke run carry their marker as properties, so the controller (which
    never collects under xdist) can classify them. Unmarked custom tests count as optional."""
    if get_run(config) is None:
        return
    for item in items:
        if not isinstance(item, SmokeItem):
            item.user_properties[:] = [(k, v) for k, v in item.user_properties if k not in ("smoke_kind", "smoke_required", "smoke_name")]
            item.user_properties.extend([encode("kind", "custom"), encode("required", is_required(item)), encode("name", item.name)])


def is_required(item: pytest.Item) -> bool:
    return item.get_closest_marker(REQUIRED_MARKER) is not None


# Marks that skip or expect failure by the user's choice (a PARTIAL run), unlike a skip at run time.
SKIP_MARKS = ("skip", "skipif", "xfail")


class SmokeFile(pytest.File):
    """The smoke config as a pytest collector: one item per configured check."""

    def collect(self) -> Iterator[pytest.Item]:
        run = get_run(self.config)
        assert run is not None
        for check in run.config.checks:
            yield SmokeItem.from_parent(
                self,
                name=check.node_name,
                callobj=_make_runner(run, check),
                keywords={check.kind: True},
                smoke_check=check,
            )


def _make_runner(run: SmokeRun, check: Check) -> Any:
    from .checks import CheckResult
    from .scheduler import NotStarted

    def smoke_check() -> None:
        key = check.node_name
        item_facts.clear()
        try:
            if run.scheduler is not None and key in run.scheduler and key not in run.consumed:
                run.consumed.add(key)  # a rerun (pytest-rerunfailures) sends the request again
                result = run.scheduler.result(key)
            elif run.stop_reason is not None:
                raise NotStarted(run.stop_reason)
            else:
                result = run.run_one(check)
        except NotStarted as exc:
            item_facts["outcome"] = "not_run"
            pytest.skip(f"not started: {exc.reason}")
        assert isinstance(result, CheckResult)
        item_facts.update(result.facts)
        item_facts["summary"] = result.summary
        if result.warnings:
            item_facts["warnings"] = result.warnings

    item_facts: dict[str, Any] = {}
    smoke_check.facts = item_facts  # type: ignore[attr-defined]
    return smoke_check


class CheckExecution:
    """Per-process plugin object: when and how generated checks run (pool, -x, fail_fast, budget).

    Registered in every process that runs items (xdist workers included). In a worker, which
    learns its items one batch at a time, each item runs its check when pytest runs the item and
    -n supplies the concurrency; elsewhere every selected check starts at once in a bounded pool.
    """

    def __init__(self, run: SmokeRun):
        self.run = run

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> None:
        run = self.run
        if session.config.getoption("collectonly") or hasattr(session.config, "workerinput"):
            return
        self._wait_for_rollout(session.config)
        controller = session.config.pluginmanager.get_plugin(CONTROLLER_NAME)
        if controller is not None:
            controller.record_tested_revision()
        run.budget  # noqa: B018 - the run budget starts now, after the wait
        items = [item for item in session.items if isinstance(item, SmokeItem)]
        if run.concurrency <= 1 or len(items) <= 1:
            return
        from .scheduler import CheckScheduler

        from .checks import target_host
        from .paths import CLEANUP_SECONDS

        run.scheduler = CheckScheduler(min(run.concurrency, len(items)), per_host=run.per_host)
        # A pooled item only waits for its future, which the run budget bounds (queueing behind
        # the per-host limit and a retry alone included): its backstop follows the budget.
        backstop = pytest.mark.timeout(run.budget.seconds + TIMEOUT_BACKSTOP_SECONDS + CLEANUP_SECONDS)
        for item in items:  # in item order: health, then dependencies, then critical paths
            item.add_marker(backstop, append=False)
            check = item.smoke_check
            host = target_host(check.kind, check.spec, run.config.base_url)
            run.scheduler.submit(check.node_name, lambda check=check: run.run_one(check), host=host)

    def _wait_for_rollout(self, config: pytest.Config) -> None:
        from . import rollout_wait
        from .kube import KubeError
        from .verdict import EXIT_ROLLOUT_NOT_READY

        controller = config.pluginmanager.get_plugin(CONTROLLER_NAME)
        try:
            found = rollout_wait.target_for(self.run.config.data, config.getoption("smoke_wait_rollout"))
            if found is None:
                return
            target, timeout = found
            say = controller.say if controller is not None else (lambda message: None)
            completed_at = rollout_wait.wait(target, timeout, lambda message: say(f"smoke: {message}"))
        except KubeError as exc:
            message = self.run.redactor.text(f"smoke: {exc}: no check was run and nothing was rolled back")
            if controller is not None:
                controller.rollout_failure = message
            pytest.exit(message, returncode=EXIT_ROLLOUT_NOT_READY)
        if controller is not None:
            controller.timeline.deployment_completed = completed_at
            controller.timeline.checks_started = time.time()

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        if isinstance(item, SmokeItem):
            return
        if self.run.stop_reason is None and self.run.budget.expired:
            self.run.stop_starting_checks(f"the run budget of {self.run.budget.seconds:g} s is exhausted")
        if self.run.stop_reason is not None:
            item.user_properties.append(encode("outcome", "not_run"))
            pytest.skip(f"not started: {self.run.stop_reason}")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """fail_fast: a critical failure stops every check that has not started."""
        if not self.run.fail_fast or not report.failed or report.when != "call":
            return
        props = decode(report.user_properties)
        if not props.get("required") or props.get("outcome") == "not_evaluated":
            return  # an optional check, or one the runner could not evaluate: not a critical failure
        self.run.stop_starting_checks(f"fail_fast after the critical failure of {props.get('name', report.nodeid)}")

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
        result = yield
        if self.run.scheduler is not None and (item.session.shouldfail or item.session.shouldstop):
            self.run.scheduler.cancel_pending("the run is stopping (-x / --maxfail)")
        return result

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
        report = yield
        # With a pool the item only waited; report how long its check really took.
        if isinstance(item, SmokeItem) and call.when == "call" and self.run.scheduler is not None:
            seconds = self.run.scheduler.seconds(item.smoke_check.node_name)
            if seconds is not None:
                report.duration = seconds
        if not isinstance(item, SmokeItem):
            outcome = self._custom_outcome(item, call, report)
            if outcome:
                # A new list: the item's own properties must not carry one phase's outcome to the next.
                redacted = [(key, self.run.redactor.value(value)) for key, value in outcome]
                report.user_properties = [*report.user_properties, *redacted]
        self._redact(report)
        return report

    @staticmethod
    def _custom_outcome(item: pytest.Item, call: pytest.CallInfo[None], report: pytest.TestReport) -> list[tuple[str, Any]]:
        """Narrowly: an assertion or a network error is a verdict on the service; any other
        exception in a developer's test (a KeyError, a TypeError) is a problem of the runner."""
        from .checks import is_service_failure

        if report.skipped and report.when in ("setup", "call"):
            if any(k == "smoke_outcome" for k, _ in report.user_properties):
                return []  # "not started": already said
            if any(item.get_closest_marker(name) for name in SKIP_MARKS):
                return [encode("outcome", "skipped")]
            return [encode("outcome", "not_run")]  # pytest.skip() at run time: it did not judge
        if report.failed and report.when == "call" and call.excinfo is not None:
            exc = call.excinfo.value
            if isinstance(exc, pytest.fail.Exception) or is_service_failure(exc):
                return [encode("outcome", "failed")]
            message = shorten(str(exc), 200)
            return [
                encode("outcome", "not_evaluated"),
                encode("reason", f"not evaluated: {call.excinfo.typename}: {message} (an error in the test code, not a verdict on the service)"),
            ]
        return []

    def _redact(self, report: pytest.TestReport) -> None:
        """Whatever pytest renders for a report (assertion values, -l locals, captured output,
        a skip or xfail reason) passes the redactor before any terminal, JUnit file or worker
        channel sees it."""
        redactor = self.run.redactor
        if isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:  # a skip: (path, line, reason)
            path, line, reason = report.longrepr
            report.longrepr = (path, line, redactor.text(reason))
        elif report.longrepr is not None:
            text = str(report.longrepr)
            redacted = redactor.text(text)
            if redacted != text:
                report.longrepr = RedactedLongrepr(redacted, getattr(report.longrepr, "reprcrash", None), redactor)
        if getattr(report, "wasxfail", None):
            report.wasxfail = redactor.text(report.wasxfail)
        report.sections = [(title, redactor.text(content)) for title, content in report.sections]

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        self.run.deselected_required.extend(
            [item.nodeid, item.name] for item in items if not isinstance(item, SmokeItem) and is_required(item)
        )

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """In an xdist worker, tell the controller which custom tests are required: it never
        collects, and a worker that crashes mid-test sends no properties."""
        workeroutput = getattr(session.config, "workeroutput", None)
        if workeroutput is not None:
            workeroutput["smoke_required_custom"] = [
                item.nodeid for item in session.items if not isinstance(item, SmokeItem) and is_required(item)
            ]
            workeroutput["smoke_deselected_required"] = list(self.run.deselected_required)

    def pytest_unconfigure(self) -> None:
        if self.run.scheduler is not None:
            self.run.scheduler.shutdown()
        if self.run.log_records is not None:
            self.run.log_records.uninstall()


class RedactedLongrepr:
    """A failure's text after redaction. Keeps the crash line (file, line, message), which the
    short summary ("FAILED test_x - AssertionError: ...") and JUnit's message attribute read."""

    def __init__(self, text: str, crash: Any, redactor: Any):
        self.text = text
        self.reprcrash = (
            None
            if crash is None
            else SimpleNamespace(path=crash.path, lineno=crash.lineno, message=redactor.text(crash.message))
        )

    def toterminal(self, out: Any) -> None:
        for line in self.text.splitlines():
            out.line(line)

    def __str__(self) -> str:
        return self.text


class SmokeItem(pytest.Function):
    """A generated check. A real ``pytest.Function``, so -k, -m, fixtures and plugins all apply."""

    def __init__(self, *, smoke_check: Check, **kwargs: Any):
        super().__init__(**kwargs)
        self.smoke_check = smoke_check
        marker = REQUIRED_MARKER if smoke_check.required else OPTIONAL_MARKER
        self.add_marker(getattr(pytest.mark, marker))
        from .paths import CLEANUP_SECONDS

        extra = CLEANUP_SECONDS if smoke_check.spec.get("cleanup") else 0.0
        self.add_marker(pytest.mark.timeout(smoke_check.timeout + TIMEOUT_BACKSTOP_SECONDS + extra))
        self.user_properties.extend(
            [
                encode("kind", smoke_check.kind),
                encode("name", smoke_check.name),
                encode("required", smoke_check.required),
                encode("rollback", smoke_check.rollback),
                encode("order", smoke_check.order),
                encode("severity", "critical" if smoke_check.required else "warning"),
            ]
        )

    # Properties one attempt adds; cleared before the next attempt (pytest-rerunfailures).
    ATTEMPT_KEYS = frozenset({"outcome", "failure_kind", "reason", "internal", "warning", *FACT_KEYS})

    def runtest(self) -> None:
        from .checks import CheckFailed, CheckNotEvaluated

        self.user_properties[:] = [(k, v) for k, v in self.user_properties if k[6:] not in self.ATTEMPT_KEYS]
        run = get_run(self.config)
        facts: dict[str, Any] = getattr(self.obj, "facts", {})
        outcome = "not_evaluated"  # anything that escapes below is the runner's problem
        try:
            super().runtest()
            outcome = facts.get("outcome", "passed")
        except CheckFailed as failure:
            outcome = "failed"
            self._add("failure_kind", failure.kind)
            self._add("reason", failure.reason)
            raise
        except CheckNotEvaluated as problem:
            self._add("failure_kind", problem.kind)
            self._add("reason", problem.reason)
            raise
        except pytest.skip.Exception:
            outcome = facts.get("outcome", "skipped")
            raise
        finally:
            self._add("outcome", outcome)
            for key in FACT_KEYS:
                if key in facts and run is not None:
                    self._add(key, run.redactor.value(facts[key]))
            if facts.get("warnings") and run is not None:
                self._add("warning", "; ".join(facts["warnings"]))

    def _add(self, key: str, value: Any) -> None:
        run = get_run(self.config)
        if isinstance(value, str) and run is not None:
            value = run.redactor.text(value)
        self.user_properties.append(encode(key, value))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> Any:  # type: ignore[override]
        from .checks import CheckFailed, CheckNotEvaluated
        from .redact import Redactor

        run = get_run(self.config)
        redactor = run.redactor if run else Redactor()
        if isinstance(excinfo.value, CheckFailed):
            failure = excinfo.value
            severity = "critical (required check)" if self.smoke_check.required else "warning (optional check)"
            details = f"\n{failure.details}" if failure.details else ""
            return _printable_lines(redactor.text(f"{failure.reason}\nseverity: {severity}{details}"))
        if isinstance(excinfo.value, CheckNotEvaluated):
            problem = excinfo.value
            effect = "inconclusive run (required check)" if self.smoke_check.required else "warning (optional check)"
            details = f"\n{problem.details}" if problem.details else ""
            if problem.internal:
                if self.config.getoption("fulltrace"):
                    details += "\n" + problem.internal.rstrip()
                else:
                    details += "\n(--full-trace shows the internal traceback)"
            return redactor.text(f"{problem.reason}\nseverity: {effect}; never counts toward a rollback{details}")
        # Anything else escaped the check runner: still ours, never the service's. No locals.
        return redactor.text(f"not evaluated: {excinfo.typename}: {excinfo.value} (a problem of the runner)")

    def reportinfo(self) -> tuple[Any, int | None, str]:  # noqa: D102
        return self.path, 0, self.name  # a line number: pytest locates a skip mark's report by it


def _printable_lines(text: str) -> str:
    """Control characters from a service never act on a terminal or a CI log."""
    from .checks.http import printable

    return "\n".join(printable(line) for line in text.split("\n"))
