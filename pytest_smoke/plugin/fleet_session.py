"""A fleet session: ``pytest --smoke-config fleet.yaml`` with more than one target selected.

The session collects every selected target's checks (``fleet.yaml::eu-west-1::health[readiness]``),
so a node id, ``-k eu-west-1``, ``-m`` and ``--lf`` select across the fleet the way they select
any test. It never runs an item itself. Like xdist's controller, it hands each target's selected
items to a process of their own, which is exactly a single-target run (``--smoke-target NAME``:
its own verdict, decision, rollback, lease and marks), and replays the reports that process
streams (``stream``) through this session's hooks. The fleet's order and limits are
``fleet.orchestrate``'s: waves, ``--smoke-fleet-parallel``, the shared rollback ledger.

A target none of whose items was selected receives no request: it is "not selected", and the
fleet is PARTIAL. A developer's test that asks for no smoke fixture belongs to no target: it runs
in every target that runs.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generator

import pytest

from ..fleet.merge import FleetResult
from ..fleet.orchestrate import FleetRun, report_path, run_fleet, target_command
from ..fleet.render import markdown, one_line, terminal_lines, write_json, write_junit
from .collection import target_of
from .execution import lf_filtered, rebuild_failure_text, why_never_collected
from .run import target_workers_key
from .stream import StreamReader, replay

if TYPE_CHECKING:
    from ..config import SmokeConfig
    from ..model import Fleet

# How often the session reads what a running target has streamed.
POLL_SECONDS = 0.1
# Options of this session a target's process receives as they are: (option name, flag).
FORWARDED_FLAGS = (
    ("smoke_no_rollback", "--smoke-no-rollback"),
    ("smoke_confirm_rollback", "--smoke-confirm-rollback"),
    ("smoke_fail_fast", "--smoke-fail-fast"),
)
FORWARDED_VALUES = (
    ("smoke_hold_rollback", "--smoke-hold-rollback"),
    ("smoke_concurrency", "--smoke-concurrency"),
    ("smoke_wait_rollout", "--smoke-wait-rollout"),
    ("smoke_pushgateway", "--smoke-pushgateway"),
    ("maxfail", "--maxfail"),
    ("timeout", "--timeout"),
)


class FleetSession:
    """Registered instead of the single-target controller when a session selects several targets."""

    def __init__(self, config: pytest.Config, fleet: Fleet, targets: list[SmokeConfig]):
        self.config = config
        self.fleet = fleet
        self.targets = targets
        self.result: FleetResult | None = None
        self.reason = ""  # why there is no fleet verdict
        self.replaying = threading.Lock()  # one target's reports at a time through the session's hooks
        out = Path(config.getoption("smoke_fleet_out"))
        run_id = os.environ.get("SMOKE_FLEET_RUN_ID") or None
        self.run = FleetRun(
            config=targets[0].path,
            out=out,
            environment=config.getoption("smoke_env"),
            parallel=max(1, int(config.getoption("smoke_fleet_parallel"))),
            say=self.say,
        )
        if run_id:
            self.run.run_id = run_id
        self.items: dict[str, list[str]] = {}  # target -> the node ids its process runs
        self.session: pytest.Session | None = None

    # -- run ---------------------------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool:
        if session.testsfailed and not session.config.option.continue_on_collection_errors:
            raise session.Interrupted(f"{session.testsfailed} error(s) during collection: no target was started")
        self.session = session
        self.items = self._items_by_target(session.items)
        selected = [target.target.name for target in self.targets if target.target and target.target.name in self.items]
        if not selected:
            self.reason = "no item of any target was selected: no target was started"
            return True
        self.run.pytest_args = self._forwarded_arguments()
        try:
            self.result = run_fleet(self.fleet, selected, self.run, launch=self._run_target)
        except FileExistsError as exc:  # the ledger is written before the first target starts
            raise pytest.UsageError(
                f"{exc.filename} exists: a fleet run id is used once (SMOKE_FLEET_RUN_ID); no target was started"
            ) from None
        return True

    def _items_by_target(self, items: list[pytest.Item]) -> dict[str, list[str]]:
        names = [target.target.name for target in self.targets if target.target is not None]
        by_target: dict[str, list[str]] = {}
        everywhere = []  # a developer's test that asked for no smoke fixture
        for item in items:
            name = target_of(item)
            if name is None:
                everywhere.append(_argument(self.config, item.nodeid))
            else:
                by_target.setdefault(name, []).append(_argument(self.config, item.nodeid))
        if everywhere:
            for name in names:
                by_target.setdefault(name, []).extend(everywhere)
        return by_target

    def _forwarded_arguments(self) -> list[str]:
        config = self.config
        arguments = ["-p", "no:cacheprovider", "--rootdir", str(config.rootpath)]  # --lf is this session's
        if config.inipath is not None:
            arguments += ["-c", str(config.inipath)]
        arguments += [flag for name, flag in FORWARDED_FLAGS if config.getoption(name, False)]
        for name, flag in FORWARDED_VALUES:
            value = config.getoption(name, None)
            if value not in (None, 0, False, ""):
                arguments += [flag, str(value)]
        for image in config.getoption("smoke_expect_image") or []:
            arguments += ["--smoke-expect-image", image]
        workers: tuple[str, ...] = config.stash.get(target_workers_key, ())
        arguments += workers
        for override in config.getoption("override_ini", None) or []:
            arguments += ["-o", override]
        arguments += _plugin_arguments(config.invocation_params.args)
        # What this session left out, and why: the target's run is PARTIAL for it, never verified.
        arguments += ["--smoke-left-out", why_never_collected(config)]
        if lf_filtered(config):
            arguments += ["--smoke-left-out-unknown", "--lf ran only what failed last time (in the fleet session)"]
        return arguments

    def _run_target(self, name: str, wave: int | None, ledger_path: Path) -> Path | None:
        session = self.session
        assert session is not None
        if session.shouldfail or session.shouldstop:
            self.say(f"fleet: target {name} not started: {session.shouldfail or session.shouldstop}")
            return None
        report = report_path(self.run, name)
        stream = self.run.out / f"{name}.stream.jsonl"
        stream.unlink(missing_ok=True)
        command, environ = target_command(self.run, name, report, ledger_path)
        environ.pop("GITHUB_STEP_SUMMARY", None)  # the session writes the fleet's, with each target that is not green
        command += ["--smoke-report-stream", str(stream)]
        metrics = self.config.getoption("smoke_metrics")
        if metrics:  # one file per target, side by side: a textfile collector reads them all
            command += ["--smoke-metrics", str(_per_target(Path(metrics), name))]
        command += self.items[name]
        log = self.run.out / f"{name}.log"
        self.say(f"fleet: target {name}" + (f" (wave {wave})" if wave else "") + f": its output: {log}")
        reader = StreamReader(stream)
        with open(log, "wb") as handle:
            child = subprocess.Popen(command, env=environ, stdout=handle, stderr=subprocess.STDOUT)
            try:
                while child.poll() is None:
                    self._replay(reader)
                    time.sleep(POLL_SECONDS)
            finally:
                child.wait()  # Ctrl-C reached it too: it ends on its own terms, its report says how
        self._replay(reader)
        return report if report.exists() else None

    def _replay(self, reader: StreamReader) -> None:
        if reader.broken:
            return
        with self.replaying:
            try:
                for event in reader.events():
                    replay(self.config, event, rebuild_failure_text)
            except (ValueError, KeyError, TypeError) as exc:  # the verdict is the target's report, not this
                reader.broken = True
                self.say(f"fleet: {reader.path}: could not be replayed ({exc.__class__.__name__}); see its log")

    # -- verdict -----------------------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> Generator[None, None, None]:
        if self.result is not None:
            session.exitstatus = self.result.exit_status
        try:
            return (yield)
        finally:
            self._publish()

    def _publish(self) -> None:
        result = self.result
        if result is None:
            return
        config = self.config
        if config.getoption("smoke_report"):
            write_json(result, config.getoption("smoke_report"))
        if config.getoption("smoke_junit"):
            write_junit(result, config.getoption("smoke_junit"))
        text = markdown(result)
        for path in (config.getoption("smoke_markdown"), os.environ.get("GITHUB_STEP_SUMMARY")):
            if path:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                with open(path, "a" if path == os.environ.get("GITHUB_STEP_SUMMARY") else "w", encoding="utf-8") as f:
                    f.write(text)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        terminalreporter.section("smoke fleet verdict", sep="=")
        if self.result is None:
            terminalreporter.write_line(f"smoke: no fleet verdict: {self.reason or 'the run ended early'}")
            return
        for line in terminal_lines(self.result):
            terminalreporter.write_line(line)
        terminalreporter.write_line(
            f"Each target's report and output: {one_line(str(self.run.out))}/TARGET.{{json,log}}"
        )

    def say(self, message: str) -> None:
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None:
            terminal.write_line(one_line(message))


def _argument(config: pytest.Config, nodeid: str) -> str:
    """A node id as an argument that works from any directory: its path made absolute."""
    path, separator, rest = nodeid.partition("::")
    return str(config.rootpath / path) + separator + rest


def _per_target(path: Path, name: str) -> Path:
    return path.with_name(f"{path.stem}-{name}{path.suffix}")


def _plugin_arguments(args: tuple[str, ...] | list[str]) -> list[str]:
    """``-p NAME`` / ``-pNAME`` as given: a target loads the plugins the session loaded."""
    found: list[str] = []
    args = list(args)
    for index, arg in enumerate(args):
        if arg == "-p" and index + 1 < len(args):
            found += ["-p", args[index + 1]]
        elif arg.startswith("-p") and len(arg) > 2:
            found += ["-p", arg[2:]]
    return found
