"""Collection: the smoke config becomes a test module whose checks are real parametrized tests.

Each section of the config is one test function (``health``, ``dependency``, ``critical_path``)
parametrized by its checks, through pytest's own ``pytest_generate_tests``. So an item is what
pytest makes of any parametrized test: ``smoke-test-hook.json::health[readiness]`` is the name
``health`` with the parameter ``readiness``, and node ids, ``--lf``, ``--ff``, ``--sw``, ``-k``
and ``-m`` treat it like any other test.

The config usually lives in a dot-directory pytest never recurses into, so the module is added to
the session unless the command line names the config itself (then pytest's own argument matching
selects the checks: ``pytest --smoke-config k.json 'k.json::health[a]'`` runs one check).
"""

from __future__ import annotations

import functools
import os
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Generator, Iterable, cast

import pytest

from ..model import encode
from .generated import run_generated_check
from .run import OPTIONAL_MARKER, REQUIRED_MARKER, SmokeRun, get_run

if TYPE_CHECKING:
    from ..model import Check

# The check a generated item runs; custom tests have none.
check_key = pytest.StashKey["Check"]()
# The fleet target of a generated check (the name of its SmokeTarget).
target_key = pytest.StashKey[str]()
# The argument of the generated test functions that receives the check.
CHECK_ARGUMENT = "smoke_check"
# The fixture that names the fleet target; a developer's test that needs it runs once per target.
TARGET_ARGUMENT = "smoke_target"
# One test function per config section, in config order.
SECTION_FUNCTIONS = ("health", "dependency", "critical_path", "metric")


def check_of(item: pytest.Item) -> Check | None:
    """The configured check a generated item runs, or None for a custom test."""
    return item.stash.get(check_key, None)


def is_required(item: pytest.Item) -> bool:
    return item.get_closest_marker(REQUIRED_MARKER) is not None


# Marks that skip or expect failure by the user's choice (a PARTIAL run), unlike a skip at run time.
SKIP_MARKS = ("skip", "skipif", "xfail")


class SmokeCollection:
    """Registered only when a smoke config was found: puts the config's checks in the session."""

    def __init__(self, run: SmokeRun):
        self.run = run
        self.config_path = run.config.path.resolve()

    def pytest_collect_file(self, file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
        """The config named on the command line (``k.json`` or ``k.json::health[a]``)."""
        if parent.session.isinitpath(file_path) and file_path.resolve() == self.config_path and self._has_checks():
            return SmokeFile.from_parent(parent, path=file_path)
        return None

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(
        self, collector: pytest.Collector
    ) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
        report = yield
        if (
            isinstance(collector, pytest.Session)
            and report.passed
            and self._has_checks()
            and self._adds_every_check(collector)
        ):
            # First, so generated checks run and report before custom tests.
            # The path as given, not resolved: a symlinked config keeps its own name in node ids.
            report.result.insert(0, SmokeFile.from_parent(collector, path=Path(os.path.abspath(self.run.config.path))))
        return report

    def _has_checks(self) -> bool:
        return any(target.enabled and target.checks for target in self.run.targets)

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """With a fleet, a developer's test (every one asks for ``smoke_target``: see
        plugin/per_target.py) runs once per target, the target in its id: ``test_login[eu-west-1]``."""
        if TARGET_ARGUMENT not in metafunc.fixturenames or CHECK_ARGUMENT in metafunc.fixturenames:
            return
        names = [target.target.name for target in self.run.targets if target.target is not None]
        if names:
            metafunc.parametrize(TARGET_ARGUMENT, names, ids=names, scope="session")

    def _adds_every_check(self, session: pytest.Session) -> bool:
        """A plain run (no arguments, or folders and files) gets every check. One that names the
        config, or selects tests by node id, gets exactly what it names."""
        invocation_dir = session.config.invocation_params.dir
        for arg in session.config.args:
            path_part, selects, _ = arg.partition("::")
            if selects or (invocation_dir / path_part).resolve() == self.config_path:
                return False
        return True

    @pytest.hookimpl(trylast=True)  # after other plugins' reordering (pytest-randomly) and conftests' markers
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        """Generated checks first, in config order, whatever the order of custom tests. Custom
        tests carry their marker as properties, so the controller (which never collects under
        xdist) can classify them. Unmarked custom tests count as optional."""
        checks = {item: check for item in items if (check := check_of(item)) is not None}
        position = {target.target.name: index for index, target in enumerate(self.run.targets) if target.target}
        generated = sorted(checks, key=lambda item: (position.get(target_of(item) or "", 0), checks[item].order))
        custom = [item for item in items if check_of(item) is None]
        items[:] = [*generated, *custom]
        for item in custom:
            item.user_properties[:] = [
                (k, v) for k, v in item.user_properties if k not in ("smoke_kind", "smoke_required", "smoke_name")
            ]
            item.user_properties.extend(
                [encode("kind", "custom"), encode("required", is_required(item)), encode("name", item.name)]
            )


class SmokeFile(pytest.Module):
    """The smoke config as a test module: its object is built from the config, never imported."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        run = get_run(self.config)
        assert run is not None
        self.obj = _checks_module(run)

    def istestfunction(self, obj: object, name: str) -> bool:
        """The section functions are the tests, whatever ``python_functions`` says."""
        return name in SECTION_FUNCTIONS and callable(obj)

    def istestclass(self, obj: object, name: str) -> bool:
        return False

    def collect(self) -> list[pytest.Item | pytest.Collector]:
        run = get_run(self.config)
        assert run is not None
        if run.config.target is not None:
            # A fleet target's checks sit under its name: fleet.yaml::eu-west-1::health[readiness].
            return [
                SmokeTarget.from_parent(self, name=target.target.name)
                for target in run.targets
                if target.target is not None and target.enabled and target.checks
            ]
        return _generated_items(super().collect())


class SmokeTarget(pytest.Class):
    """A fleet target's checks, under the target's name in every node id (``-k eu-west-1``)."""

    def istestfunction(self, obj: object, name: str) -> bool:
        return name in SECTION_FUNCTIONS and callable(obj)

    def collect(self) -> list[pytest.Item | pytest.Collector]:
        items = _generated_items(super().collect())
        for item in items:
            item.stash[target_key] = self.name
        return items


def target_of(item: pytest.Item) -> str | None:
    """The fleet target an item checks: a generated check's, or the one a developer's test was
    parametrized with (it asked for ``smoke_target`` or a smoke fixture). None: every target's."""
    name = item.stash.get(target_key, None)
    if name is None and isinstance(item, pytest.Function) and hasattr(item, "callspec"):
        param = item.callspec.params.get(TARGET_ARGUMENT)
        name = param if isinstance(param, str) else None
    return name


def _generated_items(collected: Iterable[pytest.Item | pytest.Collector]) -> list[pytest.Item | pytest.Collector]:
    collected = list(collected)
    for item in collected:
        if isinstance(item, pytest.Function) and hasattr(item, "callspec"):
            check = cast("Check", item.callspec.params[CHECK_ARGUMENT])
            item.stash[check_key] = check
            item.extra_keyword_matches.add(check.name)  # -k matches the name as written, not only its id
            item.user_properties.extend(_static_properties(check))
            # CheckExecution replaces a generated check's failure text with the check's own
            # words: pytest need not render (parse the source of every frame) what is thrown away.
            item.repr_failure = _words_only  # type: ignore[method-assign]
    return collected


def _words_only(excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
    return f"{excinfo.typename}: {excinfo.value}"


def _static_properties(check: Check) -> list[tuple[str, Any]]:
    return [
        encode("kind", check.kind),
        encode("name", check.name),
        encode("required", check.required),
        encode("rollback", check.rollback),
        *([encode("precondition", True)] if check.precondition else []),
        encode("order", check.order),
        encode("severity", "critical" if check.required else "warning"),
    ]


def _checks_module(run: SmokeRun) -> types.ModuleType:
    """A module object with one test function per section and a ``pytest_generate_tests`` that
    parametrizes each by its checks: ids are the check names, marks say required or optional."""
    module = types.ModuleType(run.config.path.name)
    # A fleet's targets are classes of the module, named after them; a plain config is the module.
    sections: dict[str | None, dict[str, list[Any]]] = {}
    for target in run.targets:
        name = target.target.name if target.target is not None else None
        by_kind: dict[str, list[Any]] = {kind: [] for kind in SECTION_FUNCTIONS}
        sections[name] = by_kind
        for check in target.checks:
            marks = [_marker(REQUIRED_MARKER if check.required else OPTIONAL_MARKER)]
            by_kind[check.kind].append(pytest.param(check, id=check.param_id, marks=marks))
        holder: Any = module
        if name is not None:
            holder = type(name, (), {"__module__": module.__name__})
            setattr(module, name, holder)  # pytest.Class finds its object by its name
        for kind, params in by_kind.items():
            if params:
                function = _section_function(kind, run_generated_check)
                setattr(holder, kind, staticmethod(function) if holder is not module else function)

    def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
        # Read, not taken: pytest collects the module twice under --keep-duplicates.
        target = metafunc.cls.__name__ if metafunc.cls is not None else None
        metafunc.parametrize(CHECK_ARGUMENT, sections[target][metafunc.function.__name__])

    module.pytest_generate_tests = pytest_generate_tests  # type: ignore[attr-defined]
    return module


@functools.lru_cache(maxsize=64)  # checks with the same timeout share one mark
def backstop_mark(seconds: float) -> pytest.MarkDecorator:
    """pytest-timeout's mark for a generated check run one by one (see CheckExecution): on the
    check's own call only, so a developer's fixture (an autouse readiness wait) is never cut by a
    timer meant for the check."""
    return pytest.mark.timeout(seconds, func_only=True)


@functools.lru_cache(maxsize=8)  # a thousand checks share two marks; a mark is immutable
def _marker(name: str) -> pytest.MarkDecorator:
    decorator: pytest.MarkDecorator = getattr(pytest.mark, name)
    return decorator


def _section_function(kind: str, runner: Callable[[pytest.FixtureRequest, Check], None]) -> Callable[..., None]:
    def generated_check(smoke_check: Check, request: pytest.FixtureRequest) -> None:
        runner(request, smoke_check)

    generated_check.__name__ = generated_check.__qualname__ = kind
    generated_check.__doc__ = f"The {kind} checks of the smoke config."
    return generated_check


def generated_items(items: Iterable[pytest.Item]) -> list[pytest.Item]:
    return [item for item in items if check_of(item) is not None]
