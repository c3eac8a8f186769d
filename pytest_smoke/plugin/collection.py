"""Collection: one real ``pytest.Function`` per configured check, in a collector built from the
config path (the config usually lives in a dot-directory that pytest never recurses into)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generator, Iterator

import pytest

from ..model import FACT_KEYS, encode
from .run import OPTIONAL_MARKER, REQUIRED_MARKER, TIMEOUT_BACKSTOP_SECONDS, SmokeRun, get_run

if TYPE_CHECKING:
    from ..config import Check


class SmokeCollection:
    """Registered only when a smoke config was found: adds the config's items to the session."""

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(self, collector: pytest.Collector) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
        report = yield
        if isinstance(collector, pytest.Session) and report.passed:
            run = get_run(collector.config)
            if run is not None and run.config.enabled and run.config.checks:
                # First, so generated checks run and report before custom tests.
                report.result.insert(0, SmokeFile.from_parent(collector, path=run.config.path.resolve()))
        return report

    @pytest.hookimpl(trylast=True)  # after conftests, which may add markers here
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
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


# What one attempt of a generated check produced, for SmokeItem.runtest to report.
attempt_key = pytest.StashKey[dict[str, Any]]()


def _make_runner(run: SmokeRun, check: Check) -> Any:
    from ..checks import CheckResult
    from ..checks.scheduler import NotStarted

    def smoke_check(request: pytest.FixtureRequest) -> None:
        key = check.node_name
        attempt: dict[str, Any] = {}
        request.node.stash[attempt_key] = attempt
        try:
            if run.scheduler is not None and key in run.scheduler and key not in run.consumed:
                run.consumed.add(key)  # a rerun (pytest-rerunfailures) sends the request again
                result = run.scheduler.result(key)
            elif run.stop_reason is not None:
                raise NotStarted(run.stop_reason)
            else:
                result = run.run_one(check)
        except NotStarted as exc:  # NotFinished too: abandoned in flight
            attempt["outcome"] = "not_run"
            pytest.skip(f"{exc.word}: {exc.reason}")
        assert isinstance(result, CheckResult)
        attempt.update(result.facts)
        attempt["summary"] = result.summary
        if result.warnings:
            attempt["warnings"] = result.warnings

    return smoke_check


class SmokeItem(pytest.Function):
    """A generated check. A real ``pytest.Function``, so -k, -m, fixtures and plugins all apply."""

    def __init__(self, *, smoke_check: Check, **kwargs: Any):
        super().__init__(**kwargs)
        self.smoke_check = smoke_check
        marker = REQUIRED_MARKER if smoke_check.required else OPTIONAL_MARKER
        self.add_marker(getattr(pytest.mark, marker))
        from ..checks.critical_path import CLEANUP_SECONDS

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
        from ..checks import CheckFailed, CheckNotEvaluated

        self.user_properties[:] = [(k, v) for k, v in self.user_properties if k[6:] not in self.ATTEMPT_KEYS]
        run = get_run(self.config)
        self.stash[attempt_key] = {}
        outcome = "not_evaluated"  # anything that escapes below is the runner's problem
        try:
            super().runtest()
            outcome = self.stash[attempt_key].get("outcome", "passed")
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
            outcome = self.stash[attempt_key].get("outcome", "skipped")
            raise
        finally:
            facts = self.stash[attempt_key]
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
        from ..checks import CheckFailed, CheckNotEvaluated
        from ..redact import Redactor

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
    from ..checks.http import printable

    return "\n".join(printable(line) for line in text.split("\n"))
