"""A fleet session's target process sends its test reports to the session (``--smoke-report-stream``).

The session (``fleet_session``) runs each target as its own pytest process, like an xdist
worker, and replays the reports it streams through pytest's own hooks: the terminal, ``--lf``,
``--junitxml`` and every plugin of the session see each target's items as if run there. Reports
cross as pytest serializes them for xdist (``pytest_report_to_serializable``), after this
process redacted them (``execution``), one JSON object per line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any, Callable, Iterator

import pytest

# One line is one report: a longer one is not ours (a report is kilobytes; captured output is capped
# by what the check reads).
MAX_LINE_BYTES = 16 * 1024 * 1024


class ReportStream:
    """Registered in a target process started by a fleet session: writes what the session replays."""

    def __init__(self, config: pytest.Config, path: Path):
        self.config = config
        self.handle: IO[str] = open(path, "w", encoding="utf-8")  # noqa: SIM115 - open for the whole run

    def _send(self, event: str, **fields: Any) -> None:
        # What is not data (xdist's WorkerController on a report its controller received) crosses as null.
        self.handle.write(json.dumps({"event": event, **fields}, default=_not_data) + "\n")
        self.handle.flush()  # the session reads as the run goes

    def _serialized(self, report: pytest.TestReport | pytest.CollectReport) -> Any:
        data = self.config.hook.pytest_report_to_serializable(config=self.config, report=report)
        if isinstance(data, dict):
            data.pop("node", None)  # the xdist worker that ran it here: nothing to the session
        return data

    def pytest_runtest_logstart(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        self._send("logstart", nodeid=nodeid, location=list(location))

    @pytest.hookimpl(trylast=True)  # after this process's own plugins changed the report
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._send("report", data=self._serialized(report))

    def pytest_runtest_logfinish(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        self._send("logfinish", nodeid=nodeid, location=list(location))

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:  # the session shows it: the target's verdict will say "no verdict"
            self._send("collectreport", data=self._serialized(report))

    def pytest_unconfigure(self) -> None:
        self.handle.close()


def _not_data(value: object) -> None:
    return None


class StreamReader:
    """The session's side: reads the complete lines a target wrote so far, from where it left off."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0
        self.broken = False  # a line that is not a report: the rest is not replayed

    def events(self) -> Iterator[dict[str, Any]]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                while True:
                    line = handle.readline(MAX_LINE_BYTES + 1)
                    if not line.endswith(b"\n"):  # not written whole yet (or too long): read again later
                        if len(line) > MAX_LINE_BYTES:
                            raise ValueError(f"{self.path}: a line over {MAX_LINE_BYTES} bytes is not a report")
                        return
                    self.offset += len(line)
                    event = json.loads(line)
                    if isinstance(event, dict):
                        yield event
        except FileNotFoundError:
            return


def replay(config: pytest.Config, event: dict[str, Any], rebuild: Callable[[pytest.TestReport], None]) -> None:
    """One streamed event through the session's hooks, as xdist's controller does for a worker's."""
    hook = config.hook
    if event["event"] in ("logstart", "logfinish"):
        location = tuple(event["location"])
        getattr(hook, f"pytest_runtest_{event['event']}")(nodeid=event["nodeid"], location=location)
        return
    data = event["data"]
    if isinstance(data.get("longrepr"), list):  # a skip's (path, line, reason): JSON made it a list
        data["longrepr"] = tuple(data["longrepr"])
    report = hook.pytest_report_from_serializable(config=config, data=data)
    if event["event"] == "collectreport":
        hook.pytest_collectreport(report=report)
    else:
        rebuild(report)
        hook.pytest_runtest_logreport(report=report)
