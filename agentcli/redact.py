"""Keeping secrets out of everything we write and show.

Secrets are recognised by rule, not by a list of names, and masked by value:

* a *secret source* is any environment variable whose name looks like a credential (KEY, TOKEN,
  SECRET, PASSWORD, AUTH, HEADERS, ...: provider keys and ``OTEL_EXPORTER_OTLP_HEADERS`` included),
  and anything registered with :func:`register_secret` (every configured telemetry header, a
  secret-looking MCP server variable: config loading registers them);
* every value from a secret source (a header list also split into its values) is replaced by
  ``[REDACTED]`` wherever it appears in a string: events, call logs, plans, memory, crash
  reports, the task text before it is stored, and the screen;
* keys that name a credential (``api_key``, ``authorization``, ...) are dropped from records;
* a credential that came from no known source (pasted into the task, printed by a tool, in a file
  or a model's answer) is recognised by its format (:data:`TOKEN_PATTERNS`: provider keys, cloud
  and chat tokens, JWTs, private keys, ``Authorization`` values, passwords in URLs) and masked the
  same way. The patterns are precise on purpose (a prefix and a length, a label, or both): they
  must not touch ordinary code, which the tests check on agentcli's own source.

What is sent to a model is masked too (:meth:`Redactor.strings`, used by the LLM client), so a
tool's output holding a secret reaches the model as ``[REDACTED]``; a file write that would put
the mask back into a file is refused (:func:`introduces_mask`).

Child processes never see secrets at all: their environment is built from an allow-list
(:func:`agentcli.tools.shell.child_env`).
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

REDACTED = "[REDACTED]"
SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|COOKIE|SESSION|HEADERS)", re.IGNORECASE)
_SECRET_FIELD = re.compile(r"^(api[_-]?key|authorization|x-api-key|password|secret|token|access[_-]?token)$", re.I)
#: Secret values shorter than this are not masked by value: "abc" or "admin" occur in ordinary
#: text, and masking them everywhere would corrupt output, records and prompts. Their sources are
#: named instead (:func:`short_secret_sources`), by `agent doctor` and by a warning at the start
#: of `agent run`, `agent plan` and `agent tools call`.
MIN_SECRET_LEN = 8
# A variable named like this holds a credential when it is set (its value is worth a warning when
# too short); the wider SECRET_NAME also catches XDG_SESSION_ID and the like, which are masked
# when long but not worth a warning.
_CREDENTIAL_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSW|CREDENTIAL|HEADERS)", re.IGNORECASE)
# Short values that are settings, not secrets (HF_HUB_DISABLE_TOKEN=1).
_FLAG_VALUES = frozenset({"0", "1", "true", "false", "yes", "no", "on", "off", "none"})

# Token formats, each precise enough not to match ordinary code: a documented prefix plus a length
# and alphabet, or a label right before the value. Each starts with a literal or one character
# class (so the regex engine scans for it rather than trying every position) and is tried only on
# text holding one of its triggers; the look-behind after the prefix keeps it from matching inside
# a longer word. Where a pattern has a group, only the group
# is masked (the label or the scheme stays readable: ``Authorization: Bearer [REDACTED]``).


@dataclass(frozen=True)
class TokenPattern:
    """One credential format: its name, the substrings a match must hold, the regex."""

    name: str
    triggers: tuple[str, ...]
    regex: re.Pattern[str]
    #: A substring every match holds besides a trigger (or ""): searched first.
    gate: str = ""


def _p(name: str, triggers: tuple[str, ...], rx: str, flags: int = 0, gate: str = "") -> TokenPattern:
    return TokenPattern(name, triggers, re.compile(rx, flags), gate)


_WORD = "[A-Za-z0-9_-]"
# Text embedded in JSON (a tool's output inside a prompt, a request in a record) has its newlines
# and tabs as two characters, ``\n``: a token at the start of a line then follows an ``n``, a word
# character. A prefix is a token's start when the character before it is not a word character, or
# when it ends such an escape (``\n``, ``\r``, ``\t``, ``\u2028``). Text is masked before it is
# embedded anywhere (:func:`agentcli.tools.registry.ToolRegistry.call` masks every tool result);
# this keeps the patterns right on escaped text too, as defence in depth.


def _starts(prefix: str, before: str = _WORD) -> str:
    """``prefix`` (a literal or a class, one character), where a token may start: not right after
    a ``before`` character, unless that character ends a JSON escape."""
    return rf"{prefix}(?:(?<!{before}{prefix})|(?<=\\[nrtfb]{prefix})|(?<=\\u[0-9A-Fa-f]{{4}}{prefix}))"


TOKEN_PATTERNS: tuple[TokenPattern, ...] = (
    # OpenAI (sk-, sk-proj-, sk-svcacct-) and Anthropic (sk-ant-api03-...): at least one digit, so a
    # long kebab-case word after "sk-" is not a key.
    _p("openai/anthropic key", ("sk-",), _starts("s") + rf"k-(?={_WORD}*[0-9]){_WORD}{{20,}}"),
    _p("github token", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
       _starts("g") + r"(?:h[pousr]_[A-Za-z0-9]{36,}|ithub_pat_[A-Za-z0-9_]{22,})"),
    _p("aws access key id", ("AKIA", "ASIA"), _starts("A", "[A-Z0-9]") + r"(?:KIA|SIA)[A-Z0-9]{16}(?![A-Za-z0-9])"),
    # The secret access key has no prefix: only when it is labelled (env, ini, the AWS CLI's JSON).
    _p("aws secret access key", ("ecret_access_key", "ECRET_ACCESS_KEY", "ecretAccessKey"),
       r"(?:[Ss]ecret_access_key|SECRET_ACCESS_KEY|[Ss]ecretAccessKey)(?:\\?[\"'])?\s*[:=]\s*(?:\\?[\"'])?"
       r"([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])"),
    _p("slack token", ("xox",), _starts("x") + r"ox[abprs]-[A-Za-z0-9-]{10,}"),
    _p("google api key", ("AIza",), _starts("A") + r"Iza[0-9A-Za-z_-]{35}"),
    _p("stripe key", ("_live_", "_test_"), _starts("[sr]") + r"k_(?:live|test)_[0-9A-Za-z]{16,}"),
    _p("jwt", ("eyJ",), _starts("e") + r"yJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),
    # A whole private key block; a block cut short (a truncated output) is masked to its end (or,
    # in JSON text, to the end of its string).
    _p("private key", ("PRIVATE KEY",),
       r"-----BEGIN[A-Z0-9 ]{0,40} PRIVATE KEY(?: BLOCK)?-----.*?"
       r"(?:-----END[A-Z0-9 ]{0,40} PRIVATE KEY(?: BLOCK)?-----|(?=(?<!\\)\")|\Z)", re.S),
    # An Authorization header's credentials, whatever the scheme; a bare bearer token only when it
    # is long and has a digit ("Bearer tokens are ..." is prose). ``$TOKEN`` and ``{token}`` are
    # not values: the class has no ``$``, ``{`` or ``<``.
    _p("authorization header", ("uthorization", "UTHORIZATION"),
       r"[Aa](?i:uthorization(?:\\?[\"'])?\s*[:=]\s*(?:\\?[\"'])?(?:bearer|basic|token|bot)\s+)([A-Za-z0-9._~+/-]{8,}=*)"),
    _p("bearer token", ("earer", "EARER"),
       _starts("[Bb]", "[A-Za-z0-9_]") + r"(?i:earer\s+)((?=[A-Za-z0-9._~+/-]*[0-9])[A-Za-z0-9._~+/-]{20,}=*)"),
    # A value assigned to a variable named like a credential at the start of a line (``.env``
    # files, shell exports): ``NAME=value`` with no space around ``=``, 8+ characters up to the
    # end of the word. A reference or a call is not a value (no ``$``, braces or brackets).
    _p("credential assignment", ("KEY", "TOKEN", "SECRET", "PASSW", "CREDENTIAL"),
       r"(?:^|(?<=\\[nrt])|(?<=\"))(?:export[ \t]+)?[A-Z][A-Z0-9_]*(?:KEY|TOKEN|SECRET|PASSW(?:OR)?D|CREDENTIALS?)"
       r"[A-Z0-9_]*=(?:\\?[\"'])?([^\s\"'`$\\{}<>()\[\];,]{8,})(?=(?:\\?[\"'])?(?:[ \t\"]|$|\\[nrt]))", re.M, gate="="),
    # user:password@ in a URL: the password only. Placeholders of documentation are not passwords.
    _p("url password", ("://",),
       r"://[^\s/:@{}$<>\"'`]+:(?!(?:password|passwd|pass|pwd|token|secret|x+|\*+)@)([^\s/@{}$<>\"'`]+)@",
       gate="@"),
)

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


def too_short(value: str) -> bool:
    """Whether ``value`` (or, for a header list, one of its values) is a secret too short to mask."""
    parts = _parts(value)
    return any(0 < len(v) < MIN_SECRET_LEN and v.lower() not in _FLAG_VALUES for v in parts[1:] or parts[:1])


def register_secret(value: str | None) -> None:
    """Mask ``value`` (and, for a header list, each of its values) wherever agentcli writes or
    shows text from now on. Values shorter than :data:`MIN_SECRET_LEN` are not masked (they would
    mask ordinary words): :func:`short_secret_sources` names them."""
    global _generation
    if not value:
        return
    new = {v for v in _parts(value) if len(v) >= MIN_SECRET_LEN} - _registered
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


def short_secret_sources(environ: Mapping[str, str] | None = None,
                         configured: Mapping[str, str] | None = None) -> list[str]:
    """The sources of secrets too short to mask, sorted: variables of ``os.environ`` (and of
    ``environ``) named like a credential, and the keys of ``configured`` (config key: value).
    Names only, never values."""
    envs = [os.environ] if environ is None or environ is os.environ else [os.environ, environ]
    names = {k for env in envs for k, v in env.items() if _CREDENTIAL_NAME.search(k) and too_short(v)}
    names |= {k for k, v in (configured or {}).items() if too_short(v)}
    return sorted(names)


def generation() -> int:
    return _generation


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Every value to mask: secret-looking variables of ``environ`` (default ``os.environ``) and
    everything registered, longest first (a secret that contains another is replaced whole)."""
    env = os.environ if environ is None else environ
    vals = {p for k, v in env.items() if is_secret_name(k) for p in _parts(v) if len(p) >= MIN_SECRET_LEN}
    vals |= _registered
    return sorted(vals, key=len, reverse=True)


def scrubbed_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of the environment without secret-looking variables."""
    env = os.environ if environ is None else environ
    return {k: v for k, v in env.items() if not is_secret_name(k)}


class Redactor:
    """Removes credentials from nested JSON-like data. Snapshot of the secrets at creation."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        values = secret_values(environ)
        # A value as it appears inside JSON text too (a quote or a backslash in it escaped), when
        # that differs: text embedded in a request or a record is masked either way.
        escaped = {e for v in values if (e := json.dumps(v, ensure_ascii=False)[1:-1]) != v}
        self._values = sorted({*values, *escaped}, key=len, reverse=True)

    def text(self, s: str) -> str:
        for v in self._values:
            if v in s:
                s = s.replace(v, REDACTED)
        return mask_tokens(s) if might_hold_token(s) else s

    def strings(self, data: Any) -> Any:
        """``data`` with every string masked and every key kept (what is sent to a model: the
        shape of a message must not change)."""
        if isinstance(data, str):
            return self.text(data)
        if isinstance(data, Mapping):
            return {k: self.strings(v) for k, v in data.items()}
        if isinstance(data, list | tuple):
            return [self.strings(v) for v in data]
        return data

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


_current: tuple[int, dict[Any, Any], Redactor] | None = None


def current() -> Redactor:
    """A redactor of the secrets as they are now (``os.environ`` and everything registered), shared:
    building one scans the whole environment with a regex per variable (~80-250 µs), which a
    per-call ``Redactor()`` paid on every tool call. It is rebuilt when a secret is registered or
    the environment changed since (a copy of the raw environment compared as one dict: ~1 µs)."""
    global _current
    raw: Mapping[Any, Any] = getattr(os.environ, "_data", os.environ)
    cached = _current
    if cached is not None and cached[0] == _generation and cached[1] == raw:
        return cached[2]
    gen, snapshot = _generation, dict(raw)
    redactor = Redactor()
    _current = (gen, snapshot, redactor)
    return redactor


def _applies(p: TokenPattern, s: str) -> bool:
    return (not p.gate or p.gate in s) and any(t in s for t in p.triggers)


# Characters rare in code and prose, rarest first. A one-character search is a memchr, ten times
# faster than a search for a longer string, so each trigger is looked for only where its rarest
# character is.
_RARE = "@ZQJXVKzqjYWIxU_-"


def _rarest(trigger: str) -> str:
    return next((c for c in _RARE if c in trigger), trigger)


def _checks() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The triggers grouped by the one character searched first (a pattern's gate, else the
    trigger's rarest character; "" for a trigger with none)."""
    groups: dict[str, list[str]] = {}
    for p in TOKEN_PATTERNS:
        for t in p.triggers:
            first = p.gate or _rarest(t)
            groups.setdefault("" if first == t else first, []).append(t)
    return tuple((g, tuple(ts)) for g, ts in groups.items())


_CHECKS = _checks()


def might_hold_token(s: str) -> bool:
    """False when ``s`` cannot hold a token :data:`TOKEN_PATTERNS` recognises: substring
    searches only, most of them for one character, so most text is never searched by a regex.
    On the event log's fast path (every event's strings)."""
    for first, triggers in _CHECKS:
        if first in s:
            for t in triggers:
                if t in s:
                    return True
    return False


def _mask_match(m: re.Match[str]) -> str:
    # The pattern's group (a value after its label) if it has one, else the whole match.
    if m.re.groups:
        start, end = m.span(1)
        whole = m.group(0)
        return whole[: start - m.start()] + REDACTED + whole[end - m.start():]
    return REDACTED


def mask_tokens(s: str) -> str:
    """``s`` with every credential :data:`TOKEN_PATTERNS` recognises replaced by ``[REDACTED]``."""
    if not might_hold_token(s):  # most text: a few substring searches, and no pattern tried
        return s
    for p in TOKEN_PATTERNS:
        if _applies(p, s):
            s = p.regex.sub(_mask_match, s)
    return s


def find_tokens(s: str) -> list[str]:
    """The names of the token formats found in ``s`` (for tests and diagnostics)."""
    return [p.name for p in TOKEN_PATTERNS if _applies(p, s) and p.regex.search(s)]


def introduces_mask(new: str, old: str = "") -> bool:
    """Whether ``new`` holds more ``[REDACTED]`` marks than ``old``: a write that would put a
    masked secret's placeholder into a file (the model only ever saw the mask)."""
    return REDACTED in new and new.count(REDACTED) > old.count(REDACTED)


def redact_text(s: str) -> str:
    """``s`` with every known secret value masked (the task text before it is stored)."""
    return Redactor().text(s)
