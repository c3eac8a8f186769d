"""Keep secrets out of every byte the plugin writes.

A :class:`Redactor` knows the secret values of one run (everything interpolated from the
environment, plus values saved under secret-looking names) and masks them, their URL-encoded
forms, URL passwords and ``password=`` pairs. Every output path passes text through it.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Iterable
from urllib.parse import quote, quote_plus

MASK = "***"

SECRET_NAME = re.compile(
    r"(?:^|[-_. ])pass(?:$|[-_. ])|passw(?:or)?d|passphrase|pwd|secret|token|authori[sz]ation|cookie"
    r"|api[-_ ]?key|credential|private[-_]?key|session|signature",
    re.IGNORECASE,
)
_URL_PASSWORD = re.compile(r"(?P<prefix>[a-z][a-z0-9+.-]*://[^\s:/@]*:)(?P<password>[^\s@/]+)(?=@)", re.IGNORECASE)
# Values, not words: "password=x" and '"password": "x"' are masked, "change-password: timed out" is not.
_KV_PASSWORD = re.compile(
    r"(?P<key>(?<![-/\w])[\"']?(?:password|passwd|pwd)[\"']?\s*[=:]\s*)(?P<value>'[^']*'|\"[^\"]*\"|[^\s&;,\"']+)",
    re.IGNORECASE,
)
# A credential after an auth scheme has a digit or a symbol; "token returned" is two words.
_BEARER = re.compile(r"(?P<scheme>\b(?:Bearer|Basic|Token)\s+)(?P<value>(?=[A-Za-z]*[0-9._~+/=-])[A-Za-z0-9._~+/=-]{8,})")
# Query parameters named like credentials: ?token=..., &sig=..., &api_key=..., &code=...
_QUERY_SECRET = re.compile(
    r"(?P<key>[?&;][^=&\s#]*(?:token|key|sig|signature|password|secret|code)[^=&\s#]*=)(?P<value>[^&\s#\"']+)",
    re.IGNORECASE,
)
MIN_SECRET_LENGTH = 4


def _url_parts(text: str) -> set[str]:
    """A secret URL (a Slack webhook, a signed approval link) also leaks as its path or query
    alone, as in urllib3's debug line 'POST /services/T000/B111/XXXX': those are secrets too."""
    if "://" not in text:
        return set()
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(text)
    except ValueError:
        return set()
    found = {parts.path, parts.query, f"{parts.path}?{parts.query}" if parts.query else ""}
    return {part for part in found if len(part.strip("/")) >= 8}


def _mask_kv(match: re.Match[str]) -> str:
    value = match["value"]
    quote_char = value[0] if value[:1] in ("'", '"') else ""
    return match["key"] + quote_char + MASK + quote_char


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


class Redactor:
    """Masks known secret values and secret-shaped substrings. Thread-safe to extend."""

    def __init__(self, secrets: Iterable[str] = ()):
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self.add(*secrets)

    def add(self, *values: Any) -> None:
        with self._lock:
            for value in values:
                if value is None:
                    continue
                text = str(value)
                if len(text) < MIN_SECRET_LENGTH:
                    continue
                self._secrets.update({text, quote(text, safe=""), quote_plus(text)})
                self._secrets.update(_url_parts(text))

    def text(self, value: Any) -> str:
        text = "" if value is None else str(value)
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        text = _URL_PASSWORD.sub(lambda m: m["prefix"] + MASK, text)
        text = _KV_PASSWORD.sub(_mask_kv, text)
        text = _QUERY_SECRET.sub(lambda m: m["key"] + MASK, text)
        return _BEARER.sub(lambda m: m["scheme"] + MASK, text)

    def excerpt(self, text: str, limit: int) -> str:
        """Redact, then cut to ``limit``; a known secret cut in two is masked at the cut as well."""
        text = self.text(text)
        if len(text) <= limit:
            return text
        cut = text[: limit - 3]
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
            for size in range(len(secret) - 1, MIN_SECRET_LENGTH - 1, -1):
                if cut.endswith(secret[:size]):
                    cut = cut[: len(cut) - size] + MASK
                    break
        return cut + "..."

    def value(self, value: Any, name: str = "") -> Any:
        """Redact a JSON-like value; anything under a secret-looking key is masked whole."""
        if name and is_secret_name(name) and value not in (None, "", [], {}):
            return MASK
        if isinstance(value, dict):
            return {k: self.value(v, str(k)) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(v) for v in value]
        if isinstance(value, str):
            return self.text(value)
        return value


# Loggers of the clients the plugin drives: at DEBUG, urllib3 logs every request line (query
# strings included) and kubernetes every response body.
CLIENT_LOGGERS = (
    "urllib3.connectionpool",
    "urllib3.util.retry",
    "urllib3.poolmanager",
    "requests",
    "kubernetes.client.rest",
    "pika",
    "redis",
    "psycopg",
)


class RedactingFilter:
    """A logging filter that passes every record of the client loggers through a Redactor."""

    def __init__(self, redactor: Redactor):
        self.redactor = redactor

    def filter(self, record: Any) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not format: leave it to logging
            return True
        record.msg, record.args = self.redactor.text(message), None
        return True

    def install(self) -> None:
        import logging

        for name in CLIENT_LOGGERS:
            logging.getLogger(name).addFilter(self)

    def uninstall(self) -> None:
        import logging

        for name in CLIENT_LOGGERS:
            logging.getLogger(name).removeFilter(self)
