"""Ops confirmation for a rollback: pre-approval, an approval URL, or a prompt on a terminal.

Order: ``--smoke-confirm-rollback`` / ``SMOKE_CONFIRM_ROLLBACK=1`` (approved in the pipeline),
then the ``approval_url`` gate (polled until it answers 200 with the JSON object
``{"approved": true}``; an approval is given, never inferred from a status code), then an
interactive prompt when a terminal is attached (default no). Every wait is bounded by ``confirmation_timeout_seconds``.
"""

from __future__ import annotations

import json
import os
import select
import time
from typing import Any, Literal, Mapping

import requests

from ...checks.base import CheckTimeout, Deadline, run_with_deadline

APPROVAL_POLL_SECONDS = 1.0
APPROVAL_BYTES = 8192  # an approval is a small JSON object; the rest of a larger answer is not read
TRUTHY = {"1", "true", "yes", "y"}


def preapproved(flag: bool, environ: Mapping[str, str]) -> bool:
    return flag or environ.get("SMOKE_CONFIRM_ROLLBACK", "").strip().lower() in TRUTHY


def poll_approval_url(
    url: str, timeout: float, verify: bool | str = True, revision: int | None = None
) -> tuple[bool, str]:
    """Poll until the URL approves, denies, or the time is up. Only ``200`` with the JSON object
    ``{"approved": true}`` approves (with ``"revision": N``, only a rollback away from revision N);
    ``403``/``410`` or ``{"approved": false, "denied": true}`` deny at once; a redirect or an HTML
    page is "not approved" at once (a login page); anything else is "not yet"."""
    end = time.monotonic() + timeout
    last = "no answer"
    with requests.Session() as session:
        session.trust_env = False
        while True:
            remaining = end - time.monotonic()
            if remaining <= 0:
                return False, f"approval URL did not approve within {timeout:g} s (last: {last})"
            try:
                status, content_type, head = _ask(session, url, min(5.0, max(remaining, 0.1)), verify)
            except (requests.RequestException, CheckTimeout) as exc:
                last = exc.__class__.__name__
            else:
                if 300 <= status < 400:
                    return False, (
                        f"not approved: the approval URL redirected ({status}, to a login page?); "
                        'only a 200 with {"approved": true} from the URL itself approves'
                    )
                if status in (403, 410):
                    return False, f"denied through the approval URL ({status})"
                if status == 200:
                    answer = approval_of(content_type, head, revision)
                    if answer is True:
                        return True, "approved through the approval URL"
                    if answer.startswith(FINAL):
                        return False, answer[len(FINAL) :]
                    last = f"HTTP 200, {answer}"
                else:
                    last = f"HTTP {status}"
            time.sleep(min(APPROVAL_POLL_SECONDS, max(end - time.monotonic(), 0)))


FINAL = "final:"  # an answer that ends the wait at once


def approval_of(content_type: str, body: bytes, revision: int | None) -> "Literal[True] | str":
    """True for an approval; otherwise what came back, in words (prefixed FINAL when it is final)."""
    text = body.decode("utf-8", "replace").lstrip("\ufeff \t\r\n")
    lowered = text[:2048].lower()
    if "html" in content_type.lower() or lowered.startswith("<") or "<html" in lowered or "<body" in lowered:
        return FINAL + "not approved: the approval URL answered an HTML or XML page (a login page?), not an approval"
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except ValueError as exc:
        return f"not JSON ({exc}): {_excerpt(text)}" if "duplicate" in str(exc) else f"not JSON: {_excerpt(text)}"
    if not isinstance(data, dict) or "approved" not in data:
        return f'no "approved" in {_excerpt(text)}'
    if data.get("denied") is True:  # a no anywhere in the answer wins
        return FINAL + f"denied through the approval URL ({_excerpt(text)})"
    if data["approved"] is not True:
        return f'"approved" is {_excerpt(json.dumps(data["approved"]))}'
    named = data.get("revision")
    if named is not None and revision is not None and str(named) != str(revision):
        return FINAL + (
            f"not approved: the approval names revision {_excerpt(str(named))}, "
            f"this rollback moves away from revision {revision}"
        )
    return True


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An approval whose keys repeat ("approved": false, "approved": true) is ambiguous: refused."""
    keys = [key for key, _ in pairs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise ValueError(f"duplicate key {', '.join(repeated)}")
    return dict(pairs)


def _excerpt(text: str) -> str:
    """A short, printable excerpt of what a server sent (control bytes escaped)."""
    flat = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:120])
    return flat[:80] + ("..." if len(flat) > 80 or len(text) > 120 else "")


def _ask(session: Any, url: str, seconds: float, verify: bool | str) -> tuple[int, str, bytes]:
    """One poll within one total deadline (a server that trickles its body cannot hold the run).
    Never follows a redirect: an SSO or oauth2-proxy login page answers 200 too."""

    def get() -> tuple[int, str, bytes]:
        with session.get(url, timeout=seconds, verify=verify, allow_redirects=False, stream=True) as response:
            body = response.raw.read(APPROVAL_BYTES, decode_content=True) or b""
            return response.status_code, response.headers.get("Content-Type", ""), body

    return run_with_deadline(get, Deadline(seconds), what="approval URL", abort=session.close)


def prompt_on_terminal(question: str, timeout: float) -> tuple[bool, str] | None:
    """Ask on the controlling terminal; None when there is none (CI, a Job, cron)."""
    try:
        # Raw file descriptor: a terminal is not seekable, which buffered "r+" mode requires.
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return None
    try:
        os.write(fd, f"{question} [y/N] (no answer in {timeout:g} s means no): ".encode())
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            os.write(fd, b"\n")
            return False, f"no answer at the terminal within {timeout:g} s"
        answer = os.read(fd, 1024).decode(errors="replace").strip().lower()
    finally:
        os.close(fd)
    return (True, "confirmed at the terminal") if answer in TRUTHY else (False, "declined at the terminal")


def confirm(
    *,
    flag: bool,
    environ: Mapping[str, str],
    approval_url: str | None,
    timeout: float,
    question: str,
    interactive: bool = True,
    verify: bool | str = True,
    revision: int | None = None,
) -> tuple[bool, str]:
    if preapproved(flag, environ):
        return True, "pre-approved (--smoke-confirm-rollback / SMOKE_CONFIRM_ROLLBACK)"
    if approval_url:
        return poll_approval_url(approval_url, timeout, verify, revision)
    if interactive and not os.environ.get("CI"):
        answer = prompt_on_terminal(question, timeout)
        if answer is not None:
            return answer
    return (
        False,
        "no confirmation given: pass --smoke-confirm-rollback, set SMOKE_CONFIRM_ROLLBACK=1 or configure approval_url",
    )
