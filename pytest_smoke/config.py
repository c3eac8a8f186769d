"""Load, interpolate and validate a smoke config.

The pipeline is: read JSON or YAML -> validate against the shipped JSON Schema -> apply the
``environments`` override selected by ``--smoke-env`` -> validate again -> interpolate
``${VAR}`` / ``${VAR:-default}`` from the process environment -> semantic checks (duplicate names,
unknown ``{template}`` variables, relative endpoints without a base URL).

Every problem becomes a :class:`ConfigError` naming the file, the path to the bad value and,
where the format allows, the line. Nothing here sends a request.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import difflib
import fnmatch
import functools
import hashlib
import json
import os
import re
import stat
import string
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, NoReturn, Sequence
from urllib.parse import urlsplit

import yaml

from .model import SECTIONS, Check, Fleet, FleetLedger, FleetTarget, FleetWave
from .redact import MIN_SECRET_LENGTH, Redactor, is_secret_name, password_pieces, shorten
from .schema import defaults
from .schema import load as load_schema
from .schema.quick import Unsure, compile_schema
from .selector import SelectorError
from .selector import parse as parse_selector
from .settings import AutoRollback, RollbackStrategy
from .specs import parse_condition

# Values interpolated under these keys are addresses, not credentials, so they stay readable.
# A password inside a URL is still masked by the redactor's URL rule.
NOT_SECRET_KEYS = frozenset(
    {
        "base_url",
        "endpoint",
        "url",
        "host",
        "name",
        "method",
        "namespace",
        "deployment",
        "container",
        "context",
        "type",
        "query",
        "condition",
        "window",
        "unit",
    }
)

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(Exception):
    """A config file that cannot be used. ``str()`` is the complete user-facing message."""

    def __init__(self, file: Path | str, message: str, location: str = "", line: int | None = None):
        self.file = str(file)
        self.location = location
        self.line = line
        self.message = message
        where = self.file + (f":{line}" if line else "")
        prefix = f"{where}: {location}: " if location else f"{where}: "
        super().__init__(f"smoke config error: {prefix}{message}")


@dataclass
class SmokeConfig:
    path: Path
    data: dict[str, Any]
    environment: str | None = None
    secrets: frozenset[str] = field(default_factory=frozenset)
    checks: list[Check] = field(default_factory=list)
    lines: _LineFinder | None = field(default=None, repr=False, compare=False)
    # A fleet config: the target this run checks, and the fleet it belongs to (see load_fleet).
    target: FleetTarget | None = None
    fleet: Fleet | None = None
    fleet_run_id: str = ""  # SMOKE_FLEET_RUN_ID: ties the targets' reports of one fleet run together

    def line_of(self, check: Check) -> int | None:
        """The line of the file where ``check`` is written, when the file tells (YAML and JSON do)."""
        section, _, index = check.location.rstrip("]").partition("[")
        if self.lines is None or not index.isdigit():
            return None
        return self.lines.line([section, int(index)])

    def setting(self, key: str) -> Any:
        """A top-level setting as written, else the schema's default (None without one)."""
        return self.data[key] if key in self.data else defaults("").get(key)

    @property
    def enabled(self) -> bool:
        return bool(self.setting("enabled"))

    @property
    def only_health_gets(self) -> bool:
        """Every required check is a GET of a health endpoint: a static /health (MLflow's, say)
        passes with the database gone, so such a config can be green over a broken deploy."""
        required = [check for check in self.checks if check.required]
        return bool(required) and all(
            check.kind == "health" and str(check.spec.get("method", "GET")).upper() == "GET" for check in required
        )

    @property
    def base_url(self) -> str | None:
        return self.data.get("base_url")

    @property
    def timeout(self) -> float:
        return float(self.setting("timeout_seconds"))

    @property
    def verify(self) -> bool | str:
        """The ``verify`` argument for requests: False, True or a CA bundle path."""
        if self.data.get("ca_bundle"):
            return str(self.data["ca_bundle"])
        return bool(self.setting("verify_tls"))

    @property
    def headers(self) -> dict[str, str]:
        return dict(self.data.get("headers") or {})

    def section(self, key: str) -> dict[str, Any]:
        return dict(self.data.get(key) or {})

    @functools.cached_property
    def auto_rollback(self) -> AutoRollback:
        return AutoRollback.of(self.data.get("auto_rollback"))

    @functools.cached_property
    def rollback_strategy(self) -> RollbackStrategy:
        return RollbackStrategy.of(self.data.get("rollback_strategy"))


def schema() -> dict[str, Any]:
    """The config's JSON Schema shipped inside the package (also usable by editors and CI)."""
    return load_schema()


def load_config(
    path: str | os.PathLike[str],
    *,
    environment: str | None = None,
    base_url: str | None = None,
    env: Mapping[str, str] | None = None,
    target: str | None = None,
) -> SmokeConfig:
    """Read, validate and interpolate ``path``; raise :class:`ConfigError` on any problem.

    A config with a ``fleet:`` section needs ``target``: the one target this run checks."""
    env = os.environ if env is None else env
    file = Path(path)
    text = _read_text(file)

    try:
        return _load(file, text, environment, base_url, env, target)
    except RecursionError:
        raise ConfigError(file, "the document is nested too deeply") from None


# A smoke config is a few kilobytes; parsing (YAML most of all) and validating a larger one costs
# seconds per megabyte, and /dev/zero or a FIFO would never end.
MAX_CONFIG_BYTES = 1024 * 1024


def _read_text(file: Path) -> str:
    """The file's text: only a regular file, only up to MAX_CONFIG_BYTES, UTF-8 with or without a BOM."""

    try:
        info = file.stat()
    except FileNotFoundError:
        raise ConfigError(file, "file not found") from None
    except OSError as exc:
        raise ConfigError(file, f"cannot read file: {exc.__class__.__name__}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file (a device, a FIFO or a socket)"
        raise ConfigError(file, f"{kind}: give the path of a config file")
    if info.st_size > MAX_CONFIG_BYTES:
        raise ConfigError(file, f"the file is {info.st_size} bytes: a config may have at most {MAX_CONFIG_BYTES} bytes")
    try:
        with open(file, "rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)  # the file may have grown since stat()
    except OSError as exc:
        raise ConfigError(file, f"cannot read file: {exc.__class__.__name__}: {exc.strerror or exc}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            file, f"the file has more than {MAX_CONFIG_BYTES} bytes: a config may have at most {MAX_CONFIG_BYTES} bytes"
        )
    try:
        # A byte order mark (Windows editors write one) is accepted alike in JSON and YAML.
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(file, f"not UTF-8 text (byte {exc.start} cannot be decoded)") from None


def _load(
    file: Path, text: str, environment: str | None, base_url: str | None, env: Mapping[str, str], target: str | None
) -> SmokeConfig:
    raw = _parse(file, text)
    lines = _LineFinder(text)
    _reject_what_json_cannot_say(file, raw, lines)
    _validate(file, raw, lines)
    fleet = _fleet_of(file, raw, lines, text)
    environments = raw.get("environments") or {}
    if len(environments) > MAX_ENVIRONMENTS:
        raise ConfigError(
            file,
            f"{len(environments)} environments: at most {MAX_ENVIRONMENTS} are supported in one file",
            location="environments",
            line=lines.line(["environments"]),
        )
    # Every environment's overrides must make a valid config, not only the one selected today.
    for name in sorted(environments):
        _validate(file, _select_environment(file, raw, name, lines), lines, context=f"with environment {name!r}")

    selected = _select_environment(file, raw, environment, lines)
    selected, chosen = _select_target(file, selected, fleet, target, lines)
    located = (
        _located_in_target(file, lines, chosen.name, raw["fleet"]["targets"][chosen.name])
        if chosen is not None
        else contextlib.nullcontext()
    )
    with located:
        _refuse_variables_in_names(file, selected, lines)
        secrets: set[str] = set()
        public = frozenset(selected.get("public_variables") or ())
        for index, name in enumerate(selected.get("public_variables") or ()):
            if is_secret_name(name):  # a typo here would print a credential everywhere
                raise ConfigError(
                    file,
                    f"{name} looks like a credential by its name: it cannot be listed as public",
                    location=f"public_variables[{index}]",
                    line=lines.line(["public_variables", index]),
                )
        data = _interpolate(
            file, selected, env, secrets, lines, path=(), budget=[MAX_INTERPOLATED_CHARS], public=public
        )
        if data != selected:  # interpolated values must fit the schema too; the message must not show them
            _validate(file, data, lines, context="after ${VAR} interpolation", redact=secrets)
        if base_url:
            data["base_url"] = base_url
        elif not data.get("base_url") and env.get("SMOKE_BASE_URL"):
            data["base_url"] = env["SMOKE_BASE_URL"]

        secrets |= _written_credentials(data)
        secrets |= _basic_auth_to_headers(file, data, lines, written=selected)
        config = SmokeConfig(
            path=file,
            data=data,
            environment=environment,
            secrets=frozenset(secrets),
            lines=lines,
            target=chosen,
            fleet=fleet,
            fleet_run_id=env.get("SMOKE_FLEET_RUN_ID", "") if fleet is not None else "",
        )
        base_url_source = (
            "--smoke-base-url"
            if base_url
            else ("SMOKE_BASE_URL" if env.get("SMOKE_BASE_URL") and not raw.get("base_url") else "")
        )
        _check_sendable(config, lines, base_url_source)
        _check_published_labels(config, lines)
        _check_rollback_command(config, lines)
        _check_repeat_thresholds(config, lines)
        config.checks = _build_checks(config, lines)
        return config


# The ``rollback_strategy.command`` template language. One pass: "{{" and "}}" are literal braces
# (environment values arrive escaped this way), a known {placeholder} is filled in, and any other
# brace (helm's --set-json '{"a":1}') stays as written.
COMMAND_PLACEHOLDERS = frozenset({"deployment", "namespace", "container", "previous_image", "context", "kubeconfig"})
COMMAND_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")


SPREAD_THRESHOLDS = ("p50_ms", "p95_ms", "p99_ms", "max_failure_ratio")


def _check_repeat_thresholds(config: SmokeConfig, lines: _LineFinder) -> None:
    """Percentiles and a failure ratio are measured over ``repeat: N`` runs of a check: written
    anywhere else they would never be judged, a silent pass."""
    for section in ("health_checks", "dependency_checks", "critical_paths"):
        for index, spec in enumerate(config.data.get(section) or []):
            written = [key for key in SPREAD_THRESHOLDS if key in (spec.get("expect") or {})]
            if spec.get("repeat") and spec.get("retries"):
                # A retry would send the whole series again and judge only the last one.
                error_at(
                    config,
                    lines,
                    (section, index, "retries"),
                    "retries and repeat: a repeated check tolerates failures with expect.max_failure_ratio; "
                    "retries would hide the failed repetitions",
                )
            if written and not spec.get("repeat"):
                error_at(
                    config,
                    lines,
                    (section, index, "expect", written[0]),
                    f"{written[0]} is judged over repeated runs: add repeat: N (at least 2) to this check",
                )
            for group in ("steps", "cleanup"):
                for step_index, step in enumerate(spec.get(group) or []):
                    written = [key for key in SPREAD_THRESHOLDS if key in (step.get("expect") or {})]
                    if written:
                        error_at(
                            config,
                            lines,
                            (section, index, group, step_index, "expect", written[0]),
                            f"{written[0]} belongs to the critical path's expect, with repeat: N on the path"
                            " (a step runs once per walk)",
                        )


def _check_rollback_command(config: SmokeConfig, lines: _LineFinder) -> None:
    strategy = config.data.get("rollback_strategy") or {}
    if strategy.get("cluster_uid") and not strategy.get("deployment"):
        error_at(
            config,
            lines,
            ("rollback_strategy", "cluster_uid"),
            "needs rollback_strategy.deployment: the cluster is checked through the Deployment's API client",
        )
    command = strategy.get("command") or []
    named = {match.group(1) for arg in command for match in COMMAND_TOKEN.finditer(str(arg)) if match.group(1)}
    if strategy.get("type") == "command" and strategy.get("context") and "context" not in named:
        # kubectl and helm act on the kubeconfig's current context unless told: maybe another cluster.
        error_at(
            config,
            lines,
            ("rollback_strategy", "command"),
            "rollback_strategy.context is set, and the command does not name it: pass {context} "
            "(kubectl --context {context}, helm --kube-context {context}), or the command acts on the "
            "kubeconfig's current context, which may be another cluster",
        )
    for index, arg in enumerate(command):
        for match in COMMAND_TOKEN.finditer(arg):
            if match.group(1) and match.group(1) not in COMMAND_PLACEHOLDERS:
                error_at(
                    config,
                    lines,
                    ("rollback_strategy", "command", index),
                    f"unknown placeholder {{{match.group(1)}}} (known: {', '.join(sorted(COMMAND_PLACEHOLDERS))}; "
                    "write {{ for a literal brace)",
                )


# -- parsing ---------------------------------------------------------------------------------------


def _parse(file: Path, text: str) -> Any:
    if file.suffix.lower() in (".yaml", ".yml"):
        loader = _yaml_loader()
        try:
            root = yaml.compose(text, Loader=loader)
            _refuse_alias_bombs(file, root)
            _refuse_duplicate_yaml_keys(file, root)
            data = None if root is None else loader("").construct_document(root)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(file, f"invalid YAML: {problem}", line=mark.line + 1 if mark else None) from None
        except ValueError as exc:  # an integer beyond Python's digit limit, for one
            raise ConfigError(file, f"invalid YAML: {str(exc).split(';')[0]}") from None
    elif file.suffix.lower() == ".json":
        try:
            data = json.loads(text, object_pairs_hook=_reject_duplicate_keys)
        except json.JSONDecodeError as exc:
            raise ConfigError(file, f"invalid JSON: {exc.msg} (column {exc.colno})", line=exc.lineno) from None
        except _DuplicateKey as exc:
            raise ConfigError(file, f"duplicate key {exc.args[0]!r}") from None
        except ValueError as exc:  # an integer beyond Python's digit limit, for one
            raise ConfigError(file, f"invalid JSON: {str(exc).split(';')[0]}") from None
    else:
        raise ConfigError(file, "unknown config format: use a .json, .yaml or .yml file")
    if data is None:
        raise ConfigError(file, "the file is empty")
    return data


# A smoke config has hundreds of values; nine levels of nine-fold aliases ("billion laughs") have
# hundreds of millions once expanded, which every later step (validation, interpolation) would walk.
MAX_EXPANDED_VALUES = 100_000
# Characters ${VAR} values may add in all; and environments one file may hold (each is validated).
MAX_INTERPOLATED_CHARS = 1_000_000
# One ${VAR} value (a token, a URL, a certificate fits); every one is also a secret to mask in all output.
MAX_VARIABLE_CHARS = 64 * 1024
MAX_ENVIRONMENTS = 100


def _refuse_alias_bombs(file: Path, root: Any) -> None:
    """Count the values the document expands to, aliases included, without expanding it."""

    sizes: dict[int, int] = {}
    aliases = 0

    def size(node: Any) -> int:
        nonlocal aliases
        if id(node) in sizes:
            aliases += 1
            return sizes[id(node)]
        sizes[id(node)] = 1  # a recursive alias counts once while it is being measured
        if isinstance(node, yaml.MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total = 1 + sum(size(v) for v in node.value)
        else:
            total = 1
        sizes[id(node)] = total
        return total

    if root is not None and size(root) > MAX_EXPANDED_VALUES:
        how = (
            f"expands to more than {MAX_EXPANDED_VALUES} values through YAML aliases"
            if aliases
            else f"has more than {MAX_EXPANDED_VALUES} values"
        )
        raise ConfigError(file, f"the document {how}: refusing to load it")


def _yaml_loader() -> Any:
    """PyYAML's own safe loader, never libyaml's: its composer recurses in C, so a deeply nested
    document crashes the process (a segfault) where Python's raises a RecursionError we report."""

    return yaml.SafeLoader


def _refuse_duplicate_yaml_keys(file: Path, root: Any) -> None:
    """YAML keeps the last of two equal keys without a word; JSON here refuses them, and so does YAML.
    (A ``<<`` merge key overriding what it merges is YAML's own rule and stays allowed.)"""

    seen_nodes: set[int] = set()
    pending = [] if root is None else [root]
    while pending:
        node = pending.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[tuple[str, str]] = set()
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    if (key.tag, key.value) in keys:
                        raise ConfigError(
                            file, f"duplicate key {shorten(key.value, 60)!r}", line=key.start_mark.line + 1
                        )
                    keys.add((key.tag, key.value))
                pending += [key, value]
        elif isinstance(node, yaml.SequenceNode):
            pending += node.value


class _DuplicateKey(Exception):
    pass


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


class _LineFinder:
    """Maps a value's path to its line number, using YAML's composer (JSON parses as YAML)."""

    def __init__(self, text: str):
        self._text = text
        self._root: Any = False  # a yaml.Node once composed, None if the text does not compose

    def line(self, path: Iterable[Any]) -> int | None:

        if self._root is False:
            try:
                self._root = yaml.compose(self._text, Loader=_yaml_loader())
            except yaml.YAMLError:
                self._root = None
        node = self._root
        found = None
        for part in path:
            if isinstance(node, yaml.MappingNode):
                match = [(k, v) for k, v in node.value if getattr(k, "value", None) == part]
                if not match:
                    break
                key_node, node = match[0]
                found = key_node.start_mark.line + 1
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
                node = node.value[part]
                found = node.start_mark.line + 1
            else:
                break
        return found


def format_path(path: Iterable[Any]) -> str:
    """``("health_checks", 1, "expected_status")`` -> ``health_checks[1].expected_status``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


# -- schema validation -----------------------------------------------------------------------------


MAX_INTEGER = 2**63


def _reject_what_json_cannot_say(file: Path, node: Any, lines: _LineFinder, path: tuple[str | int, ...] = ()) -> None:
    """What a YAML (or lenient JSON) parser gives that JSON Schema cannot judge. NaN passes
    every bound, since it compares false with any number: as a timeout it would mean nothing. A key
    that is not a string (YAML reads an unquoted 1, true or a date as one) escapes propertyNames.
    An integer of thousands of digits cannot even be printed in an error message."""
    if isinstance(node, int) and not -MAX_INTEGER <= node <= MAX_INTEGER:
        # YAML reads 0x + 5,000 hex digits without a limit; no setting needs a number this large.
        raise ConfigError(
            file,
            f"a number of {node.bit_length()} bits is out of range (at most 2**63)",
            location=format_path(path),
            line=lines.line(list(path)),
        )
    if isinstance(node, float) and node != node:
        raise ConfigError(
            file, "NaN is not allowed here: give a number", location=format_path(path), line=lines.line(list(path))
        )
    if isinstance(node, dict):
        for key, value in node.items():
            if not isinstance(key, str):
                shown = (
                    f"a number of {key.bit_length()} bits" if isinstance(key, int) and key.bit_length() > 64 else key
                )
                raise ConfigError(
                    file,
                    f"the key {shown} is not a string (YAML reads an unquoted number, true/false, "
                    "yes/no, on/off or a date as one): quote it",
                    location=format_path(path),
                    line=lines.line(list(path)),
                )
            _reject_what_json_cannot_say(file, value, lines, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            _reject_what_json_cannot_say(file, value, lines, (*path, index))


def _validate(file: Path, data: Any, lines: _LineFinder, context: str = "", redact: Iterable[str] = ()) -> None:
    if _fits_schema(data):
        return
    errors = list(_validator().iter_errors(data))
    if not errors:
        return
    error = min(errors, key=_error_rank)
    error = _deepest(error)
    path, message = _describe(error)
    if context:
        message += f" ({context})"
    if redact:
        message = Redactor(redact).text(message)
    raise ConfigError(file, message, location=format_path(path), line=lines.line(path))


def _fits_schema(data: Any) -> bool:
    """True only when the document is certainly valid; jsonschema decides (and explains) the rest."""

    check = _quick_check()
    if check is None:
        return False
    try:
        return check(data)
    except Unsure:
        return False


@lru_cache(maxsize=1)
def _quick_check() -> Callable[[Any], bool] | None:

    try:
        return compile_schema(schema())
    except Unsure:  # a keyword it does not know: jsonschema checks every document
        return None


@lru_cache(maxsize=1)
def _validator() -> Any:
    # Lazy: a valid config never needs jsonschema (the quick validator proves it), and importing
    # it costs about 100 ms per run.
    import jsonschema

    return jsonschema.Draft202012Validator(_inlined(schema()))


def _inlined(node: Any, defs: Mapping[str, Any] | None = None) -> Any:
    """The schema with every ``$ref`` replaced by the definition it names: the same rules, but a
    thousand checks are validated without resolving a reference each time (a third of the cost).
    Only annotations (``default``, ``description``) sit beside a ``$ref`` here."""
    defs = node.get("$defs", {}) if defs is None else defs
    if isinstance(node, list):
        return [_inlined(value, defs) for value in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        annotations = {key: value for key, value in node.items() if key != "$ref"}
        return {**_inlined(defs[ref[len("#/$defs/") :]], defs), **annotations}
    return {key: _inlined(value, defs) for key, value in node.items() if key != "$defs"}


def _error_rank(error: Any) -> tuple[int, ...]:
    # Report the first problem in document order, preferring the most specific one.
    return tuple(p if isinstance(p, int) else 0 for p in error.absolute_path) + (-len(error.absolute_path),)


def _deepest(error: Any) -> Any:
    """For oneOf/anyOf failures, descend to the most relevant sub-error."""
    from jsonschema.exceptions import best_match  # lazy, as in _validator: only a bad config gets here

    while error.context:
        candidate = best_match(error.context)
        if candidate is None or candidate.validator in ("oneOf", "anyOf") and not candidate.context:
            break
        if error.validator in ("oneOf", "anyOf") and _all_type_errors(error):
            break
        error = candidate
    return error


def _all_type_errors(error: Any) -> bool:
    return all(sub.validator == "type" and not sub.relative_path for sub in error.context)


_TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    return "null" if value is None else type(value).__name__


def _show(value: Any) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def _describe(error: Any) -> tuple[list[Any], str]:
    """The path to the bad value and what was expected, in the words of the config's reader."""
    path = list(error.absolute_path)
    describe = _DESCRIPTIONS.get(error.validator)
    if describe is None:
        return path, error.message
    return describe(error, path, f"got {_json_type(error.instance)} {_show(error.instance)}")


def _unknown_key(error: Any, path: list[Any], got: str) -> tuple[list[Any], str]:
    known = error.schema.get("properties", {})
    extra = sorted(set(error.instance) - set(known))
    key = extra[0] if extra else "?"
    close = difflib.get_close_matches(str(key), list(known), n=1, cutoff=0.75)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return path + [key], f"unknown key {key!r}{hint} (allowed here: {', '.join(sorted(known))})"


def _missing_key(error: Any, path: list[Any], got: str) -> tuple[list[Any], str]:
    absent = [key for key in error.validator_value if key not in error.instance]
    return path, f"missing required key {absent[0]!r}" if absent else error.message


def _wrong_type(error: Any, path: list[Any], got: str) -> tuple[list[Any], str]:
    expected = error.validator_value
    expected = [expected] if isinstance(expected, str) else expected
    return path, f"expected {' or '.join(_TYPE_NAMES.get(t, t) for t in expected)}, {got}"


def _no_form(error: Any, path: list[Any], got: str) -> tuple[list[Any], str]:
    if path and path[-1] in ("expected_status", "required_status"):
        return path, f"expected an HTTP status (100-599) or a list of them, {got}"
    return path, f"value does not match any allowed form, {got}"


def _out_of_range(error: Any, path: list[Any], got: str) -> tuple[list[Any], str]:
    op = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}[error.validator]
    return path, f"expected a number {op} {error.validator_value}, {got}"


def _no_match(error: Any, path: list[Any], got: str) -> tuple[list[Any], str]:
    if path and path[-1] == "name":
        return path, f"check names cannot contain '[', ']' or ':' or start with a space, {got}"
    return path, f"expected a string matching {error.validator_value!r}, {got}"


_DESCRIPTIONS: dict[str, Callable[[Any, list[Any], str], tuple[list[Any], str]]] = {
    "additionalProperties": _unknown_key,
    "required": _missing_key,
    "type": _wrong_type,
    "oneOf": _no_form,
    "anyOf": _no_form,
    "enum": lambda error, path, got: (
        path,
        f"expected one of {', '.join(_show(v) for v in error.validator_value)}, {got}",
    ),
    "const": lambda error, path, got: (path, f"expected {_show(error.validator_value)}, {got}"),
    "minimum": _out_of_range,
    "exclusiveMinimum": _out_of_range,
    "maximum": _out_of_range,
    "exclusiveMaximum": _out_of_range,
    "minItems": lambda error, path, got: (
        path,
        f"expected at least {error.validator_value} item(s), got an empty list",
    ),
    "minLength": lambda error, path, got: (path, f"expected a non-empty string, {got}"),
    "pattern": _no_match,
    "propertyNames": lambda error, path, got: (path, f"invalid key {_show(error.instance)}: {error.message}"),
}


# -- environments ----------------------------------------------------------------------------------


def _select_environment(file: Path, raw: dict[str, Any], environment: str | None, lines: _LineFinder) -> dict[str, Any]:
    data = copy.deepcopy(raw)
    environments = data.pop("environments", None) or {}
    if not environment:
        return data
    if environment not in environments:
        known = ", ".join(sorted(environments)) or "none are defined"
        raise ConfigError(
            file,
            f"unknown environment {environment!r} (from --smoke-env); known: {known}",
            location="environments",
            line=lines.line(["environments"]),
        )
    return _deep_merge(data, environments[environment])


# -- fleet -----------------------------------------------------------------------------------------

MAX_TARGETS = 200


def load_fleet(path: str | os.PathLike[str]) -> Fleet:
    """The fleet a config declares (targets, labels, waves, the digest), read without the
    environment: what ``python -m pytest_smoke.fleet`` needs to merge reports or order waves, with
    every target validated as a whole config. ConfigError if the file has no ``fleet:``."""
    fleet = _declared_fleet(Path(path))
    if fleet is None:
        raise ConfigError(Path(path), "no fleet: section: this config checks one target", location="fleet")
    return fleet


def _declared_fleet(file: Path) -> Fleet | None:
    text = _read_text(file)
    raw = _parse(file, text)
    lines = _LineFinder(text)
    _reject_what_json_cannot_say(file, raw, lines)
    _validate(file, raw, lines)
    return _fleet_of(file, raw, lines, text)


# A top-level fleet key, in any JSON or YAML spelling; a match elsewhere only costs a second parse.
_MAY_DECLARE_FLEET = re.compile(r"""(^|[\s{,])["']?fleet["']?\s*:""", re.MULTILINE)


def chosen_targets(
    path: str | os.PathLike[str], names: Sequence[str], selector: str | None
) -> tuple[str | None, list[str]]:
    """Which targets a pytest run checks: ``(NAME, [])`` for one (exactly today's run, also for a
    config without ``fleet:``, NAME None), ``(None, [A, B...])`` for a fleet session of several.
    ``names`` are ``--smoke-target`` globs; ConfigError when they or the selector choose nothing."""
    file = Path(path)
    if len(names) == 1 and not _is_glob(names[0]) and not selector:
        return names[0], []  # the exact name is checked where the target is loaded
    if not names and not selector and not _MAY_DECLARE_FLEET.search(_read_text(file)):
        return None, []
    fleet = _declared_fleet(file)
    if fleet is None:
        if names or selector:
            given = f"--smoke-target {names[0]}" if names else f"--smoke-target-selector {selector}"
            raise ConfigError(file, f"{given}: this config has no fleet: section", location="fleet")
        return None, []
    try:
        chosen = selected_targets(fleet, names, selector)
    except (ValueError, SelectorError) as error:
        raise ConfigError(file, str(error), location="fleet.targets") from None
    return (chosen[0], []) if len(chosen) == 1 else (None, chosen)


def _is_glob(name: str) -> bool:
    return any(character in name for character in "*?[")


def selected_targets(fleet: Fleet, names: Sequence[str], selector: str | None) -> list[str]:
    """The targets a run checks, in config order: those matching any ``names`` glob (all without
    one) and the ``selector``. ValueError when a glob or the selector selects nothing."""
    chosen = [target.name for target in fleet.targets]
    if names:
        for pattern in names:
            if not any(fnmatch.fnmatchcase(name, pattern) for name in chosen):
                known = ", ".join(target.name for target in fleet.targets)
                raise ValueError(f"--smoke-target {pattern}: no target matches (targets: {known})")
        chosen = [name for name in chosen if any(fnmatch.fnmatchcase(name, pattern) for pattern in names)]
    if selector:
        wanted = parse_selector(selector)
        chosen = [name for name in chosen if wanted.matches(fleet.target(name).labels)]  # type: ignore[union-attr]
        if not chosen:
            raise ValueError(f"--smoke-target-selector {selector!r} selects no target")
    return chosen


def config_digest(text: str) -> str:
    """What ties a target's report to the config its fleet was merged with."""
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def _fleet_of(file: Path, raw: Mapping[str, Any], lines: _LineFinder, text: str) -> Fleet | None:
    for name, override in (raw.get("environments") or {}).items():
        if isinstance(override, Mapping) and "fleet" in override:
            error_at_path(file, lines, ("environments", name, "fleet"), "an environment cannot set fleet")
    section = raw.get("fleet")
    if section is None:
        return None
    targets = section["targets"]
    if not targets or len(targets) > MAX_TARGETS:
        raise ConfigError(
            file,
            f"{len(targets)} targets: a fleet has 1 to {MAX_TARGETS}",
            location="fleet.targets",
            line=lines.line(["fleet", "targets"]),
        )
    for name, override in targets.items():
        for key in ("fleet", "environments"):
            if key in override:
                error_at_path(file, lines, ("fleet", "targets", name, key), f"a target cannot set {key}")
        # Each target is a whole run: its merged config must be valid before any request.
        merged = _deep_merge(_without_fleet(raw), _target_overrides(override))
        with _located_in_target(file, lines, name, override):
            _validate(file, merged, lines, context=f"with fleet target {name!r}")
    waves = _waves_of(file, section, lines)
    return Fleet(
        targets=tuple(
            FleetTarget(name, dict((override.get("labels") or {})), _wave_of(name, waves))
            for name, override in targets.items()
        ),
        waves=tuple(waves),
        max_rollbacks=int(section.get("max_rollbacks", 1)),
        digest=config_digest(text),
        ledger=FleetLedger(**section["ledger"]) if section.get("ledger") else None,
    )


def _waves_of(file: Path, section: Mapping[str, Any], lines: _LineFinder) -> list[FleetWave]:
    """Every target in exactly one wave, when waves are written."""
    targets = section["targets"]
    waves: list[FleetWave] = []
    for index, wave in enumerate(section.get("waves") or []):
        where = ("fleet", "waves", index, "select")
        try:
            chosen = parse_selector(wave["select"])
        except SelectorError as exc:
            error_at_path(file, lines, where, str(exc))
        names = tuple(name for name, target in targets.items() if chosen.matches(target.get("labels") or {}))
        if not names:
            error_at_path(file, lines, where, f"selects no target ({wave['select']!r})")
        for name in names:
            earlier = next((number for number, other in enumerate(waves, 1) if name in other.targets), None)
            if earlier:
                error_at_path(
                    file, lines, where, f"target {name!r} is in wave {earlier} already: a target is in one wave"
                )
        waves.append(FleetWave(index + 1, wave["select"], float(wave.get("bake_seconds", 0)), names))
    if waves:
        left_out = [name for name in targets if not any(name in wave.targets for wave in waves)]
        if left_out:
            error_at_path(
                file, lines, ("fleet", "waves"), f"target {left_out[0]!r} is in no wave: every target is in exactly one"
            )
    return waves


def _wave_of(name: str, waves: Iterable[FleetWave]) -> int | None:
    return next((wave.number for wave in waves if name in wave.targets), None)


def _without_fleet(raw: Mapping[str, Any]) -> dict[str, Any]:
    return {key: copy.deepcopy(value) for key, value in raw.items() if key not in ("fleet", "environments")}


def _target_overrides(override: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in override.items() if key != "labels"}


def _select_target(
    file: Path, data: dict[str, Any], fleet: Fleet | None, target: str | None, lines: _LineFinder
) -> tuple[dict[str, Any], FleetTarget | None]:
    section = data.pop("fleet", None)
    if fleet is None or section is None:
        if target:
            raise ConfigError(file, f"--smoke-target {target}: this config has no fleet: section", location="fleet")
        return data, None
    names = [entry.name for entry in fleet.targets]
    if not target:
        raise ConfigError(
            file,
            f"a fleet of {len(names)} target(s) ({_listed(names)}): a run checks one, named with --smoke-target NAME"
            " or SMOKE_TARGET; python -m pytest_smoke.fleet run checks them all",
            location="fleet.targets",
            line=lines.line(["fleet", "targets"]),
        )
    chosen = next((entry for entry in fleet.targets if entry.name == target), None)
    if chosen is None:
        close = difflib.get_close_matches(target, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            file,
            f"unknown target {target!r} (from --smoke-target); known: {_listed(names)}{hint}",
            location="fleet.targets",
            line=lines.line(["fleet", "targets"]),
        )
    return _deep_merge(data, _target_overrides(section["targets"][target])), chosen


@contextlib.contextmanager
def _located_in_target(file: Path, lines: _LineFinder, name: str, override: Mapping[str, Any]) -> Iterator[None]:
    """A problem with a value the target overrides is reported where the target writes it
    (``fleet.targets.b.base_url``), not at the top-level key it replaced."""
    try:
        yield
    except ConfigError as error:
        key = re.split(r"[.\[]", error.location, maxsplit=1)[0]
        if not key or key not in override or key == "labels":
            raise
        raise ConfigError(
            file,
            error.message,
            location=f"fleet.targets.{name}.{error.location}",
            line=lines.line(["fleet", "targets", name, key]),
        ) from None


def _listed(names: list[str], shown: int = 8) -> str:
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; anything else (lists included) replaces."""
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            base[key] = _deep_merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


# -- interpolation ---------------------------------------------------------------------------------


def _refuse_variables_in_names(file: Path, data: Mapping[str, Any], lines: _LineFinder) -> None:
    """A check's name becomes its pytest node id: the -v lines, the FAILED summary, --junitxml,
    .pytest_cache and every report show it before any redaction can act. So a name is written out,
    never filled from ``${VAR}`` (which may hold a secret)."""

    for section in SECTIONS:
        for index, entry in enumerate(data.get(section) or []):
            name = entry.get("name") if isinstance(entry, dict) else None
            if isinstance(name, str) and any(match.group(1) for match in _VAR.finditer(name)):
                raise ConfigError(
                    file,
                    "a check name cannot use ${VAR}: it becomes the pytest node id, which -v, --junitxml and "
                    ".pytest_cache show before any redaction; write the name out",
                    location=f"{section}[{index}].name",
                    line=lines.line([section, index, "name"]),
                )


def _interpolate(
    file: Path,
    value: Any,
    env: Mapping[str, str],
    secrets: set[str],
    lines: _LineFinder,
    path: tuple[Any, ...],
    budget: list[int],
    public: frozenset[str] = frozenset(),
) -> Any:
    """Fill ``${VAR}``; ``budget`` holds the characters the expanded values may still add, so a
    value repeated through YAML aliases cannot make a large variable fill the memory. Values of
    the variables named in ``public`` (``public_variables``) are never secrets."""
    if isinstance(value, dict):
        return {k: _interpolate(file, v, env, secrets, lines, path + (k,), budget, public) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(file, v, env, secrets, lines, path + (i,), budget, public) for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value

    key = next((p for p in reversed(path) if isinstance(p, str)), "")
    # Where {name} templates are filled later, a value from the environment must stay data.
    templated = is_templated_path(path)

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in env:
            resolved = env[name]
            if len(resolved) > MAX_VARIABLE_CHARS:
                raise ConfigError(
                    file,
                    f"environment variable {name} holds {len(resolved)} characters: a ${{VAR}} "
                    f"value may have at most {MAX_VARIABLE_CHARS}",
                    location=format_path(path),
                    line=lines.line(path),
                )
            # Anything under notifications (webhook URLs, SMTP credentials) is a credential. Under
            # an address key, a value is a credential when its name says so or it sits in the
            # query string (?api_key=) or the user info (user:pass@) of the URL.
            in_credential_part = "?" in value[: match.start()] or "@" in value[match.end() :]
            secret_key = name not in public and (
                key not in NOT_SECRET_KEYS
                or (bool(path) and path[0] == "notifications")
                or is_secret_name(name)
                or in_credential_part
            )
            if secret_key and len(resolved) >= MIN_SECRET_LENGTH:
                secrets.add(resolved)
        elif default is not None:
            resolved = default
        else:
            raise ConfigError(
                file,
                f"environment variable {name} is not set and has no default (write ${{{name}:-default}})",
                location=format_path(path),
                line=lines.line(path),
            )
        budget[0] -= len(resolved)
        if budget[0] < 0:
            raise ConfigError(
                file,
                f"${{VAR}} interpolation expands the document beyond {MAX_INTERPOLATED_CHARS} characters: refusing it",
                location=format_path(path),
                line=lines.line(path),
            )
        # A value from the environment is data, never a {template} for critical-path steps.
        return resolved.replace("{", "{{").replace("}", "}}") if templated else resolved

    return _VAR.sub(substitute, value)


# -- sendable: every address and header the run will use ---------------------------------------------

# Header names and values requests accepts (its own rule, plus latin-1 for http.client).
_HEADER_NAME = re.compile(r"^[^:\s][^:\r\n]*$")
_HEADER_VALUE = re.compile(r"^\S[^\r\n]*$|^$")
URL_SCHEMES = {"http", "https"}
DEPENDENCY_SCHEMES = {"redis": {"redis", "rediss", "unix"}, "amqp": {"amqp", "amqps"}, "http": URL_SCHEMES}


def _has_user_info(url: Any) -> bool:

    try:
        return isinstance(url, str) and bool(urlsplit(url).username)
    except ValueError:
        return False


Fail = Callable[[tuple[Any, ...], str], None]


def _check_sendable(config: SmokeConfig, lines: _LineFinder, base_url_source: str = "") -> None:
    """Every URL needs a scheme and a host, every header must be sendable: a config that would
    make the runner fail (and blame the service) stops here, before any request."""
    data = config.data

    def fail(path: tuple[Any, ...], message: str) -> None:
        error_at(config, lines, path, message)

    _check_base_url(fail, data, base_url_source)
    verify = data.get("verify_tls", True)
    for index, spec in enumerate(data.get("health_checks") or []):
        _check_endpoint(fail, ("health_checks", index, "endpoint"), spec["endpoint"])
        _check_headers(fail, ("health_checks", index, "headers"), spec.get("headers"))
        url = spec["endpoint"] if "://" in spec["endpoint"] else data.get("base_url")
        _check_certificate_expectation(fail, ("health_checks", index), spec, url, verify)
    for index, spec in enumerate(data.get("dependency_checks") or []):
        _check_dependency_url(fail, ("dependency_checks", index), spec)
        _check_certificate_expectation(fail, ("dependency_checks", index), spec, spec.get("url"), verify)
        _check_headers(fail, ("dependency_checks", index, "headers"), spec.get("headers"))
    for index, spec in enumerate(data.get("critical_paths") or []):
        for group in ("steps", "cleanup"):
            for step_index, step in enumerate(spec.get(group) or []):
                base = ("critical_paths", index, group, step_index)
                _check_endpoint(fail, base + ("endpoint",), step["endpoint"])
                _check_headers(fail, base + ("headers",), step.get("headers"))
    _check_url(fail, ("auto_rollback", "approval_url"), (data.get("auto_rollback") or {}).get("approval_url"))
    for name, channel in (data.get("notifications") or {}).items():
        if isinstance(channel, dict):
            for key in ("url", "webhook_url", "events_url", "api_url"):
                _check_url(fail, ("notifications", name, key), channel.get(key))
            _check_headers(fail, ("notifications", name, "headers"), channel.get("headers"))


def _check_base_url(fail: Fail, data: Mapping[str, Any], source: str) -> None:
    if data.get("base_url"):
        problem = url_problem(data["base_url"], URL_SCHEMES) or _query_or_fragment(data["base_url"])
        if problem:
            where = f" (from {source})" if source else ""
            fail(("base_url",), f"base URL {problem}{where}")
    _check_headers(fail, ("headers",), data.get("headers"))
    if _has_user_info(data.get("base_url")) and any(
        str(name).lower() == "authorization" for name in data.get("headers") or {}
    ):
        # requests would send the URL's Basic credentials and silently drop the configured header.
        fail(
            ("headers", "Authorization"),
            "base_url carries credentials (user:password@) and headers sets Authorization: "
            "only the URL's would be sent; keep one of them",
        )


def _check_dependency_url(fail: Fail, path: tuple[Any, ...], spec: Mapping[str, Any]) -> None:
    schemes = DEPENDENCY_SCHEMES.get(spec.get("type", ""))
    if schemes and spec.get("url"):
        problem = url_problem(spec["url"], schemes)
        if problem:
            fail(path + ("url",), f"URL {problem}")


def _check_url(fail: Fail, path: tuple[Any, ...], url: Any) -> None:
    """An http(s) URL the run will call (an approval service, a channel), when one is written."""
    if url:
        problem = url_problem(url, URL_SCHEMES)
        if problem:
            fail(path, f"URL {problem}")


def _check_published_labels(config: SmokeConfig, lines: _LineFinder) -> None:
    """Pushgateway labels and the job travel in the clear in the push URL's path and show on every
    dashboard: no masking can act there, so a secret (a ${VAR} value) is refused before any request."""
    pushgateway = (config.data.get("monitoring") or {}).get("pushgateway") or {}
    named = [(("job",), pushgateway.get("job"))] + [
        (("labels", key), value) for key, value in (pushgateway.get("labels") or {}).items()
    ]
    for where, value in named:
        if isinstance(value, str) and any(secret in value for secret in config.secrets):
            error_at(
                config,
                lines,
                ("monitoring", "pushgateway", *where),
                "a Pushgateway label is sent in the clear (the push URL's path, every dashboard), and this value "
                "comes from a ${VAR} the run treats as a secret: list the variable under "
                "public_variables, or write the value out",
            )


# Keys of a notification channel whose value is a credential even when written in the file itself
# (a webhook's URL often carries its token in the path).
CHANNEL_CREDENTIALS = ("routing_key", "api_key", "password", "webhook_url", "url")


def _written_credentials(data: Mapping[str, Any]) -> set[str]:
    """Credentials written as literals (not ``${VAR}``) where the output may echo them: channel
    keys, and the credential headers (Authorization, X-Api-Key...) of the channels and the Pushgateway."""
    channels = [(c, CHANNEL_CREDENTIALS) for c in (data.get("notifications") or {}).values() if isinstance(c, dict)]
    # The Pushgateway's URL is an address (shown in the verdict); only its password would be a secret.
    pushgateway = ((data.get("monitoring") or {}).get("pushgateway")) or {}
    found: set[str] = set()
    for block, keys in [*channels, (pushgateway, ())]:
        found |= _block_credentials(block, keys)
    # The password of any URL written with one (a DSN, base_url): a client library may print it
    # without the URL around it (libpq reads "app:Pa55@W0rd@host" as host "W0rd@host").
    for _, text in strings_in(data, ()):
        password = url_password(text) if "://" in text and "@" in text else None
        if password and len(password) >= MIN_SECRET_LENGTH:
            found |= {password, *password_pieces(password)}
    return found


def _block_credentials(block: Mapping[str, Any], keys: Iterable[str]) -> set[str]:
    """A channel's (or the Pushgateway's) credential keys, credential headers and URL passwords."""
    headers = block.get("headers") or {}
    values = [block.get(key) for key in keys] + [v for k, v in headers.items() if is_secret_name(str(k))]
    values += [url_password(block.get(key)) for key in ("url", "events_url", "api_url")]
    return {value for value in values if isinstance(value, str) and len(value) >= MIN_SECRET_LENGTH}


def _basic_auth_to_headers(
    file: Path, data: dict[str, Any], lines: _LineFinder, written: Mapping[str, Any]
) -> set[str]:
    """``basic_auth: {username, password}`` becomes the Authorization header at the same level
    (the top level, a health check, an http dependency, a step or cleanup step), so it is inherited
    and removed as any header is. It is encoded here, once: a step's ``{saved}`` templates cannot
    reach it, so one written there (``written``: the config before ``${VAR}``) is a config error.
    Returns the secrets it makes: the password and the encoded credentials."""

    blocks: list[tuple[tuple[Any, ...], dict[str, Any]]] = [((), data)]
    blocks += [(("health_checks", i), spec) for i, spec in enumerate(data.get("health_checks") or [])]
    blocks += [(("dependency_checks", i), spec) for i, spec in enumerate(data.get("dependency_checks") or [])]
    for i, path in enumerate(data.get("critical_paths") or []):
        for group in ("steps", "cleanup"):
            blocks += [(("critical_paths", i, group, j), step) for j, step in enumerate(path.get(group) or [])]
    secrets: set[str] = set()
    for where, block in blocks:
        auth = block.pop("basic_auth", None)
        if auth is None:
            continue
        for key in ("username", "password"):
            text = _value_at(written, (*where, "basic_auth", key))
            if isinstance(text, str) and TEMPLATE_FIELD.search(VARIABLE_OR_DOLLAR.sub("", text)):
                raise ConfigError(
                    file,
                    "basic_auth takes no {templates} (it is encoded as the config loads); use ${VAR}",
                    location=format_path((*where, "basic_auth", key)),
                    line=lines.line([*where, "basic_auth", key]),
                )
        headers = dict(block.get("headers") or {})
        if any(str(name).lower() == "authorization" for name in headers):
            raise ConfigError(
                file,
                "basic_auth and headers.Authorization are both set: keep one of them",
                location=format_path((*where, "basic_auth")),
                line=lines.line([*where, "basic_auth"]),
            )
        token = base64.b64encode(f"{auth['username']}:{auth['password']}".encode("utf-8")).decode("ascii")
        block["headers"] = {**headers, "Authorization": f"Basic {token}"}
        secrets |= {value for value in (auth["password"], token) if len(value) >= MIN_SECRET_LENGTH}
    return secrets


TEMPLATE_FIELD = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")
VARIABLE_OR_DOLLAR = re.compile(r"\$\$|\$\{[^}]*\}")


def _value_at(document: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        try:
            document = document[key]
        except (KeyError, IndexError, TypeError):
            return None
    return document


def url_password(url: Any) -> str | None:
    """The password of a ``user:password@`` URL, or None."""

    try:
        return urlsplit(url).password if isinstance(url, str) else None
    except ValueError:
        return None


def _check_certificate_expectation(
    fail: Any, path: tuple[Any, ...], spec: Mapping[str, Any], url: str | None, verify: Any
) -> None:
    """``expect.certificate_expires_in_days`` reads the certificate of a verified HTTPS connection."""
    if "certificate_expires_in_days" not in (spec.get("expect") or {}):
        return
    where = path + ("expect", "certificate_expires_in_days")
    if verify is False:
        fail(where, "reads the certificate of a verified TLS connection, and verify_tls is false")
    if url and not str(url).lower().startswith("https://"):
        fail(where, "needs an https:// URL; this check sends to http://")


def url_problem(url: str, schemes: set[str]) -> str | None:
    """Why ``url`` cannot be used (no scheme, no host, a bad port), or None. Never shows the URL,
    which may carry a credential."""

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    wanted = " or ".join(f"{s}://HOST" for s in sorted(schemes))
    if not parts.scheme or "://" not in url:
        return f"has no scheme (expected {wanted})"
    if parts.scheme.lower() not in schemes:
        return f"has the scheme {parts.scheme!r}; expected {wanted}"
    if not parts.hostname and parts.scheme != "unix":
        return "has no host"
    if parts.port == 0:
        return "has port 0"
    labels = (parts.hostname or "").rstrip(".").split(".")
    if (
        parts.hostname
        and not parts.hostname.startswith("[")
        and ":" not in parts.hostname
        and any(not label or len(label) > 63 for label in labels)
    ):
        return "has a host name that cannot be resolved (an empty label or one longer than 63 characters)"
    if any(ch.isspace() for ch in url):
        return "contains whitespace"
    return None


def _query_or_fragment(url: str) -> str | None:
    """An endpoint is joined to the base URL's path: a query or fragment there would be dropped
    silently (and a fragment would drop the path too), so it is refused."""

    parts = urlsplit(url)
    if parts.query or parts.fragment or url.rstrip().endswith(("?", "#")):
        return (
            "has a query or fragment (?... or #...): endpoints are joined to its path and "
            "would lose it; put the query in each endpoint"
        )
    return None


def _check_endpoint(fail: Any, path: tuple[Any, ...], endpoint: str) -> None:
    if "://" not in endpoint:
        if any(ch in endpoint for ch in "\r\n\t "):
            fail(path, "endpoint contains whitespace")
        return
    head = endpoint.split("/", 3)[:3]  # scheme://host: a {template} there cannot be checked yet
    if "{" in "/".join(head):
        return
    problem = url_problem(endpoint, URL_SCHEMES)
    if problem:
        fail(path, f"endpoint {problem}")


def _check_headers(fail: Any, path: tuple[Any, ...], headers: Any) -> None:
    for name, value in (headers or {}).items():
        if not isinstance(value, str):
            continue  # the schema already said what it may be
        if not _HEADER_NAME.match(str(name)):
            fail(path + (name,), "header name cannot be sent (it contains ':', whitespace or a line break)")
        if not _HEADER_VALUE.match(value):
            fail(path + (name,), "header value cannot be sent (it starts with whitespace or contains a line break)")
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            fail(path + (name,), "header value cannot be sent (HTTP headers take latin-1 characters only)")


def error_at_path(file: Path, lines: _LineFinder, path: tuple[Any, ...], message: str) -> NoReturn:
    """Raise the ConfigError for the value at ``path`` of ``file``: file, path and line."""
    raise ConfigError(file, message, location=format_path(path), line=lines.line(path))


def error_at(config: SmokeConfig, lines: _LineFinder, path: tuple[Any, ...], message: str) -> NoReturn:
    """Raise the ConfigError for the value at ``path``: file, path and line."""
    error_at_path(config.path, lines, path, message)


# -- checks ----------------------------------------------------------------------------------------


def _build_checks(config: SmokeConfig, lines: _LineFinder) -> list[Check]:
    checks: list[Check] = []
    for section, (kind, _timeout) in SECTIONS.items():
        seen: dict[str, int] = {}
        for index, spec in enumerate(config.data.get(section) or []):
            location = f"{section}[{index}]"
            name = spec["name"]
            if name in seen:
                raise ConfigError(
                    config.path,
                    f"duplicate check name {name!r} (also used by {section}[{seen[name]}])",
                    location=f"{location}.name",
                    line=lines.line([section, index, "name"]),
                )
            seen[name] = index
            if kind == "health":
                _require_base_url(config, spec["endpoint"], (section, index, "endpoint"), lines)
            for path, expect in _expectations(spec, (section, index)):
                _check_expect_patterns(config, expect, path, lines)
            if kind == "critical_path":
                _check_path_templates(config, spec, index, lines)
            if kind == "metric":
                _check_metric(config, spec, (section, index), lines)
            checks.append(Check.of(kind, spec, location=location, order=len(checks)))
    return checks


def _check_metric(config: SmokeConfig, spec: Mapping[str, Any], path: tuple[Any, ...], lines: _LineFinder) -> None:
    """A metric check's condition parses and its URL can be sent to, before any request."""

    try:
        parse_condition(spec["condition"])
    except ValueError as exc:
        error_at(config, lines, path + ("condition",), str(exc))
    problem = url_problem(spec["url"], URL_SCHEMES)
    if problem:
        error_at(config, lines, path + ("url",), f"URL {problem}")
    if spec.get("count", 1) > 1 and spec.get("interval", 0) * (spec["count"] - 1) >= spec.get("timeout_seconds", 10):
        error_at(
            config,
            lines,
            path + ("interval",),
            f"{spec['count']} measurements {spec.get('interval', 0):g} s apart "
            f"do not fit in timeout_seconds ({spec.get('timeout_seconds', 10):g} s)",
        )


def _require_base_url(config: SmokeConfig, endpoint: str, path: tuple[Any, ...], lines: _LineFinder) -> None:
    if "://" in endpoint or config.base_url:
        return
    error_at(
        config,
        lines,
        path,
        f"endpoint {endpoint!r} is relative but no base URL is set "
        "(set base_url in the config, --smoke-base-url or SMOKE_BASE_URL)",
    )


# Template values every critical path has: one id per run, a fresh UUID at each use, the run's
# start in epoch seconds (unique names for what a path creates, and cleanup by that name).
BUILTIN_TEMPLATES = ("run_id", "uuid", "timestamp", "repetition")


def template_fields(text: str) -> list[str]:
    """The ``{name}`` fields in ``text``; raises ValueError on malformed braces."""
    names = []
    for _literal, name, spec, conversion in string.Formatter().parse(text):
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise ValueError(f"invalid template field {{{name}}}: use {{name}}, or {{{{ for a literal brace")
        names.append(name)
    return names


def strings_in(value: Any, path: tuple[Any, ...]) -> Iterable[tuple[tuple[Any, ...], str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from strings_in(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from strings_in(v, path + (i,))


# Where a critical-path step takes {name} templates from saved values: the request, and the
# expectations that compare with them (not body_matches or header patterns: regexes use braces).
TEMPLATED_STEP_KEYS = ("endpoint", "headers", "params", "payload", "form")
TEMPLATED_EXPECT_KEYS = ("json", "body_contains", "body_not_contains")


def templated_values(step: Mapping[str, Any]) -> Iterable[tuple[tuple[Any, ...], Any]]:
    """``(key path, value)`` for each part of a step that ``{name}`` templates fill."""
    for key in TEMPLATED_STEP_KEYS:
        if key in step:
            yield (key,), step[key]
    for key in TEMPLATED_EXPECT_KEYS:
        if key in (step.get("expect") or {}):
            yield ("expect", key), step["expect"][key]


def is_templated_path(path: tuple[Any, ...]) -> bool:
    """Whether a config path lies where critical-path templates are filled (or a rollback command)."""
    if path[:2] == ("rollback_strategy", "command"):
        return True
    if len(path) < 5 or path[0] != "critical_paths" or path[2] not in ("steps", "cleanup"):
        return False
    return path[4] in TEMPLATED_STEP_KEYS or (
        path[4] == "expect" and len(path) > 5 and path[5] in TEMPLATED_EXPECT_KEYS
    )


def _check_path_templates(config: SmokeConfig, spec: Mapping[str, Any], index: int, lines: _LineFinder) -> None:
    saved: list[str] = list(BUILTIN_TEMPLATES)
    for group in ("steps", "cleanup"):
        for step_index, step in enumerate(spec.get(group) or []):
            base = ("critical_paths", index, group, step_index)
            _require_base_url(config, step["endpoint"], base + ("endpoint",), lines)
            for where, value in templated_values(step):
                for path, text in strings_in(value, base + where):
                    try:
                        names = template_fields(text)
                    except ValueError as exc:
                        raise ConfigError(config.path, str(exc), format_path(path), lines.line(path)) from None
                    for name in names:
                        if name not in saved:
                            known = ", ".join(saved[len(BUILTIN_TEMPLATES) :]) or "nothing is saved before this step"
                            known += f"; built in: {', '.join(BUILTIN_TEMPLATES)}"
                            raise ConfigError(
                                config.path,
                                f"unknown template variable {{{name}}} (saved so far: {known}; "
                                "write {{ for a literal brace)",
                                format_path(path),
                                lines.line(path),
                            )
            for name, source in (step.get("save") or {}).items():
                if name in BUILTIN_TEMPLATES:
                    path = base + ("save", name)
                    raise ConfigError(
                        config.path,
                        f"{{{name}}} is a built-in template value: save under another name",
                        format_path(path),
                        lines.line(path),
                    )
                if source.startswith("body~"):
                    _check_save_pattern(config, source, base + ("save", name), lines)
            if group == "steps":
                saved.extend(step.get("save") or {})


def _check_save_pattern(config: SmokeConfig, source: str, path: tuple[Any, ...], lines: _LineFinder) -> None:
    """``body~REGEX``: the regular expression must compile and have a group (the value)."""
    try:
        groups = re.compile(source[len("body~") :]).groups
    except re.error as exc:
        error_at(config, lines, path, f"{source!r} is not a valid regular expression: {exc}")
    if groups < 1:
        error_at(
            config,
            lines,
            path,
            f'{source!r} has no group: wrap the value in parentheses, e.g. body~name="csrf" value="([^"]+)"',
        )


def _expectations(
    spec: Mapping[str, Any], base: tuple[Any, ...]
) -> Iterable[tuple[tuple[Any, ...], Mapping[str, Any]]]:
    if isinstance(spec.get("expect"), dict):
        yield base + ("expect",), spec["expect"]
    for group in ("steps", "cleanup"):
        for index, step in enumerate(spec.get(group) or []):
            if isinstance(step.get("expect"), dict):
                yield base + (group, index, "expect"), step["expect"]


def _check_expect_patterns(
    config: SmokeConfig, expect: Mapping[str, Any], path: tuple[Any, ...], lines: _LineFinder
) -> None:
    """Regular expressions in ``expect`` compile before the first request."""
    patterns = [(path + ("body_matches",), expect["body_matches"])] if "body_matches" in expect else []
    patterns += [
        (path + ("headers", name, "matches"), wanted["matches"])
        for name, wanted in (expect.get("headers") or {}).items()
        if isinstance(wanted, dict)
    ]
    for where, pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            error_at(config, lines, where, f"{pattern!r} is not a valid regular expression: {exc}")
