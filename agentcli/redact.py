"""Keeping secrets out of everything we write and show.

Secrets are recognised by rule, not by a list of names, and masked by value:

* a *secret source* is any environment variable whose name looks like a credential (KEY, TOKEN,
  SECRET, PASSWORD, AUTH, HEADERS, ...: provider keys and ``OTEL_EXPORTER_OTLP_HEADERS`` included),
  and anything registered with :func:`register_secret` (every configured telemetry header, a
  secret-looking MCP server variable: config loading registers them);
* every value from a secret source (a header list also split into its values) is replaced by
  ``[REDACTED]`` wherever it appears in a string: events, call logs, plans, memory, crash
  reports, the task text before it is stored, and the screen;
* keys that name a credential (``api_key``, ``authorization``, ...) are dropped from records.

Child processes never see secrets at all: their environment is built from an allow-list
(:func:`agentcli.tools.shell.child_env`).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

REDACTED = "[REDACTED]"
SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|COOKIE|SESSION|HEADERS)", re.IGNORECASE)
_SECRET_FIELD = re.compile(r"^(api[_-]?key|authorization|x-api-key|password|secret|token|access[_-]?token)$", re.I)
# Values shorter than this are too likely to occur by chance (e.g. "1", "true").
_MIN_SECRET_LEN = 8

_registered: set[str] = set()
_lock = threading.Lock()
#: Bumped by every registration, so a long-lived redactor (the screen's) knows to refresh.
_generation = 0


def is_secret_name(name: str) -> bool:
    """True for environment variable names that usually hold credentials (or header lists)."""
    return bool(SECRET_NAME.search(name))


def is_secret_field(key: str) -> bool:
    """True for record keys that name a credential (``api_key``, ``authorization`` ...)."""
    return _SECRET_FIELD.match(key) is not None


def _parts(value: str) -> list[str]:
    """The value itself and, for a header list (``k1=v1,k2=v2``, as OTLP takes it), each value."""
    out = [value]
    if "=" in value:
        for item in value.split(","):
            _, sep, v = item.partition("=")
            if sep:
                out += [v.strip(), unquote(v.strip())]
    return out


def register_secret(value: str | None) -> None:
    """Mask ``value`` (and, for a header list, each of its values) wherever agentcli writes or
    shows text from now on. Short values are ignored: they would mask ordinary words."""
    global _generation
    if not value:
        return
    new = {v for v in _parts(value) if len(v) >= _MIN_SECRET_LEN} - _registered
    if new:
        with _lock:
            _registered.update(new)
            _generation += 1


def register_environ(environ: Mapping[str, str]) -> None:
    """Register the values of every secret-looking variable of ``environ`` (one that is not
    ``os.environ``, such as a test's or a child's, is otherwise unknown to the redactor)."""
    for k, v in environ.items():
        if is_secret_name(k):
            register_secret(v)


def generation() -> int:
    return _generation


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Every value to mask: secret-looking variables of ``environ`` (default ``os.environ``) and
    everything registered, longest first (a secret that contains another is replaced whole)."""
    env = os.environ if environ is None else environ
    vals = {p for k, v in env.items() if is_secret_name(k) for p in _parts(v) if len(p) >= _MIN_SECRET_LEN}
    vals |= _registered
    return sorted(vals, key=len, reverse=True)


def scrubbed_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of the environment without secret-looking variables."""
    env = os.environ if environ is None else environ
    return {k: v for k, v in env.items() if not is_secret_name(k)}


class Redactor:
    """Removes credentials from nested JSON-like data. Snapshot of the secrets at creation."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._values = secret_values(environ)

    def text(self, s: str) -> str:
        for v in self._values:
            if v in s:
                s = s.replace(v, REDACTED)
        return s

    def __call__(self, data: Any) -> Any:
        if isinstance(data, str):
            return self.text(data)
        if isinstance(data, Mapping):
            return {
                k: (REDACTED if isinstance(k, str) and is_secret_field(k) else self(v))
                for k, v in data.items()
            }
        if isinstance(data, list | tuple):
            return [self(v) for v in data]
        return data


def redact_text(s: str) -> str:
    """``s`` with every known secret value masked (the task text before it is stored)."""
    return Redactor().text(s)
