"""Keep secrets out of every byte the plugin writes.

A :class:`Redactor` knows the secret values of one run (everything interpolated from the
environment, plus values saved under secret-looking names) and masks them, their URL-encoded
forms, URL passwords and ``password=`` pairs. Every output path passes text through it.
"""

from __future__ import annotations

import base64
import functools
import html
import json
import logging
import re
import threading
from typing import Any, Iterable
from urllib.parse import quote, quote_plus, urlsplit

MASK = "***"

SECRET_NAME = re.compile(
    r"(?:^|[-_. ])pass(?:$|[-_. ])|passw(?:or)?d|passphrase|pwd|secret|token|authori[sz]ation|cookie"
    r"|api[-_ ]?key|routing[-_ ]?key|credential|private[-_]?key|session|signature|csrf|xsrf",
    re.IGNORECASE,
)
# The scheme is bounded and must start a word, so a long run of letters costs linear time, not quadratic.
# The password runs to the last "@" of the authority: an unencoded "@" in it ("Pa55@W0rd") is common.
_URL_PASSWORD = re.compile(
    r"(?P<prefix>(?<![a-z0-9+.-])[a-z][a-z0-9+.-]{0,31}://[^\s:/@]*:)(?P<password>[^\s/?#]+)(?=@)", re.IGNORECASE
)
# Values, not words: "password=x", '"password": "x"' and a "password: x" line are masked;
# "change-password: timed out" and "reset password: connection refused" are prose, not pairs.
_KV_PASSWORD = re.compile(
    r"(?P<key>(?:(?<![-/\w])(?:password|passwd|pwd)\s*=\s*"
    r"|[\"'](?:password|passwd|pwd)[\"']\s*[=:]\s*"
    r"|(?:^|(?<=[{(\[,;\n]))\s*(?:password|passwd|pwd)\s*:\s*))"
    r"(?P<value>'[^'\n]+'|\"[^\"\n]+\"|[^\s&;,\"'()\[\]{}<>]+)",
    re.IGNORECASE | re.MULTILINE,
)
# A credential after an auth scheme has a digit or a symbol; "token returned" is two words.
_BEARER = re.compile(
    r"(?P<scheme>\b(?:Bearer|Basic|Token)\s+)(?P<value>(?=[A-Za-z]*[0-9._~+/=-])[A-Za-z0-9._~+/=-]{8,})"
)
# Query parameters named like credentials: ?token=..., &sig=..., &api_key=..., &code=...,
# &X-Amz-Credential=... Judged by whole name parts, so "keyword", "country_code" and
# "postcode" stay readable.
_QUERY_PAIR = re.compile(r"(?P<key>[?&;](?P<name>[^=&\s#?;]+)=)(?P<value>[^&\s#\"'()<>\[\]]+)")
_SECRET_QUERY_PART = re.compile(
    r"(?:\w*token|\w*secret|api_?key|key|sig|signature|password|passwd|pwd|jwt|auth|session|sessionid|sid"
    r"|credentials?|private_?key|access_?key)",
    re.IGNORECASE,
)
_WHOLE_NAME_ONLY = frozenset({"code", "state_token"})
MIN_SECRET_LENGTH = 4
MIN_PIECE_LENGTH = 6  # a shorter piece of a split password is a common word ("user", "admin")
# A short secret ("prod", a 4-digit PIN) is masked as a whole word only, not inside "production".
SHORT_SECRET_LENGTH = 8
# What text cut off by a producer ends with: a secret's prefix before it is masked too.
_CUT_MARKS = ("...", "\u2026")
MAX_CUTS = 64
# Redactor.text remembers short texts it has redacted (names, URLs, reasons recur across outputs).
MEMO_TEXT_LENGTH = 512
MEMO_SIZE = 4096


def _url_parts(text: str) -> set[str]:
    """A secret URL (a Slack webhook, a signed approval link) also leaks as its path or query
    alone, as in urllib3's debug line 'POST /services/T000/B111/XXXX': those are secrets too."""
    if "://" not in text:
        return set()
    try:
        parts = urlsplit(text)
    except ValueError:
        return set()
    found = {parts.path, parts.query, f"{parts.path}?{parts.query}" if parts.query else ""}
    return {part for part in found if len(part.strip("/")) >= 8}


@functools.lru_cache(maxsize=1024)  # the same few names come back in every URL of a run
def is_secret_query_name(name: str) -> bool:
    """``token``, ``X-Amz-Credential``, ``sessionId``, ``api_key``, ``code``; not ``keyword``."""
    if name.lower() in _WHOLE_NAME_ONLY:
        return True
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    parts = [part for part in re.split(r"[-_.\[\]]+", spaced) if part]
    joined = {"_".join(parts[i : i + 2]) for i in range(len(parts))}
    return any(_SECRET_QUERY_PART.fullmatch(part) for part in [*parts, *joined, name])


def _mask_query(match: re.Match[str]) -> str:
    return match["key"] + MASK if is_secret_query_name(match["name"]) else match[0]


# How many times a service may have escaped a secret it echoes (JSON inside JSON inside a log line).
ESCAPE_DEPTH = 3


def encoded_forms(text: str) -> set[str]:
    """The forms a secret takes in the places output comes from: URL encoding (either case),
    a JSON string (escaped up to ESCAPE_DEPTH times), a Python repr, a shell-quoted word, base64
    (as in a Basic header), hex and upper or lower case (as services echo a key they reject)."""
    forms = {text, text.upper(), text.lower(), quote(text, safe=""), quote_plus(text)}
    forms |= {re.sub(r"%[0-9A-F]{2}", lambda m: m[0].lower(), form) for form in list(forms)}
    for ascii_only in (True, False):
        escaped = text
        for _ in range(ESCAPE_DEPTH):
            escaped = json.dumps(escaped, ensure_ascii=ascii_only)[1:-1]
            forms.add(escaped)
    forms.add(repr(text)[1:-1])
    raw = text.encode("utf-8", "surrogatepass")
    forms |= {raw.hex(), raw.hex().upper()}
    forms |= {html.escape(text), html.escape(text, quote=False)}  # an HTML error page echoing a header
    forms.add(text.replace("'", "'\"'\"'"))
    forms |= _base64_forms(text)
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


def escaped_pattern(text: str) -> str | None:
    """A pattern for a secret holding a quote, a backslash or a slash as it reads after any number
    of JSON escapings (a service echoing the request inside a JSON string inside a JSON string):
    each such character may follow any run of backslashes."""
    if not any(ch in text for ch in '"\\/'):
        return None
    return "".join(r"\\*" + re.escape(ch) if ch in '"\\/' else re.escape(ch) for ch in text)


def password_pieces(password: str) -> set[str]:
    """Where a client library splits a URL's password at an "@" or a ":" (libpq reads
    ``app:Pa55@W0rd@host`` as host ``W0rd@host``), each piece leaks alone: the pieces long enough
    to mean something are secrets too. Only for passwords: an e-mail's domain is an address."""
    return {piece for piece in re.split(r"[@:]", password) if len(piece) >= MIN_PIECE_LENGTH and piece != password}


def escape_controls(text: str) -> str:
    """Escape every control character (ESC, CR, BEL, NUL, the Unicode line separators) except the
    newline and the tab, so multi-line text (a traceback, captured output) prints as text and can
    never move the cursor, erase a line or forge one on a terminal or in a CI log."""
    return _CONTROLS.sub(lambda m: repr(m[0])[1:-1] if m[0] not in "\u2028\u2029" else f"\\u{ord(m[0]):04x}", text)


# C0 and C1 controls but newline and tab, DEL, and the invisible ones that reorder or hide text.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")


def _base64_forms(text: str) -> set[str]:
    """Base64 of the secret at each of the three alignments it can have inside a longer value
    ("user:secret"): only the characters that depend on the secret alone."""
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) < 6:
        return set()
    forms = set()
    for offset, skip in ((0, 0), (1, 2), (2, 3)):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(b"\0" * offset + raw).decode("ascii").rstrip("=")
            stable = encoded[skip : len(encoded) - (len(encoded) % 4 and 2 or 0)]
            if len(stable) >= 8:
                forms.add(stable)
    return forms


def shorten(text: str, limit: int) -> str:
    """One line of at most ``limit`` characters; a cut ends in "..." so the redactor can mask a
    secret's prefix left at the cut (see :meth:`Redactor.text`)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _mask_kv(match: re.Match[str]) -> str:
    value = match["value"]
    quote_char = value[0] if value[:1] in ("'", '"') else ""
    return match["key"] + quote_char + MASK + quote_char


def _leaves(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, dict):
        return [text for item in value.values() for text in _leaves(item)]
    if isinstance(value, (list, tuple, set)):
        return [text for item in value for text in _leaves(item)]
    return [str(value)]


def _mask_at_cuts(text: str, secrets: list[str]) -> str:
    """Text cut by a producer ("...Bearer eyJhbGciOi...") keeps a secret's prefix: mask it.
    Bounded work: at most MAX_CUTS marks are examined, without copying the text for each."""
    examined = 0
    for mark in _CUT_MARKS:
        start = 0
        while examined < MAX_CUTS and (at := text.find(mark, start)) != -1:
            examined += 1
            for secret in secrets:
                size = next(
                    (
                        n
                        for n in range(min(len(secret) - 1, at), MIN_SECRET_LENGTH - 1, -1)
                        if text.endswith(secret[:n], 0, at)
                    ),
                    0,
                )
                if size:
                    text = text[: at - size] + MASK + text[at:]
                    at = at - size + len(MASK)
                    break
            # ... and the secret's tail after the mark ("Bearer ***...BBBBTAILSIGNATURE'"): mask it too.
            after = at + len(mark)
            for secret in secrets:
                size = next(
                    (
                        n
                        for n in range(min(len(secret) - 1, len(text) - after), MIN_SECRET_LENGTH - 1, -1)
                        if text.startswith(secret[-n:], after)
                    ),
                    0,
                )
                if size:
                    text = text[:after] + MASK + text[after + size :]
                    break
            start = after
    return text


# Adjacent string literals on consecutive lines, as pprint splits a long string at its spaces
# (pytest's -l locals, assertion diffs): 'correct horse battery ' / 'staple'.
_LITERAL = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"")
_SPLIT_LITERALS = re.compile(r"(?:'[^'\n]*'|\"[^\"\n]*\")(?:[ \t]*\n[ \t]*(?:'[^'\n]*'|\"[^\"\n]*\"))+")
MAX_SPLIT_GROUPS = 256


def _mask_split_literals(text: str, secrets: list[str]) -> str:
    """A secret with spaces that pprint split over several quoted lines is masked whole."""
    spaced = [secret for secret in secrets if " " in secret]
    groups = 0

    def join(match: re.Match[str]) -> str:
        nonlocal groups
        groups += 1
        if groups > MAX_SPLIT_GROUPS:
            return match[0]
        joined = "".join(piece[1:-1] for piece in _LITERAL.findall(match[0]))
        return f"'{MASK}'" if any(secret in joined for secret in spaced) else match[0]

    return _SPLIT_LITERALS.sub(join, text)


@functools.lru_cache(maxsize=1024)  # the same few keys, once per check of a large report
def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


# A line of pytest's assertion diff, as the long representation holds it: "E         - text".
_DIFF_LINE = re.compile(r"^(E?\s*[-+?] )(.*)$")
MAX_EDGE_LINES = 2000


class Redactor:
    """Masks known secret values and secret-shaped substrings. Thread-safe to extend."""

    def __init__(self, secrets: Iterable[str] = ()):
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._escaped: set[str] = set()  # patterns of secrets with characters JSON escapes, at any depth
        # (pattern of every known secret or None, secrets longest first); None: to be built again.
        self._state: tuple[re.Pattern[str] | None, list[str]] | None = None
        self._memo: dict[str, str] = {}  # text -> redacted, forgotten whenever a secret is learned
        self.add(*secrets)

    def add(self, *values: Any) -> None:
        """Learn secrets; a dict or list (a saved JSON object) adds every value inside it."""
        with self._lock:
            for value in values:
                for text in _leaves(value):
                    if len(text) < MIN_SECRET_LENGTH:
                        continue
                    self._secrets.update(encoded_forms(text))
                    self._secrets.update(_url_parts(text))
                    escaped = escaped_pattern(text)
                    if escaped:
                        self._escaped.add(escaped)
                    self._state = None
                    self._memo = {}

    def _compiled(self) -> tuple[re.Pattern[str] | None, list[str]]:
        state = self._state  # built once per set of secrets; read without the lock
        if state is not None:
            return state
        with self._lock:
            if self._state is None:
                secrets = sorted(self._secrets, key=len, reverse=True)
                alternatives = [
                    re.escape(secret)
                    if len(secret) >= SHORT_SECRET_LENGTH
                    else rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])"
                    for secret in secrets
                ]
                alternatives = sorted(self._escaped, key=len, reverse=True) + alternatives
                self._state = (re.compile("|".join(alternatives)) if alternatives else None, secrets)
            return self._state

    def text(self, value: Any) -> str:
        text = "" if value is None else str(value)
        # Taken before the secrets are read: a result that a secret learned meanwhile makes stale
        # goes into a memo that add() has already replaced.
        memo = self._memo
        known = memo.get(text)
        if known is not None:
            return known
        redacted = self._redact(text)
        if len(text) <= MEMO_TEXT_LENGTH:
            if len(memo) >= MEMO_SIZE:
                memo.clear()
            memo[text] = redacted
        return redacted

    def _redact(self, text: str) -> str:
        # A lone surrogate (JSON "\ud800" from a service) cannot be written to any file or channel.
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
        pattern, secrets = self._compiled()
        if pattern is not None:
            text = pattern.sub(MASK, text)
            if any(mark in text for mark in _CUT_MARKS):
                text = _mask_at_cuts(text, secrets)
            if "\n" in text and any(" " in secret for secret in secrets):
                text = _mask_split_literals(text, secrets)
        folded = text.casefold()  # as the patterns' IGNORECASE: "paſſword" has "pass" in it
        # Each pattern runs only where its anchor appears: most text has none of them.
        if "@" in text and "://" in text:
            text = _URL_PASSWORD.sub(lambda m: m["prefix"] + MASK, text)
        if "pass" in folded or "pwd" in folded:
            text = _KV_PASSWORD.sub(_mask_kv, text)
        if "=" in text:
            text = _QUERY_PAIR.sub(_mask_query, text)
        if "bearer" in folded or "basic" in folded or "token" in folded:
            text = _BEARER.sub(lambda m: m["scheme"] + MASK, text)
        return text

    def excerpt(self, text: str, limit: int) -> str:
        """Redact, then cut to ``limit``; a known secret cut in two is masked at the cut as well.
        Only a window a little longer than ``limit`` is redacted: a 1 MiB body costs no more."""
        _, secrets = self._compiled()
        window = limit + max((len(secret) for secret in secrets), default=0) + 64
        text = self.text(text[:window] + ("..." if len(text) > window else ""))
        if len(text) <= limit:
            return text
        return self.text(text[: limit - 3] + "...")

    def mask_line_edges(self, text: str) -> str:
        """pytest's assertion diff ("Skipping 75 identical leading characters in diff") starts and
        ends lines inside a value, with no cut mark: a known secret's tail at the start of a diff
        line, or its head at the end of one, is masked."""
        _, secrets = self._compiled()
        if not secrets:
            return text
        lines = text.split("\n")
        for index, line in enumerate(lines[:MAX_EDGE_LINES]):
            match = _DIFF_LINE.match(line)
            if not match:
                continue
            marker, body = match.group(1), match.group(2)
            for secret in secrets:
                tail = next(
                    (
                        n
                        for n in range(min(len(secret) - 1, len(body)), MIN_SECRET_LENGTH - 1, -1)
                        if body.startswith(secret[-n:])
                    ),
                    0,
                )
                if tail:
                    body = MASK + body[tail:]
                head = next(
                    (
                        n
                        for n in range(min(len(secret) - 1, len(body)), MIN_SECRET_LENGTH - 1, -1)
                        if body.endswith(secret[:n])
                    ),
                    0,
                )
                if head:
                    body = body[: len(body) - head] + MASK
            lines[index] = marker + body
        return "\n".join(lines)

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


class RedactingLogRecords:
    """While a run lasts, every log record's message passes the Redactor when it is created:
    urllib3's request lines (query strings included), the kubernetes client's response bodies and
    a developer's own logger alike, whichever handler (log-cli, caplog, a file) shows it."""

    def __init__(self, redactor: Redactor):
        self.redactor = redactor
        self._previous: Any = None

    def install(self) -> None:
        self._previous = previous = logging.getLogRecordFactory()

        def make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            try:
                message = record.getMessage()
            except (
                Exception
            ):  # arguments that do not format: said here, redacted (logging's own report prints them raw)
                message = f"{record.msg} [arguments that do not format: {record.args!r}]"
            record.msg, record.args = escape_controls(self.redactor.text(message)), None
            return record

        self._factory = make_record
        logging.setLogRecordFactory(make_record)

    def uninstall(self) -> None:
        if self._previous is not None and logging.getLogRecordFactory() is self._factory:
            logging.setLogRecordFactory(self._previous)
        self._previous = None
