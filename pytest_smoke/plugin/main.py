"""The ``pytest11`` entry point (``deploy_smoke``): options, markers and configuration. Without
a smoke config (``--smoke-config``, ini ``smoke_config`` or env ``SMOKE_CONFIG``) it does nothing else, so
an ordinary test run is unaffected. With one, it registers the role plugins:

- ``collection``: the config as a test module, one parametrized ``pytest.Function`` per check;
- ``execution``: when and how checks run, in every process that runs items;
- ``controller``: the rollout wait, then verdict, decision, rollback and reports, once, in the
  controlling process only (it feeds :mod:`pytest_smoke.decision` and calls ``publish``).

``fixtures`` serves developers' own smoke tests (always registered); ``run`` holds the
per-process state the roles share.
"""

from __future__ import annotations

import json
import os
import tempfile
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ..checks.scheduler import DEFAULT_CONCURRENCY, DEFAULT_PER_HOST_ACROSS_WORKERS, HostSlots
from ..redact import RedactingLogRecords
from . import fixtures, hooks
from .builtins import BuiltinExtensions
from .run import CONTROLLER_NAME, OPTIONAL_MARKER, REQUIRED_MARKER, SmokeRun, get_run, smoke_run_key, target_workers_key

if TYPE_CHECKING:
    from ..config import SmokeConfig

# Every pytest run loads this module through the entry point, smoke config or not: what it imports
# above is kept light (~40 ms: the model, the redactor and the check scheduler). Everything else
# (the config with YAML and JSON Schema, the checks with requests, the controller with the cluster,
# decision and report code) is imported in pytest_configure, only once a config is found.

# The distribution of this plugin, and the unrelated one that holds the same import package
# (``pytest_smoke``) and the entry point name ``smoke``: they cannot be installed together.
DISTRIBUTION = "pytest-deploy-smoke"
# A fleet session's list of what it deselected for one target: a few hundred bytes per item.
MAX_DESELECTED_CHARS = 64 * 1024 * 1024
CONFLICTING_DISTRIBUTION = "pytest-smoke"


def conflicting_distribution() -> str | None:
    """``pytest-smoke X.Y`` when that distribution is installed too (or an older install of this
    plugin under that name): its files and ours overwrite each other."""
    try:
        return f"{CONFLICTING_DISTRIBUTION} {metadata.version(CONFLICTING_DISTRIBUTION)}"
    except metadata.PackageNotFoundError:
        return None


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
        "--smoke-target",
        action="append",
        metavar="NAME",
        help="With a fleet config: check this target (its fleet.targets.NAME overrides, after --smoke-env). "
        "Repeatable; globs (eu-*). Default: SMOKE_TARGET, else every target. One target is today's run; "
        "several are a fleet session: one process per target, wave by wave, -k and --lf across them.",
    )
    group.addoption(
        "--smoke-target-selector",
        metavar="SELECTOR",
        help="With a fleet config: only the targets whose labels match this Kubernetes label selector "
        "(region=eu,tier!=canary).",
    )
    group.addoption(
        "--smoke-fleet-out",
        metavar="DIR",
        default="smoke-fleet",
        help="A fleet session's directory for each target's report (TARGET.json), output (TARGET.log) and "
        "rollback ledger (default: smoke-fleet).",
    )
    group.addoption(
        "--smoke-fleet-parallel",
        type=int,
        default=1,
        metavar="K",
        help="A fleet session runs up to K targets of a wave at once (default 1: one after the other, in "
        "config order, so fleet.max_rollbacks holds back the later ones).",
    )
    group.addoption(
        "--smoke-fleet-target",
        metavar="NAME",
        help="(set by a fleet run or session) the one target this process checks, whatever --smoke-target says.",
    )
    group.addoption("--smoke-report-stream", metavar="PATH", help="(set by a fleet session) stream reports to PATH.")
    group.addoption(
        "--smoke-left-out",
        metavar="REASON",
        help="(set by a fleet session) why the checks this process was not given were left out.",
    )
    group.addoption(
        "--smoke-deselected",
        metavar="PATH",
        help="(set by a fleet session) the items of this target the session deselected, and why.",
    )
    group.addoption(
        "--smoke-left-out-unknown",
        metavar="REASON",
        help="(set by a fleet session) tests were left out before collection: the run cannot vouch for them.",
    )
    group.addoption(
        "--smoke-hold-rollback",
        metavar="REASON",
        help="A rollback that is due is held for a human (exit 10, alerted) with REASON, not planned or"
        " written: a lever to freeze every rollback of this run.",
    )
    group.addoption(
        "--smoke-fleet-ledger",
        metavar="PATH",
        help="The fleet run's rollback ledger, shared by its targets (set by python -m pytest_smoke.fleet run):"
        " a rollback beyond fleet.max_rollbacks, or due only to a dependency another target saw fail, is held.",
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
        "--smoke-metrics",
        metavar="PATH",
        help="Write the run's Prometheus metrics to PATH, atomically: the Prometheus text format for a *.prom "
        "file (node-exporter's textfile collector reads only those), OpenMetrics otherwise "
        "(config monitoring.metrics_file). Needs prometheus-client.",
    )
    group.addoption(
        "--smoke-pushgateway",
        metavar="URL",
        help="Push the run's metrics to this Prometheus Pushgateway after the verdict and any rollback "
        "(config monitoring.pushgateway.url; job and labels from there). A failed push is a warning, "
        "never an error. Needs prometheus-client.",
    )
    group.addoption(
        "--smoke-wait-rollout",
        metavar="deployment/NAME",
        help="Before any check, wait until the Deployment is fully rolled out, like kubectl rollout status "
        "(config wait_for_rollout; namespace and credentials from it or rollback_strategy).",
    )
    group.addoption(
        "--smoke-expect-image",
        action="append",
        default=[],
        metavar="CONTAINER=IMAGE",
        help="What the pipeline deployed (repeatable; config rollback_strategy.expect_images). If the "
        "Deployment runs another image in that container when the checks start or end, the run stands "
        "down: exit 12, no rollback, no mark.",
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


# The targets a run checks, when chosen before pytest_configure (see WorkersForTargets).
chosen_targets_key = pytest.StashKey["tuple[str | None, list[str]]"]()


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hooks)
    pluginmanager.register(BuiltinExtensions(), "smoke-builtin-extensions")
    pluginmanager.register(WorkersForTargets(), "smoke-workers-for-targets")


class WorkersForTargets:
    """A fleet session runs no item itself: ``-n`` is for each target's process, which runs its
    checks with xdist. Before xdist sets up its controller here (its own configure is trylast),
    the session takes the distribution over for its targets."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(self, config: pytest.Config) -> None:
        dist = config.getoption("dist", "no")
        if dist == "no" or config.getoption("collectonly") or hasattr(config, "workerinput"):
            return
        path = find_config_path(config)
        if path is None:
            return
        from ..config import ConfigError, chosen_targets  # lazy: see the top

        try:
            chosen = config.stash[chosen_targets_key] = chosen_targets(
                path, _target_names(config), _target_selector(config)
            )
        except ConfigError:
            return  # pytest_configure says so, as a usage error
        if chosen[1]:
            workers = config.getoption("numprocesses", None)
            specs = () if workers else tuple(f"--tx={spec}" for spec in config.getoption("tx", None) or ())
            distribution = (
                ("-n", str(workers), f"--dist={dist}") if workers else specs + (f"--dist={dist}",) * bool(specs)
            )
            config.stash[target_workers_key] = distribution
            config.option.dist = "no"


def find_config_path(config: pytest.Config) -> Path | None:
    option = config.getoption("smoke_config")
    if option:
        return Path(option)
    ini = config.getini("smoke_config")
    if ini:
        base = config.inipath.parent if config.inipath else config.rootpath
        return base / str(ini)
    if os.environ.get("SMOKE_CONFIG"):
        return Path(os.environ["SMOKE_CONFIG"])
    return None


@pytest.hookimpl(trylast=True)  # after conftests, which may register check types or set env
def pytest_configure(config: pytest.Config) -> None:
    other = conflicting_distribution()
    if other is not None:
        # Either package may have overwritten the other's files: no run is trustworthy.
        raise pytest.UsageError(
            f"{other} is installed next to {DISTRIBUTION}: both install the Python package pytest_smoke, so "
            f"neither works. Run: pip uninstall -y {CONFLICTING_DISTRIBUTION} {DISTRIBUTION} "
            f"&& pip install '{DISTRIBUTION}[all]'"
        )
    config.addinivalue_line(
        "markers", f"{REQUIRED_MARKER}: a smoke check whose failure is critical and can trigger a rollback."
    )
    config.addinivalue_line(
        "markers", f"{OPTIONAL_MARKER}: a smoke check whose failure is a warning; the deployment continues."
    )
    if not config.pluginmanager.is_registered(fixtures):
        config.pluginmanager.register(fixtures, "smoke-fixtures")
    path = find_config_path(config)
    if path is None:
        return
    # The lazy boundary (see the top): ~170 ms that a run without a smoke config never pays.
    from ..config import ConfigError, chosen_targets, load_config
    from . import per_target, reporters
    from .collection import SmokeCollection
    from .controller import SmokeController
    from .execution import CheckExecution
    from .stream import ReportStream

    try:
        # Read once: WorkersForTargets may have chosen already (a -n run).
        chosen = config.stash.get(chosen_targets_key, None)
        target, session_targets = chosen or chosen_targets(path, _target_names(config), _target_selector(config))
        if session_targets and config.getoption("smoke_base_url"):
            raise ConfigError(
                path,
                "--smoke-base-url would send every target's checks to one URL: set base_url per target"
                " under fleet.targets",
                location="fleet.targets",
            )
        names: list[str | None] = [*session_targets] or [target]
        targets = [
            load_config(
                path,
                environment=config.getoption("smoke_env"),
                base_url=config.getoption("smoke_base_url"),
                target=name,
            )
            for name in names
        ]
        # Every target is checked before any target receives a request.
        extensions = [_preflight(config, smoke_config) for smoke_config in targets][0]
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
    smoke_config = targets[0]
    run = _start_run(config, smoke_config, extensions)
    run.targets = targets
    if config.getoption("smoke_deselected"):
        run.deselected.extend(_deselected_by_session(Path(config.getoption("smoke_deselected"))))
    if smoke_config.target is not None:
        config.pluginmanager.register(per_target, "smoke-every-test-per-target")
    if session_targets:
        _start_fleet_session(config, run)
        return
    config.pluginmanager.register(SmokeCollection(run), "smoke-collection")
    config.pluginmanager.register(CheckExecution(run), "smoke-check-execution")
    if config.getoption("smoke_report_stream") and not hasattr(config, "workerinput"):  # xdist: its controller
        config.pluginmanager.register(
            ReportStream(config, Path(config.getoption("smoke_report_stream"))), "smoke-stream"
        )
    if reporters.allure_loaded(config):
        config.pluginmanager.register(reporters.AllureSeverity(), "smoke-allure-severity")
    if not hasattr(config, "workerinput") and not config.getoption("collectonly"):
        controller = SmokeController(config, smoke_config, run.redactor)
        controller.elsewhere = reporters.VerdictElsewhere(lambda: controller.summary, smoke_config, run.redactor)
        config.pluginmanager.register(controller, CONTROLLER_NAME)
        config.pluginmanager.register(controller.elsewhere, "smoke-verdict-elsewhere")


def _preflight(config: pytest.Config, smoke_config: SmokeConfig) -> Any:
    from . import preflight  # lazy: see the top

    return preflight.check(
        smoke_config,
        resolve_type=lambda name: config.hook.pytest_smoke_check_type(name=name),
        resolve_handler=lambda name: config.hook.pytest_smoke_rollback_handler(name=name),
        junit_path=config.getoption("smoke_junit"),
        wait_rollout=config.getoption("smoke_wait_rollout"),
        expect_images=config.getoption("smoke_expect_image") or [],
        dry_run=bool(config.getoption("smoke_no_rollback")),
        metrics_options={
            option: config.getoption(name)
            for option, name in (("--smoke-metrics", "smoke_metrics"), ("--smoke-pushgateway", "smoke_pushgateway"))
            if config.getoption(name)
        },
    )


def _deselected_by_session(path: Path) -> list[list[Any]]:
    """What a fleet session deselected of this target: ``[node id, name, required, why]`` each."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read(MAX_DESELECTED_CHARS + 1)
    entries = json.loads(text) if len(text) <= MAX_DESELECTED_CHARS else None
    if not isinstance(entries, list) or not all(isinstance(entry, list) and len(entry) == 4 for entry in entries):
        raise pytest.UsageError(f"--smoke-deselected {path}: not a list of deselected items")
    return entries


def _target_selector(config: pytest.Config) -> str | None:
    return None if config.getoption("smoke_fleet_target") else config.getoption("smoke_target_selector")


def _target_names(config: pytest.Config) -> list[str]:
    if config.getoption("smoke_fleet_target"):  # a target process of a fleet run: this one, whatever else says
        return [config.getoption("smoke_fleet_target")]
    names: list[str] = config.getoption("smoke_target") or []
    if not names and os.environ.get("SMOKE_TARGET"):
        names = [os.environ["SMOKE_TARGET"]]
    return names


def _start_run(config: pytest.Config, smoke_config: SmokeConfig, extensions: Any) -> SmokeRun:
    concurrency = config.getoption("smoke_concurrency")
    if concurrency is None:
        concurrency = int(smoke_config.setting("max_concurrency"))  # the schema admits 2.0
    if concurrency < 1:
        raise pytest.UsageError(f"--smoke-concurrency must be 1 or more, got {concurrency}")
    fail_fast = bool(config.getoption("smoke_fail_fast") or smoke_config.setting("fail_fast"))
    written = smoke_config.data.get("max_concurrency_per_host")
    per_host = None if written is None else int(written)  # None: adaptive
    workerinput = getattr(config, "workerinput", None)
    identity = (
        (workerinput["smoke_run_id"], workerinput["smoke_run_started"])
        if workerinput and "smoke_run_id" in workerinput
        else None
    )
    run = config.stash[smoke_run_key] = SmokeRun(
        smoke_config,
        concurrency,
        fail_fast,
        per_host,
        extensions,
        dry_run=bool(config.getoption("smoke_no_rollback")),
        identity=identity,
    )
    if workerinput is not None:
        run.host_slots = HostSlots(
            os.path.join(tempfile.gettempdir(), f"pytest-smoke-{workerinput['testrunuid']}"),
            per_host or DEFAULT_PER_HOST_ACROSS_WORKERS,
        )
    run.log_records = RedactingLogRecords(run.redactor)
    run.log_records.install()
    return run


def _start_fleet_session(config: pytest.Config, run: SmokeRun) -> None:
    """Several targets: this session collects them all and runs each in a process of its own."""
    from .collection import SmokeCollection
    from .fleet_session import FleetSession

    config.pluginmanager.register(SmokeCollection(run), "smoke-collection")
    if config.getoption("collectonly"):
        return
    out = Path(config.getoption("smoke_fleet_out"))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise pytest.UsageError(f"--smoke-fleet-out {out}: {exc.strerror or exc.__class__.__name__}") from None
    assert run.config.fleet is not None  # every target of a session was loaded with its fleet
    session = FleetSession(config, run.config.fleet, run.targets)
    if session.ledger_path.exists():
        raise pytest.UsageError(
            f"{session.ledger_path} exists: a fleet run id is used once (SMOKE_FLEET_RUN_ID); no target was started"
        )
    config.pluginmanager.register(session, CONTROLLER_NAME)


def pytest_report_header(config: pytest.Config) -> list[str]:
    run = get_run(config)
    if run is None:
        return []
    sc = run.config
    if len(run.targets) > 1:
        names = ", ".join(target.target.name for target in run.targets if target.target is not None)
        env = f", environment {sc.environment}" if sc.environment else ""
        return [f"smoke: {sc.path}{env}: a fleet session of {len(run.targets)} targets ({names}), a process each"]
    if not sc.enabled:
        return [f"smoke: disabled (enabled: false in {sc.path}); no smoke checks generated"]
    counts = {
        kind: sum(1 for c in sc.checks if c.kind == kind)
        for kind in ("health", "dependency", "critical_path", "metric")
    }
    env = f", environment {sc.environment}" if sc.environment else ""
    lines = [
        f"smoke: {sc.path}{env}: {counts['health']} health, {counts['dependency']} dependency, "
        f"{counts['critical_path']} critical path"
        + (f", {counts['metric']} metric" if counts["metric"] else "")
        + " check(s)",
    ]
    if sc.base_url:
        lines.append(f"smoke: base URL {run.redactor.text(sc.base_url)}")
    if sc.verify is False:
        lines.append("smoke: WARNING: verify_tls is false; TLS certificates are not checked")
    channels = sc.section("notifications")
    undefined = [n for n in sc.section("rollback_strategy").get("notify_channels") or [] if n not in channels]
    if undefined:
        lines.append(
            f"smoke: WARNING: notify_channels names channels not defined under notifications: {', '.join(undefined)}"
        )
    return lines
