"""Keeping secrets out of everything we write.

Two rules, applied to every record before it is written (LLM-call logs, run
events, tool environments):

* keys that name a credential (``api_key``, ``authorization``, ...) are dropped;
* any value of a secret-looking environment variable (a name containing KEY,
  TOKEN, SECRET, PASSWORD, ...) is replaced wherever it appears in a string.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[REDACTED]"
SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|COOKIE|SESSION)", re.IGNORECASE)
_SECRET_FIELD = re.compile(r"^(api[_-]?key|authorization|x-api-key|password|secret|token|access[_-]?token)$", re.I)
# Values shorter than this are too likely to occur by chance (e.g. "1", "true").
_MIN_SECRET_LEN = 8


def is_secret_name(name: str) -> bool:
    """True for environment variable names that usually hold credentials."""
    return bool(SECRET_NAME.search(name))


def is_secret_field(key: str) -> bool:
    """True for record keys that name a credential (``api_key``, ``authorization`` ...)."""
    return _SECRET_FIELD.match(key) is not None


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    env = os.environ if environ is None else environ
    vals = {v for k, v in env.items() if is_secret_name(k) and len(v) >= _MIN_SECRET_LEN}
    # Longest first, so a secret that contains another is replaced whole.
    return sorted(vals, key=len, reverse=True)


def scrubbed_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of the environment without secret-looking variables (for child processes)."""
    env = os.environ if environ is None else environ
    return {k: v for k, v in env.items() if not is_secret_name(k)}


class Redactor:
    """Removes credentials from nested JSON-like data. Snapshot of the environment at creation."""

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
