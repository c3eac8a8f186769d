"""Fleets: one config, many targets, a verdict per target and one for the fleet.

A target is exactly one run of the plugin (``pytest --smoke-config fleet.yaml --smoke-target
NAME``): its own verdict, decision, rollback, lease and marks. This package only orders target
runs and reads what they reported; it never talks to a target itself.

- :mod:`.merge`: the targets' JSON reports, checked against the config, into one fleet result;
- :mod:`.render`: the fleet result as terminal text, JSON, JUnit and Markdown;
- :mod:`.orchestrate`: one process per target, wave by wave, with the fleet's rollback cap;
- ``python -m pytest_smoke.fleet {run,merge,gate}``: the command line.
"""

from __future__ import annotations

from .merge import FleetResult, TargetResult, merge, read_reports

__all__ = ["FleetResult", "TargetResult", "merge", "read_reports"]
