"""Where a dependency lives, without its credentials: ``postgres://db.internal:5432/orders``.

A fleet counts a dependency that fails in several targets once (the same database behind three
clusters is one outage, not three deploys to roll back): the address is how targets recognise it.
Never a user name, a password or a query string; reports show it like any other fact.
"""

from __future__ import annotations

import re
from typing import Any, Mapping
from urllib.parse import urlsplit

# Where each type reads its address when the entry names none, as its check does.
FROM_ENVIRONMENT = {"postgres": "DATABASE_URL", "redis": "REDIS_URL", "amqp": "AMQP_URL"}
DEFAULT_PORTS = {"postgres": 5432, "postgresql": 5432, "redis": 6379, "rediss": 6379, "amqp": 5672, "amqps": 5671}
_KEYWORD = re.compile(r"(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)")


def dependency_address(spec: Mapping[str, Any], environ: Mapping[str, str]) -> str:
    """The dependency's scheme, host, port and database (or vhost, or path), or "" when unknown."""
    kind = str(spec.get("type") or "")
    if kind in ("tcp", "grpc"):
        return f"{kind}://{spec.get('host')}:{spec.get('port')}" if spec.get("host") else ""
    written = spec.get("dsn") or spec.get("url") or environ.get(FROM_ENVIRONMENT.get(kind, ""), "")
    if not written and kind == "postgres":  # libpq's PG* variables
        written = " ".join(f"{key}={environ[name]}" for key, name in _PG_VARIABLES if environ.get(name))
    text = str(written or "")
    if "://" in text:
        return _from_url(text)
    if kind == "postgres" and "=" in text:
        params = {key: value.strip("'") for key, value in _KEYWORD.findall(text)}
        host = params.get("host") or params.get("hostaddr") or "localhost"
        return f"postgres://{host}:{params.get('port') or 5432}/{params.get('dbname', '')}"
    return ""


_PG_VARIABLES = (("host", "PGHOST"), ("port", "PGPORT"), ("dbname", "PGDATABASE"))


def _from_url(text: str) -> str:
    try:
        parts = urlsplit(text)
        port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return ""
    scheme = "postgres" if parts.scheme == "postgresql" else parts.scheme
    # The database, the vhost or the Redis db; never an HTTP path, which may carry a token.
    path = "" if scheme in ("http", "https") else parts.path
    return f"{scheme}://{parts.hostname or ''}{f':{port}' if port else ''}{path}"
