"""Ops confirmation for a rollback: pre-approval, an approval URL, or a prompt on a terminal.

Order: ``--smoke-confirm-rollback`` / ``SMOKE_CONFIRM_ROLLBACK=1`` (approved in the pipeline),
then the ``approval_url`` gate (polled until it answers 200 with a body that is not HTML, like
Flagger's confirm-rollout webhook; 403 or 410 is an explicit no; a redirect is never followed and
means "not approved"), then an interactive prompt when a terminal is attached
(default no). Every wait is bounded by ``confirmation_timeout_seconds``.
"""

from __future__ import annotations

import os
import select
import time
from typing import Any, Mapping

from ...checks.base import CheckTimeout

APPROVAL_POLL_SECONDS = 1.0
TRUTHY = {"1", "true", "yes", "y"}


def preapproved(flag: bool, environ: Mapping[str, str]) -> bool:
    return flag or environ.get("SMOKE_CONFIRM_ROLLBACK", "").strip().lower() in TRUTHY


def poll_approval_url(url: str, timeout: float, verify: bool | str = True) -> tuple[bool, str]:
    import requests

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
                        "only a 200 from the URL itself approves"
                    )
                if status == 200 and ("html" in content_type.lower() or head.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html"))):
                    return False, "not approved: the approval URL answered an HTML page (a login page?), not an approval"
                if status == 200:
                    return True, "approved through the approval URL"
                if status in (403, 410):
                    return False, f"denied through the approval URL ({status})"
                last = f"HTTP {status}"
            time.sleep(min(APPROVAL_POLL_SECONDS, max(end - time.monotonic(), 0)))


def _ask(session: Any, url: str, seconds: float, verify: bool | str) -> tuple[int, str, bytes]:
    """One poll within one total deadline (a server that trickles its body cannot hold the run).
    Never follows a redirect: an SSO or oauth2-proxy login page answers 200 too."""
    from ...checks.base import Deadline, run_with_deadline

    def get() -> tuple[int, str, bytes]:
        with session.get(url, timeout=seconds, verify=verify, allow_redirects=False, stream=True) as response:
            head = response.raw.read(512, decode_content=True) or b""
            return response.status_code, response.headers.get("Content-Type", ""), head

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
) -> tuple[bool, str]:
    if preapproved(flag, environ):
        return True, "pre-approved (--smoke-confirm-rollback / SMOKE_CONFIRM_ROLLBACK)"
    if approval_url:
        return poll_approval_url(approval_url, timeout, verify)
    if interactive and not os.environ.get("CI"):
        answer = prompt_on_terminal(question, timeout)
        if answer is not None:
            return answer
    return False, "no confirmation given: pass --smoke-confirm-rollback, set SMOKE_CONFIRM_ROLLBACK=1 or configure approval_url"
