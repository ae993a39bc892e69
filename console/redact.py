"""Secrets never reach logs, the journal or reports: credentials in URLs, bearer tokens, known secrets."""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import unquote, urlsplit, urlunsplit

_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")
_QUERY_SECRET = re.compile(r"(?i)([?&](?:token|access_token|password|secret|api_key)=)[^&\s]+")


def strip_userinfo(text: str) -> str:
    """Any URL in `text` without its user:password@ part."""
    return _URL_USERINFO.sub(r"\1", text)


def redact(text: str, secrets: Sequence[str] = ()) -> str:
    """`text` safe to show: URL credentials stripped, bearer tokens, secret query values and known secrets masked."""
    text = _QUERY_SECRET.sub(r"\1***", _BEARER.sub(r"\1***", strip_userinfo(text)))
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None]:
    """The URL without credentials, and the user and password it carried (for basic auth)."""
    parts = urlsplit(url)
    if parts.username is None:
        return url, None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return clean, (unquote(parts.username), unquote(parts.password or ""))
