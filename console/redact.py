"""Secrets never reach logs, the journal or reports: passwords in URLs and bearer tokens are masked."""

from __future__ import annotations

import re

_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@]+@")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")
_QUERY_SECRET = re.compile(r"(?i)([?&](?:token|access_token|password|secret|api_key)=)[^&\s]+")


def redact(text: str) -> str:
    text = _URL_USERINFO.sub(r"\g<scheme>***@", text)
    text = _BEARER.sub(r"\1***", text)
    return _QUERY_SECRET.sub(r"\1***", text)
