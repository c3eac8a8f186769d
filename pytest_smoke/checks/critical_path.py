"""The critical-path runner: multi-step user workflows over one HTTP session.

Steps run in order over one ``requests.Session`` (cookies persist). A step can ``save`` values
from its response for later steps, which use them as ``{name}`` templates. ``cleanup`` steps run
afterwards whether the path passed or failed. One deadline covers all steps.
"""

from __future__ import annotations

import json
import re
import string
import uuid
from typing import Any, Mapping

from ..config import BUILTIN_TEMPLATES, strings_in, template_fields, templated_values
from ..redact import is_secret_name, shorten
from ..specs import CriticalPathSpec, StepSpec
from .base import CheckContext, CheckFailed, CheckResult, Deadline
from .http import Reply, curl_command, exchange, join_url, new_session, verify_reply

# Cleanup runs even when the path used up its deadline, so it has a budget of its own.
CLEANUP_SECONDS = 5.0  # cleanup_timeout_seconds when the path does not say


def cleanup_seconds(spec: Any) -> float:
    """How long the path's cleanup may take after its own deadline (0 without cleanup steps)."""
    return float(spec.get("cleanup_timeout_seconds", CLEANUP_SECONDS)) if spec.get("cleanup") else 0.0


# A literal like the seed's "password": "test" is masked by its key wherever it is shown; only
# longer literals are also hunted for in free text, so "test" does not mask "pytest".
MIN_LITERAL_SECRET = 6


class StepFailed(CheckFailed):
    pass


class TemplateValues(dict):  # type: ignore[type-arg]
    """What ``{name}`` fills in: the values saved so far and the built-in ones; ``{uuid}`` is a
    fresh UUID at each use."""

    def __init__(self, ctx: CheckContext):
        super().__init__(run_id=ctx.run_id, timestamp=ctx.run_started, repetition=ctx.repetition)

    def __missing__(self, key: str) -> Any:
        if key == "uuid":
            return str(uuid.uuid4())
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return key == "uuid" or super().__contains__(key)


def saved_only(values: Mapping[str, Any]) -> dict[str, Any]:
    """The values the steps saved, without the built-in ones."""
    return {k: v for k, v in values.items() if k not in BUILTIN_TEMPLATES}


def run_path(spec: CriticalPathSpec, ctx: CheckContext) -> CheckResult:
    deadline = Deadline(spec.get("timeout_seconds", 30))
    saved = TemplateValues(ctx)
    steps = list(spec["steps"])
    _learn_secrets(ctx, steps + list(spec.get("cleanup") or []))
    warnings: list[str] = []
    with new_session(ctx) as session:
        try:
            for number, step in enumerate(steps, start=1):
                _run_step(session, ctx, step, number, len(steps), saved, deadline, "", warnings)
        except CheckFailed as failure:
            warnings += _cleanup(session, ctx, spec, saved)
            if warnings:
                failure.details += "\n" + "\n".join(f"warning: {w}" for w in warnings)
            raise
        warnings += _cleanup(session, ctx, spec, saved)
    return CheckResult(
        summary=f"{len(steps)} step(s) passed",
        facts={"steps": len(steps), "saved": sorted(saved_only(saved))},
        warnings=warnings,
    )


def _learn_secrets(ctx: CheckContext, steps: list[StepSpec]) -> None:
    """Literal values under secret-looking keys (a login password) are secrets too."""

    def walk(value: Any, key: str = "") -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, str(k))
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif key and is_secret_name(key) and isinstance(value, str):
            # Only the literal part: "Bearer {token}" is masked once {token} is known.
            for literal, _field, _spec, _conv in _format_parts(value):
                if len(literal.strip()) >= MIN_LITERAL_SECRET:
                    ctx.redactor.add(literal.strip())

    for step in steps:
        walk(step.get("payload"))
        walk(step.get("form"))
        walk(step.get("headers"))


def _format_parts(text: str) -> list[tuple[str, Any, Any, Any]]:

    try:
        return list(string.Formatter().parse(text))
    except ValueError:
        return [(text, None, None, None)]


def render(value: Any, saved: Mapping[str, Any]) -> Any:
    """Fill ``{name}`` templates from saved values; a string that is exactly one field keeps its type."""
    if isinstance(value, str):
        fields = template_fields(value)
        if len(fields) == 1 and value == "{" + fields[0] + "}":
            return saved[fields[0]]
        return value.format_map(saved) if fields or "{" in value or "}" in value else value
    if isinstance(value, dict):
        return {k: render(v, saved) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, saved) for v in value]
    return value


def _run_step(
    session: Any,
    ctx: CheckContext,
    step: StepSpec,
    number: int,
    total: int,
    saved: dict[str, Any],
    deadline: Deadline,
    prefix: str,
    warnings: list[str],
) -> Reply:
    method = step.get("method", "GET")
    endpoint = render(step["endpoint"], saved)
    url = join_url(ctx.base_url, str(endpoint))
    # None removes a header the session inherits from the top level (requests drops None values).
    headers = {k: None if v is None else str(v) for k, v in render(step.get("headers") or {}, saved).items()}
    params = render(step.get("params"), saved)
    payload = render(step.get("payload"), saved)
    form = render(step.get("form"), saved)
    body, content_type = step.get("body"), step.get("content_type")
    expect = _rendered_expect(step.get("expect"), saved)
    follow = step.get("follow_redirects", ctx.follow_redirects)
    title = f' "{step["name"]}"' if step.get("name") else ""
    where = f"step {number}/{total}{title} ({method} {endpoint})"
    sent = {
        "headers": headers,
        "params": params,
        "payload": payload,
        "form": form,
        "body": body,
        "content_type": content_type,
    }

    def fail(failure: CheckFailed) -> StepFailed:
        curl = curl_command(ctx.redactor, method, url, session=session, **sent)
        lines = [failure.details] if failure.details else []
        lines.append(f"saved so far: {_show_saved(ctx, saved)}")
        lines.append(f"reproduce: {curl}")
        reason = failure.reason
        for lead in (f"{method} {url}", f"{method} {endpoint}", str(endpoint)):
            if reason.startswith(lead):
                reason = reason[len(lead) :].lstrip(" :")
                break
        return StepFailed(
            f"{prefix}{where} {reason}", "\n".join(lines), kind=failure.kind, step=number, **failure.facts
        )

    try:
        if step.get("rate_limit"):
            reply = _rate_limit(
                session, method, url, headers, params, payload, deadline, step["rate_limit"], str(endpoint)
            )
        else:
            reply = exchange(
                session,
                method,
                url,
                deadline,
                headers=headers,
                params=params,
                payload=payload,
                label=f"{method} {url}",
                form=form,
                body=body,
                content_type=content_type,
                follow_redirects=follow,
                max_redirects=ctx.max_redirects,
            )
            result = verify_reply(reply, method, str(endpoint), step.get("required_status"), expect)
            warnings += [f"{prefix}{where}: {warning}" for warning in result.warnings]
            if payload is not None and reply.is_html:
                # A form view answers a JSON body by showing the form again, often with 200.
                warnings.append(
                    f"{prefix}{where}: sent JSON (payload), the answer is an HTML page: "
                    "a form view expects form data (use form instead of payload)"
                )
        _save(ctx, reply, step.get("save") or {}, saved)
    except CheckFailed as failure:
        raise fail(failure) from None
    for cookie in session.cookies:
        ctx.redactor.add(cookie.value)
    return reply


def _rendered_expect(expect: Mapping[str, Any] | None, saved: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """``expect`` with saved values filled where templates are allowed (json, body_contains...)."""
    if not expect:
        return expect
    filled = dict(expect)
    for (_, key), value in templated_values({"expect": expect}):
        filled[key] = render(value, saved)
    return filled


def _rate_limit(session, method, url, headers, params, payload, deadline, rule, endpoint) -> Reply:  # type: ignore[no-untyped-def]
    wanted = int(rule.get("expect_status", 429))
    limit = int(rule["requests"])
    statuses: dict[int, int] = {}
    for _ in range(limit):
        reply = exchange(
            session,
            method,
            url,
            deadline,
            headers=headers,
            params=params,
            payload=payload,
            label=f"{method} {endpoint}",
        )
        if reply.status == wanted:
            return reply
        statuses[reply.status] = statuses.get(reply.status, 0) + 1
    seen = ", ".join(f"{count}x {status}" for status, count in sorted(statuses.items()))
    raise CheckFailed(
        f"rate limiting not enforced after {limit} requests (no {wanted}; got {seen})", kind="rate_limit_not_enforced"
    )


def _save(ctx: CheckContext, reply: Reply, rules: Mapping[str, str], saved: dict[str, Any]) -> None:
    for name, source in rules.items():
        if source.startswith("body~"):
            saved[name] = _save_match(reply, name, source)
            if is_secret_name(name):
                ctx.redactor.add(saved[name])
            continue
        root, _, rest = source.partition(".")
        if root == "headers":
            rest = rest.lower()
        saved[name] = _walk(_save_root(reply, root, name, source), root, rest, name, source)
        if is_secret_name(name) or root == "cookies" or is_secret_name(rest):
            ctx.redactor.add(saved[name])


def _save_root(reply: Reply, root: str, name: str, source: str) -> Any:
    """What a ``save`` path starts from: the JSON body, the headers (lower-cased) or the cookies."""
    if root == "body":
        try:
            return reply.json()
        except ValueError:
            raise CheckFailed(
                f"cannot save {name!r} from {source}: the response body is not JSON", kind="save_missing"
            ) from None
    if root == "headers":
        return {k.lower(): v for k, v in reply.headers.items()}
    return reply.cookies


def _walk(value: Any, walked: str, rest: str, name: str, source: str) -> Any:
    """Follow the dotted path ``rest`` (keys, list indexes) down from ``value``."""
    for part in rest.split(".") if rest else []:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise CheckFailed(
                f"cannot save {name!r}: {source} not found ({walked} has {_shape(value)})", kind="save_missing"
            )
        walked += "." + part
    return value


def _shape(value: Any) -> str:
    if isinstance(value, dict):
        return f"keys: {', '.join(map(str, value)) or 'none'}"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    return f"a {type(value).__name__}"


def _save_match(reply: Reply, name: str, source: str) -> str:

    match = re.search(source[len("body~") :], reply.text)
    if match is None:
        raise CheckFailed(f"cannot save {name!r}: {source} does not match the response body", kind="save_missing")
    return match.group(1) or ""


def _cleanup(session: Any, ctx: CheckContext, spec: CriticalPathSpec, saved: dict[str, Any]) -> list[str]:
    warnings = []
    steps = list(spec.get("cleanup") or [])
    deadline = Deadline(cleanup_seconds(spec))
    for number, step in enumerate(steps, start=1):
        missing = [f for _, value in templated_values(step) for f in _fields(value) if f not in saved]
        if missing:
            warnings.append(f"cleanup step {number} skipped: {{{missing[0]}}} was never saved")
            continue
        try:
            _run_step(session, ctx, step, number, len(steps), saved, deadline, "cleanup ", warnings)
        except CheckFailed as failure:
            warnings.append(f"cleanup failed: {failure.reason}")
    return warnings


def _fields(value: Any) -> list[str]:
    return [name for _, text in strings_in(value, ()) for name in template_fields(text)]


def _show_saved(ctx: CheckContext, saved: Mapping[str, Any]) -> str:
    own = saved_only(saved)
    if not own:
        return "(nothing)"
    shown = ctx.redactor.value(own)
    return ", ".join(f"{k}={shorten(v if isinstance(v, str) else json.dumps(v), 60)}" for k, v in shown.items())
