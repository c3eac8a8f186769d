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

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Generator

import pytest

from ..decision.ledger import path_for as ledger_path_for
from ..fleet.merge import FleetResult, merge, read_reports
from ..fleet.orchestrate import FleetRun, report_path, run_fleet, target_command
from ..fleet.render import markdown, one_line, terminal_lines, write_json, write_junit
from .collection import check_of, is_required, target_of
from .execution import lf_filtered, rebuild_failure_text, why_deselected, why_never_collected
from .run import target_workers_key
from .stream import StreamReader, replay

if TYPE_CHECKING:
    from ..config import SmokeConfig
    from ..model import Fleet

# How often the session reads what a running target has streamed.
POLL_SECONDS = 0.1
# Options of this session a target's process receives as they are: (option name, flag).
# Selection (-k, -m, --lf, node ids) and the outputs are this session's; collection and run
# settings are each target's as they are here.
FORWARDED_FLAGS = (
    ("smoke_no_rollback", "--smoke-no-rollback"),
    ("smoke_confirm_rollback", "--smoke-confirm-rollback"),
    ("smoke_fail_fast", "--smoke-fail-fast"),
    ("noconftest", "--noconftest"),
    ("runxfail", "--runxfail"),
    ("strict_markers", "--strict-markers"),
    ("doctestmodules", "--doctest-modules"),
    ("setupplan", "--setup-plan"),
    ("setuponly", "--setup-only"),
    ("setupshow", "--setup-show"),
)
FORWARDED_VALUES = (
    ("smoke_hold_rollback", "--smoke-hold-rollback"),
    ("smoke_concurrency", "--smoke-concurrency"),
    ("smoke_wait_rollout", "--smoke-wait-rollout"),
    ("smoke_pushgateway", "--smoke-pushgateway"),
    ("maxfail", "--maxfail"),
    ("timeout", "--timeout"),
    ("importmode", "--import-mode"),
    ("confcutdir", "--confcutdir"),
    ("timeout_method", "--timeout-method"),
    ("reruns", "--reruns"),
    ("reruns_delay", "--reruns-delay"),
)
FORWARDED_LISTS = (
    ("smoke_expect_image", "--smoke-expect-image"),
    ("override_ini", "-o"),
    ("pythonwarnings", "-W"),
    ("only_rerun", "--only-rerun"),
    ("rerun_except", "--rerun-except"),
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
        self.ledger_path = ledger_path_for(out, self.run.run_id)
        self.items: dict[str, list[str]] = {}  # target -> the node ids its process runs
        # target -> [node id, name, required, why] of each of its items this session deselected
        self.deselected: dict[str, list[list[Any]]] = {}
        self.session: pytest.Session | None = None
        self.selected: list[str] = []  # the targets with items to run
        self.started: list[Path] = []  # the report of each target started
        self.problems: list[str] = []  # outputs that could not be written
        self.children: set[subprocess.Popen[bytes]] = set()  # the target processes running now
        self.children_lock = threading.Lock()
        self.stopping = ""  # a signal ended the session: no further target starts

    def pytest_deselected(self, items: list[pytest.Item]) -> None:
        """What -k, -m, --deselect or --lf left out reaches each target's run as left out: a
        required test among it makes that target PARTIAL, never verified, as in a one-target run."""
        why = why_deselected(self.config) if items else ""
        every = [target.target.name for target in self.targets if target.target is not None]
        for item in items:
            check = check_of(item)
            required = check.required if check is not None else is_required(item)
            name = target_of(item)
            for target in [name] if name else every:
                self.deselected.setdefault(target, []).append([item.nodeid, item.name, required, why])

    # -- run ---------------------------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> bool:
        if session.testsfailed:  # --continue-on-collection-errors too: a target would not know what is missing
            self.reason = f"{session.testsfailed} error(s) during collection: no target was started"
            raise session.Interrupted(self.reason)
        self.session = session
        self.items = self._items_by_target(session.items)
        self.selected = selected = [
            target.target.name for target in self.targets if target.target and target.target.name in self.items
        ]
        if not selected:
            self.reason = "no item of any target was selected: no target was started"
            return True
        self.run.pytest_args = self._forwarded_arguments()
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        try:
            self.result = run_fleet(self.fleet, selected, self.run, launch=self._run_target)
        except FileExistsError as exc:  # the ledger is written before the first target starts
            raise pytest.UsageError(
                f"{exc.filename} exists: a fleet run id is used once (SMOKE_FLEET_RUN_ID); no target was started"
            ) from None
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        return True

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        """As Ctrl-C: the running targets get the signal and end on their own terms (one checking
        stands down before any rollback; one rolling back reports what its rollback did), no
        further target starts, and the fleet report says there is no fleet verdict. A second
        signal is passed on only: the session still waits for its targets' reports."""
        first = not self.stopping
        self.stopping = signal.Signals(signum).name
        with self.children_lock:
            running = list(self.children)
        for child in running:
            with contextlib.suppress(OSError):
                child.send_signal(signum)
        if first:
            raise KeyboardInterrupt(self.stopping)

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
        arguments = ["--rootdir", str(config.rootpath)]
        if config.inipath is not None:
            arguments += ["-c", str(config.inipath)]
        arguments += [flag for name, flag in FORWARDED_FLAGS if config.getoption(name, False)]
        # The value this session runs with, 0 included (--timeout 0 over an ini's timeout); None
        # leaves the target to the same ini. Attached (--flag=value): a value may start with "-".
        for name, flag in FORWARDED_VALUES:
            value = config.getoption(name, None)
            if value is not None and value != "":
                arguments.append(_option(flag, value))
        for name, flag in FORWARDED_LISTS:
            arguments += [_option(flag, value) for value in config.getoption(name, None) or []]
        workers: tuple[str, ...] = config.stash.get(target_workers_key, ())
        arguments += workers
        # --lf and --sw are this session's: a target keeps a cache of its own (an ini's addopts may
        # still name them), never this session's.
        arguments.append(_option("-o", f"cache_dir={(self.run.out / '.cache').resolve()}"))
        arguments += _plugin_arguments(config.invocation_params.args)
        # What this session left out, and why: the target's run is PARTIAL for it, never verified.
        arguments.append(_option("--smoke-left-out", why_never_collected(config)))
        if lf_filtered(config):
            arguments.append(
                _option("--smoke-left-out-unknown", "--lf ran only what failed last time (in the session)")
            )
        return arguments

    def _run_target(self, name: str, wave: int | None, ledger_path: Path) -> Path | None:
        session = self.session
        assert session is not None
        stop = self.stopping or session.shouldfail or session.shouldstop
        if stop:
            self.say(f"fleet: target {name} not started: {stop}")
            return None
        report = report_path(self.run, name)
        self.started.append(report)
        stream = self.run.out / f"{name}.stream.jsonl"
        stream.unlink(missing_ok=True)
        command, environ = target_command(self.run, name, report, ledger_path)
        environ.pop("GITHUB_STEP_SUMMARY", None)  # the session writes the fleet's, with each target that is not green
        command += ["--smoke-report-stream", str(stream)]
        metrics = self.config.getoption("smoke_metrics")
        if metrics:  # one file per target, side by side: a textfile collector reads them all
            command += ["--smoke-metrics", str(_per_target(Path(metrics), name))]
        left_out = self.run.out / f"{name}.deselected.json"
        left_out.write_text(json.dumps(self.deselected.get(name, [])), encoding="utf-8")
        command += ["--smoke-deselected", str(left_out), *self.items[name]]
        log = self.run.out / f"{name}.log"
        self.say(f"fleet: target {name}" + (f" (wave {wave})" if wave else "") + f": its output: {log}")
        reader = StreamReader(stream)
        with open(log, "wb") as handle:
            child = subprocess.Popen(command, env=environ, stdout=handle, stderr=subprocess.STDOUT)
            with self.children_lock:
                self.children.add(child)
            if self.stopping:  # the signal came as it started: it gets it too
                with contextlib.suppress(OSError):
                    child.send_signal(signal.SIGTERM)
            try:
                while child.poll() is None:
                    self._replay(reader)
                    time.sleep(POLL_SECONDS)
            finally:
                child.wait()  # Ctrl-C reached it too: it ends on its own terms, its report says how
                with self.children_lock:
                    self.children.discard(child)
        self._replay(reader)
        return report if report.exists() else None

    def _replay(self, reader: StreamReader) -> None:
        if reader.broken:
            return
        with self.replaying:
            try:
                for event in reader.events():
                    replay(self.config, event, rebuild_failure_text)
            except Exception as exc:  # a bad line, a plugin's hook: the verdict is the target's report, not this
                reader.broken = True
                self.say(f"fleet: {reader.path}: could not be replayed ({exc.__class__.__name__}); see its log")

    # -- verdict -----------------------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> Generator[None, None, None]:
        if self.result is not None:
            session.exitstatus = self.result.exit_status
        else:
            self.result = self._no_verdict(int(session.exitstatus))
        try:
            return (yield)
        finally:
            self._publish()

    def _no_verdict(self, exit_status: int) -> FleetResult:
        """The run ended before a fleet verdict: what the targets that ended reported, no more. The
        outputs say so (a report of an earlier run must never stand for this one)."""
        written = [path for path in self.started if path.exists()]
        result = merge(
            self.fleet,
            str(self.run.config),
            read_reports(written),
            self.run.run_id,
            selected=set(self.selected),
            environment=self.run.environment,
        )
        result.ended_early = exit_status
        result.notes.append(f"no fleet verdict: {self.reason or 'the run ended early'}")
        return result

    def _publish(self) -> None:
        result = self.result
        assert result is not None
        config = self.config
        writes: list[tuple[str | None, Callable[[str], None]]] = [
            (config.getoption("smoke_report"), lambda path: write_json(result, path)),
            (config.getoption("smoke_junit"), lambda path: write_junit(result, path)),
            (config.getoption("smoke_markdown"), lambda path: _write_text(path, markdown(result), "w")),
            (os.environ.get("GITHUB_STEP_SUMMARY"), lambda path: _write_text(path, markdown(result), "a")),
        ]
        for path, write in writes:
            if not path:
                continue
            try:
                write(path)
            except OSError as exc:  # the verdict and the exit status stand; the output is missing
                self.problems.append(f"could not write {path} ({exc.strerror or exc.__class__.__name__})")

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        terminalreporter.section("smoke fleet verdict", sep="=")
        result = self.result
        if result is None or result.ended_early is not None:
            terminalreporter.write_line(f"smoke: no fleet verdict: {self.reason or 'the run ended early'}")
        if result is not None and (result.ended_early is None or self.started):
            for line in terminal_lines(result):
                terminalreporter.write_line(line)
        for problem in self.problems:
            terminalreporter.write_line(f"Warning: {one_line(problem)}", yellow=True)
        where = one_line(str(self.run.out))
        terminalreporter.write_line(f"Each target's report and output: {where}/TARGET.{{json,log}}")

    def say(self, message: str) -> None:
        terminal = self.config.pluginmanager.get_plugin("terminalreporter")
        if terminal is not None:
            terminal.write_line(one_line(message))


def _option(flag: str, value: object) -> str:
    """One argument, whatever the value starts with: ``--flag=value``, ``-oVALUE``."""
    return f"{flag}={value}" if flag.startswith("--") else f"{flag}{value}"


def _write_text(path: str, text: str, mode: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, mode, encoding="utf-8") as handle:
        handle.write(text)


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
