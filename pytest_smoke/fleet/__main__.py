"""``python -m pytest_smoke.fleet {run,merge,gate}``: a fleet's runs, merged reports and wave gates.

- ``run --config fleet.yaml [-- PYTEST_ARGS]``: every selected target, one process each, wave by
  wave, with the fleet's rollback cap; then the fleet's verdict.
- ``merge --config fleet.yaml [--run-id ID] reports/*.json``: reports written by one process per
  target elsewhere (a Job per cluster, a CI matrix) into the fleet's verdict, contacting nothing.
- ``gate --config fleet.yaml --wave N reports/*.json``: exit 0 only if wave N passed, for an
  engine (Argo Workflows, a CI needs: chain) to order the next wave on.

Exit status: the most urgent target's (10 a rollback needs a human, 1 critical, 12 inconclusive or
never reported, 11 not ready, 0 passed); 4 for a bad config or bad arguments; 2 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from ..config import ConfigError, load_config, load_fleet, selected_targets
from ..selector import SelectorError
from .merge import FleetResult, merge, read_reports
from .orchestrate import FleetRun, run_fleet
from .render import markdown, one_line, terminal_lines, write_json, write_junit

EXIT_INTERRUPTED = 2
EXIT_USAGE = 4


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        fleet = load_fleet(args.config)
        selected = selected_targets(fleet, args.smoke_target or [], args.smoke_target_selector)
        if args.command == "run":
            # Every selected target must load as a whole config (its ${VAR}s included) before any
            # target receives a request.
            for name in selected:
                load_config(args.config, environment=args.smoke_env, target=name)
            result = run_fleet(fleet, selected, _fleet_run(args))
        else:
            run_id = args.run_id or os.environ.get("SMOKE_FLEET_RUN_ID") or None
            reports = read_reports(args.reports)
            result = merge(fleet, str(args.config), reports, run_id, selected=set(selected), environment=args.smoke_env)
    except FileExistsError as exc:
        print(
            f"ERROR: {exc.filename} exists: a fleet run id is used once (--run-id, SMOKE_FLEET_RUN_ID)", file=sys.stderr
        )
        return EXIT_USAGE
    except (ConfigError, SelectorError, ValueError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        # The target running got the signal too and ended on its own terms (its report says how).
        print("fleet: interrupted: no further target was started; no fleet verdict", file=sys.stderr)
        return EXIT_INTERRUPTED
    if args.command == "gate":
        return _gate(result, args.wave)
    _publish(result, args)
    return result.exit_status


def _fleet_run(args: argparse.Namespace) -> FleetRun:
    run_id = args.run_id or os.environ.get("SMOKE_FLEET_RUN_ID") or None
    extra = [arg for arg in args.pytest_args if arg != "--"]
    run = FleetRun(
        config=Path(args.config),
        out=Path(args.out),
        environment=args.smoke_env,
        pytest_args=extra,
        parallel=max(1, args.parallel),
    )
    if run_id:
        run.run_id = run_id
    return run


def _gate(result: FleetResult, wave: int) -> int:
    members = [target for target in result.targets if target.wave == wave]
    if not members:
        print(f"ERROR: the fleet has no wave {wave}", file=sys.stderr)
        return EXIT_USAGE
    for line in terminal_lines(result)[1:-1]:
        print(line)
    earlier = next((number for number in range(1, wave) if not result.wave_passed(number)), None)
    if earlier is not None:  # a wave that ran although an earlier one failed opens nothing
        print(f"gate: wave {wave} is closed: wave {earlier} did not pass")
        return 1
    if result.wave_passed(wave):
        print(f"gate: wave {wave} passed ({len(members)} target(s) verified)")
        return 0
    blocking = next(target for target in members if not target.green)
    print(f"gate: wave {wave} did not pass: {blocking.name}: {one_line(blocking.summary)}")
    return 1


def _publish(result: FleetResult, args: argparse.Namespace) -> None:
    print("=" * 20 + " smoke fleet verdict " + "=" * 20)
    for line in terminal_lines(result):
        print(line)
    if args.json:
        write_json(result, args.json)
    if args.junit:
        write_junit(result, args.junit)
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(markdown(result), encoding="utf-8")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pytest_smoke.fleet", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("run", "run every selected target, one process each, wave by wave"),
        ("merge", "merge the targets' JSON reports into the fleet's verdict"),
        ("gate", "exit 0 only if the given wave passed"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--config", required=True, help="the fleet config (its fleet: section)")
        command.add_argument("--smoke-target", action="append", metavar="NAME", help="only these targets (globs)")
        command.add_argument("--smoke-target-selector", metavar="SELECTOR", help="only targets whose labels match")
        command.add_argument("--run-id", help="the fleet run (SMOKE_FLEET_RUN_ID); reports of another are refused")
        if name != "gate":
            command.add_argument("--json", metavar="PATH", help="write the fleet's JSON report")
            command.add_argument("--junit", metavar="PATH", help="write a JUnit file, a suite per target")
            command.add_argument("--markdown", metavar="PATH", help="write the fleet's Markdown report")
        command.add_argument(
            "--smoke-env", metavar="NAME", help="environments.NAME: what every target runs (run) or ran with"
        )
        if name == "run":
            command.add_argument("--out", default="smoke-fleet", help="where each target writes TARGET.json")
            command.add_argument(
                "--parallel", type=int, default=1, metavar="K", help="targets of a wave running at once (default 1)"
            )
            command.add_argument("pytest_args", nargs=argparse.REMAINDER, help="-- then arguments for every pytest")
        else:
            command.add_argument("reports", nargs="*", help="the targets' --smoke-report files")
        if name == "gate":
            command.add_argument("--wave", type=int, required=True, help="the wave (1-based) to gate on")
    return parser


if __name__ == "__main__":
    sys.exit(main())
