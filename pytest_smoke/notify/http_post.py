"""How every HTTP channel sends: one JSON POST over the checks' own exchange, so a channel's
answer is read as a check's is, within one total deadline and up to 1 MiB after decompression
(a bomb or an endless answer from a webhook never fills the memory), and a redirect to another
origin is never followed with the report and its credentials (``X-Api-Key``, a routing key in
the body). Proxies from the environment apply: channels are usually on the internet.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..checks.base import CheckFailed, CheckNotEvaluated, Deadline
from ..checks.http import Reply, SmokeSession, exchange

TIMEOUT_SECONDS = 10.0


class ChannelError(RuntimeError):
    """A channel could not be told: the message says why, in the service's own words where it gave them."""


def post_json(url: str, body: Any, headers: Mapping[str, str], what: str, timeout: float = TIMEOUT_SECONDS) -> Reply:
    """POST ``body`` as JSON and read the answer (whatever its status); a network failure, a
    timeout or a cross-origin redirect raises :class:`ChannelError`."""
    session = SmokeSession()
    try:
        return exchange(session, "POST", url, Deadline(timeout), headers=dict(headers), payload=body, label=what)
    except (CheckFailed, CheckNotEvaluated) as exc:
        raise ChannelError(exc.reason) from None
    finally:
        session.close()
