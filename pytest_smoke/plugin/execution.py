"""Execution: when and how generated checks run, and what every report may show."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Generator

import pytest

from ..checks import CheckFailed, CheckNotEvaluated, allowed_seconds, is_service_failure, safe_to_retry, target_host
from ..checks.base import HELPERS
from ..checks.critical_path import cleanup_seconds
from ..checks.http import printable
from ..checks.scheduler import CheckScheduler
from ..model import PREFIX, decode, encode
from ..redact import Redactor, escape_controls, shorten
from .collection import SKIP_MARKS, backstop_mark, check_of, generated_items, is_required
from .run import TIMEOUT_BACKSTOP_SECONDS, SmokeRun

if TYPE_CHECKING:
    from ..model import Check


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
        if session.config.getoption("collectonly"):
            return
        if hasattr(session.config, "workerinput"):
            # An xdist worker runs its checks one by one, each after waiting for a host slot
            # shared with the other workers (at most the run budget).
            _add_backstops(session.config, generated_items(session.items), queueing=run.budget.seconds)
            return
        run.budget  # noqa: B018 - the run budget starts now, after the controller's rollout wait
        items = generated_items(session.items)
        if run.concurrency <= 1 or len(items) <= 1:
            _add_backstops(session.config, items)
            return
        run.scheduler = CheckScheduler(min(run.concurrency, len(items)), per_host=run.per_host)
        for item in items:  # in config order: health, then dependencies, then critical paths
            check = check_of(item)
            assert check is not None
            host = target_host(check, run.config.base_url)
            run.scheduler.submit(
                check.node_name,
                functools.partial(run.run_one, check),
                host=host,
                retry_safe=safe_to_retry(check),
                allowed_seconds=allowed_seconds(check),
                on_error=functools.partial(run.pooled_check_ended, check),
            )

    @pytest.hookimpl(tryfirst=True, optionalhook=True)
    def pytest_timeout_set_timer(self, item: pytest.Item, settings: Any) -> bool | None:
        """pytest-timeout's own hook, for a pooled check's item: its call only waits for the
        result, a wait with its own bound (the run budget, then "not finished"). A timer inside
        that bound would cut a healthy check's wait short, or with the thread method end the whole
        process before any verdict; none at all would leave a developer's hung fixture (an autouse
        readiness wait) unbounded. So whatever set the timeout (--timeout, an ini key, a mark added
        at any time), the timer starts as asked, longer by the wait's bound."""
        check = check_of(item)
        if check is None or self.run.scheduler is None or check.node_name not in self.run.scheduler:
            return None
        longer = settings._replace(timeout=settings.timeout + self.run.pooled_wait_bound())
        others = item.config.pluginmanager.subset_hook_caller("pytest_timeout_set_timer", remove_plugins=[self])
        others(item=item, settings=longer)  # pytest-timeout's own timer, and any other plugin's
        return True

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        if check_of(item) is not None:
            return
        if self.run.stop_reason is None and self.run.budget.expired:
            self.run.stop_starting_checks(f"the run budget of {self.run.budget.seconds:g} s is exhausted")
        if self.run.stop_reason is not None:
            item.user_properties.append(encode("outcome", "not_run"))
            pytest.skip(f"not started: {self.run.stop_reason}")

    @pytest.hookimpl(tryfirst=True)  # before the terminal and JUnit read the failure
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """fail_fast: a critical failure stops every check that has not started."""
        rebuild_failure_text(report)
        if not self.run.fail_fast or not report.failed or report.when != "call":
            return
        props = decode(report.user_properties)
        if not props.get("required") or props.get("outcome") == "not_evaluated":
            return  # an optional check, or one the runner could not evaluate: not a critical failure
        self.run.stop_starting_checks(f"fail_fast after the critical failure of {props.get('name', report.nodeid)}")

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(
        self, item: pytest.Item, nextitem: pytest.Item | None
    ) -> Generator[None, object, object]:
        result = yield
        if self.run.scheduler is not None and (item.session.shouldfail or item.session.shouldstop):
            self.run.scheduler.cancel_pending("the run is stopping (-x / --maxfail)")
        return result

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        check = check_of(item)
        if check is not None:
            self._generated_report(item, check, call, report)
        else:
            outcome = self._custom_outcome(item, call, report)
            if outcome:
                # A new list: the item's own properties must not carry one phase's outcome to the next.
                redacted = [(key, self.run.redactor.value(value)) for key, value in outcome]
                report.user_properties = [*report.user_properties, *redacted]
        self._redact(report)
        return report

    def _generated_report(
        self, item: pytest.Item, check: Check, call: pytest.CallInfo[None], report: pytest.TestReport
    ) -> None:
        # With a pool the item only waited; report how long its check really took.
        if call.when == "call" and self.run.scheduler is not None:
            seconds = self.run.scheduler.seconds(check.node_name)
            if seconds is not None:
                report.duration = seconds
        path = report.nodeid.partition("::")[0]
        # Where the check is written: the config file and, for a failure, the check's line.
        line = self.run.config.line_of(check) if report.failed else None
        report.location = (path, None if line is None else line - 1, report.location[2])
        if report.failed and call.excinfo is not None:
            reason, text = describe_failure(
                call.excinfo.value, check, self.run.redactor, bool(item.config.getoption("fulltrace"))
            )
            if item.config.getoption("tbstyle") == "line":
                text = reason  # as pytest's own --tb=line: the crash line, nothing more
            report.longrepr = FailureText(text, CrashLine(path, line or 0, reason))  # type: ignore[assignment]
            # A conftest fixture (autouse: a login, a readiness wait) that found the service failing
            # through smoke_http: a verdict on the service, for this check as for a custom test.
            found = [(key, self.run.redactor.value(value)) for key, value in _fixture_service_failure(call, report)]
            report.user_properties = [*report.user_properties, *found]

    @staticmethod
    def _custom_outcome(
        item: pytest.Item, call: pytest.CallInfo[None], report: pytest.TestReport
    ) -> list[tuple[str, Any]]:
        """Narrowly: an assertion or a network error is a verdict on the service; any other
        exception in a developer's test (a KeyError, a TypeError) is a problem of the runner."""
        if report.skipped and report.when in ("setup", "call"):
            if any(k == "smoke_outcome" for k, _ in report.user_properties):
                return []  # "not started": already said
            if any(item.get_closest_marker(name) for name in SKIP_MARKS):
                return [encode("outcome", "skipped")]
            return [encode("outcome", "not_run")]  # pytest.skip() at run time: it did not judge
        if not report.failed or call.excinfo is None:
            return []
        exc = call.excinfo.value
        if isinstance(exc, CheckFailed) and report.when in ("setup", "call"):
            # Raised through the smoke fixtures (smoke_http), in the test or in one of its fixtures
            # (a login, a readiness wait): a verdict on the service, as a generated check's failure.
            return _service_failure(exc)
        if isinstance(exc, CheckNotEvaluated) and report.when in ("setup", "call"):
            # Raised through the smoke fixtures for a limit of ours (a body over smoke_http's cap):
            # it says why, and it is never a verdict on the service.
            return [encode("outcome", "not_evaluated"), encode("reason", exc.reason)]
        if report.when == "call":
            return _custom_test_failure(item, call.excinfo)
        return []

    def _redact(self, report: pytest.TestReport) -> None:
        """Whatever pytest renders for a report (assertion values, -l locals, captured output,
        a skip or xfail reason) passes the redactor before any terminal, JUnit file or worker
        channel sees it."""
        redactor = self.run.redactor

        def safe(text: Any) -> str:
            # A body a custom test read may hold ESC or CR: never a forged "passed" line in a CI log.
            return escape_controls(redactor.text(text))

        def safe_diff(text: str) -> str:  # an assertion diff cuts values with no mark at the cut
            return safe(redactor.mask_line_edges(text) if "identical " in text else text)

        if isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:  # a skip: (path, line, reason)
            path, line, reason = report.longrepr
            report.longrepr = (path, line, safe(reason))
        elif report.longrepr is not None:
            text = str(report.longrepr)
            redacted = safe_diff(text)
            if redacted != text:
                # Duck-typed like pytest's own reprs (toterminal, reprcrash, str): no private import.
                crash = getattr(report.longrepr, "reprcrash", None)
                crash_line = (
                    None
                    if crash is None
                    else CrashLine(str(crash.path), int(crash.lineno), safe_diff(str(crash.message)))
                )
                report.longrepr = FailureText(redacted, crash_line)  # type: ignore[assignment]
        if getattr(report, "wasxfail", None):
            report.wasxfail = safe(report.wasxfail)
        report.sections = [(title, safe(content)) for title, content in report.sections]
        # A test's own record_property values go to --junitxml as they are.
        report.user_properties = [
            (key, value if str(key).startswith(PREFIX) else _safe_value(redactor, value))
            for key, value in report.user_properties
        ]

    @pytest.hookimpl(tryfirst=True)
    def pytest_warning_recorded(self, warning_message: Any) -> None:
        """A warning's text (a test may warn with what a service said) is shown in the warnings
        summary: redacted and escaped first, as every other output."""
        message = warning_message.message
        text = str(message)
        shown = escape_controls(self.run.redactor.text(text))
        if shown == text:
            return
        if isinstance(message, str):
            warning_message.message = shown
        else:
            message.args = (shown,)

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        """Every item left out, generated or custom, is listed in the verdict with why."""
        why = why_deselected(items[0].config) if items else ""  # one cache read per call, not per item
        for item in items:
            check = check_of(item)
            required = check.required if check is not None else is_required(item)
            self.run.deselected.append([item.nodeid, item.name, required, why])

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """In an xdist worker, tell the controller which custom tests are required: it never
        collects, and a worker that crashes mid-test sends no properties."""
        workeroutput = getattr(session.config, "workeroutput", None)
        if workeroutput is not None:
            workeroutput["smoke_required_custom"] = [
                item.nodeid for item in session.items if check_of(item) is None and is_required(item)
            ]
            workeroutput["smoke_deselected"] = list(self.run.deselected)

    def pytest_unconfigure(self) -> None:
        if self.run.scheduler is not None:
            self.run.scheduler.shutdown()
        HELPERS.close_idle()
        if self.run.log_records is not None:
            self.run.log_records.uninstall()


BY_SELECTION = "deselected (-k, -m or --deselect)"


def lf_filtered(config: pytest.Config) -> bool:
    """--lf with failures on record: pytest collects only what failed last time and drops the
    rest before any hook sees it (a custom test in a skipped file is never known to the run)."""
    cache = getattr(config, "cache", None)
    return bool(config.getoption("lf", False) and cache is not None and cache.get("cache/lastfailed", {}))


def why_never_collected(config: pytest.Config) -> str:
    """Why a check of the config was never collected."""
    return "not collected: --lf runs only what failed last time" if lf_filtered(config) else BY_SELECTION


def why_deselected(config: pytest.Config) -> str:
    """Why pytest deselected an item. It does not say which selection did, so where two may
    have, the reason names both."""
    cache = getattr(config, "cache", None)
    if config.getoption("stepwise", False) and cache is not None and cache.get("cache/stepwise", None):
        return "deselected (-k, -m, --deselect, or --sw: before the test that failed last time)"
    if lf_filtered(config):
        return "deselected (-k, -m, --deselect, or --lf: it did not fail last time)"
    return BY_SELECTION


def _timeout_plugin_loaded(config: pytest.Config) -> bool:
    """pytest-timeout, registered by its entry point ("timeout") or by module (``-p pytest_timeout``)."""
    return any(config.pluginmanager.hasplugin(name) for name in ("timeout", "pytest_timeout"))


def _add_backstops(config: pytest.Config, items: list[pytest.Item], queueing: float = 0.0) -> None:
    """Checks run one by one in this process: where pytest-timeout runs, each gets a timer past its
    own deadline (and ``queueing``, the longest wait for a host slot), a backstop against a bug of
    ours: the check normally ends first, cleanly."""
    if not _timeout_plugin_loaded(config):  # the mark is unknown under -p no:timeout
        return
    for item in items:
        check = check_of(item)
        assert check is not None
        extra = cleanup_seconds(check.spec) if check.kind == "critical_path" else 0.0
        item.add_marker(backstop_mark(check.timeout + TIMEOUT_BACKSTOP_SECONDS + extra + queueing), append=False)


def _safe_value(redactor: Redactor, value: Any) -> Any:
    value = redactor.value(value)
    return escape_controls(value) if isinstance(value, str) else value


def _service_failure(failure: Any) -> list[tuple[str, Any]]:
    return [encode("outcome", "failed"), encode("reason", failure.reason), encode("failure_kind", failure.kind)]


def _fixture_service_failure(call: pytest.CallInfo[None], report: pytest.TestReport) -> list[tuple[str, Any]]:
    """A CheckFailed that a fixture raised during setup (through smoke_http): the service failed."""
    if (
        report.when == "setup"
        and report.failed
        and call.excinfo is not None
        and isinstance(call.excinfo.value, CheckFailed)
    ):
        return _service_failure(call.excinfo.value)
    return []


def _custom_test_failure(item: pytest.Item, excinfo: pytest.ExceptionInfo[BaseException]) -> list[tuple[str, Any]]:
    """A developer's test failed in its call: a verdict on the service only for an assertion
    (pytest.fail included) or a network error."""
    exc = excinfo.value
    if not _test_function_ran(item, excinfo):
        # pytest failed it without calling it (an async def with no async plugin, on pytest 9):
        # pytest could not run it, whatever the exception says.
        message = shorten(str(exc), 200)
        return [
            encode("outcome", "not_evaluated"),
            encode(
                "reason",
                f"not evaluated: pytest could not run it ({message}); a problem of the runner, not of the service",
            ),
        ]
    if isinstance(exc, pytest.fail.Exception) or is_service_failure(exc):
        return [encode("outcome", "failed")]
    message = shorten(str(exc), 200)
    return [
        encode("outcome", "not_evaluated"),
        encode(
            "reason",
            f"not evaluated: {excinfo.typename}: {message} (an error in the test code, not a verdict on the service)",
        ),
    ]


def describe_failure(exc: BaseException, check: Check, redactor: Redactor, full_trace: bool) -> tuple[str, str]:
    """The one-line reason and the full text of a generated check's failure, redacted. Only the
    check runner's own words: never a traceback of ours, never local variables."""
    if isinstance(exc, CheckFailed):
        severity = "critical (required check)" if check.required else "warning (optional check)"
        details = f"\n{exc.details}" if exc.details else ""
        text = redactor.text(f"{exc.reason}\nseverity: {severity}{details}")
        text = "\n".join(
            printable(line) for line in text.split("\n")
        )  # a service's control characters never act on a terminal
        return redactor.text(printable(exc.reason)), text
    if isinstance(exc, CheckNotEvaluated):
        effect = "inconclusive run (required check)" if check.required else "warning (optional check)"
        details = f"\n{exc.details}" if exc.details else ""
        if exc.internal:
            details += "\n" + exc.internal.rstrip() if full_trace else "\n(--full-trace shows the internal traceback)"
        return redactor.text(exc.reason), redactor.text(
            f"{exc.reason}\nseverity: {effect}; never counts toward a rollback{details}"
        )
    reason = redactor.text(f"not evaluated: {type(exc).__name__}: {shorten(str(exc), 200)} (a problem of the runner)")
    return reason, reason


class CrashLine:
    """Where and why, in one line: what the short summary, ``--tb=line`` and JUnit's ``message``
    attribute show. Duck-typed like pytest's own crash location: no private import."""

    def __init__(self, path: str, lineno: int, message: str):
        self.path = path
        self.lineno = lineno
        self.message = message

    def toterminal(self, out: Any) -> None:
        out.line(str(self))

    def __str__(self) -> str:
        return f"{self.path}:{self.lineno}: {self.message}"


class FailureText:
    """A failure shown as plain text (redacted, or a check's own description), with its crash line."""

    def __init__(self, text: str, crash: CrashLine | None):
        self.text = text
        self.reprcrash = crash

    def toterminal(self, out: Any) -> None:
        for line in self.text.splitlines():
            out.line(line)

    def __str__(self) -> str:
        return self.text


def rebuild_failure_text(report: pytest.TestReport) -> None:
    """Under xdist a report crosses to the controller with its failure as a plain string; give a
    generated check's failure its one-line reason back from the properties it carries."""
    if isinstance(report.longrepr, str) and report.failed:
        props = decode(report.user_properties)
        if props.get("reason") and props.get("kind") not in (None, "custom"):
            line = report.location[1]
            crash = CrashLine(report.location[0], 0 if line is None else line + 1, str(props["reason"]))
            report.longrepr = FailureText(report.longrepr, crash)  # type: ignore[assignment]


def _test_function_ran(item: pytest.Item, excinfo: pytest.ExceptionInfo[BaseException]) -> bool:
    """Whether the failure came from inside the test function (a frame of it is on the traceback).
    Items that are not Python functions (a plugin's own items) are taken at their word."""
    code = getattr(getattr(item, "obj", None), "__code__", None)
    if code is None:
        return True
    return any(entry.frame.code.raw is code for entry in excinfo.traceback)
