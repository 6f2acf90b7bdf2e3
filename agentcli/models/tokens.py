"""Token counting that works with no network.

tiktoken downloads its encoding files on first use, which fails offline. litellm
ships the common ones (cl100k_base, o200k_base, p50k_base) under
``litellm/litellm_core_utils/tokenizers/``, named the way tiktoken's cache names
them, so pointing ``TIKTOKEN_CACHE_DIR`` there makes ``tiktoken.get_encoding``
work offline. We find that folder without importing litellm (3 s).
"""

from __future__ import annotations

import importlib.util
import json
import marshal
import os
import threading
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

# Per-message framing overhead used by OpenAI's own counting recipe.
_TOKENS_PER_MESSAGE = 4


def litellm_tokenizer_dir() -> Path | None:
    """The folder of encoding files bundled with litellm, if litellm is installed."""
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        d = Path(loc) / "litellm_core_utils" / "tokenizers"
        if d.is_dir():
            return d
    return None


def _ensure_offline_cache() -> None:
    if os.environ.get("TIKTOKEN_CACHE_DIR"):
        return
    d = litellm_tokenizer_dir()
    if d is not None:
        os.environ["TIKTOKEN_CACHE_DIR"] = str(d)


def encoding_name_for(model: str) -> str:
    """o200k for the GPT-4o/4.1/o-series family, cl100k for everything else (a good estimate)."""
    m = model.split("/")[-1].lower()
    if m.startswith(("gpt-4o", "gpt-4.1", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")):
        return "o200k_base"
    return "cl100k_base"


def cache_file(kind: str, name: str) -> Path:
    """A file of agentcli's own in the user's cache dir (``$XDG_CACHE_HOME/agentcli``, else
    ``~/.cache/agentcli``): ``<kind>/<name>.marshal``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "agentcli" / kind / f"{name}.marshal"


def read_cached(path: Path) -> Any:
    """What :func:`write_cached` kept at ``path``; None when there is none or it is unreadable."""
    try:
        return marshal.loads(path.read_bytes())
    except (OSError, ValueError, EOFError, TypeError):
        return None


def write_cached(path: Path, value: Any) -> None:
    """Keep ``value`` (plain data) at ``path`` for later processes; nothing on a read-only home."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(marshal.dumps(value))
        os.replace(tmp, path)  # atomic: a concurrent reader sees the old file or the whole new one
    except (OSError, ValueError):
        pass  # a read-only home: every process parses the original


@lru_cache(maxsize=4)
def _encoding(name: str) -> Any:
    """tiktoken's encoding ``name``. Its first load parses a 200k-line base64 file (~0.35 s CPU for
    o200k); the parsed ranks are kept in the user's cache dir as a marshal file, which loads in
    ~0.05 s, so every later process builds the same encoding from them."""
    _ensure_offline_cache()
    import tiktoken

    cache = cache_file("tiktoken", f"{name}-{tiktoken.__version__}")
    kept = read_cached(cache)
    if isinstance(kept, tuple) and len(kept) == 3:
        pat_str, ranks, special = kept
        del kept  # the ranks' only reference is passed on, and dropped once the encoder is built
        try:
            return _lean(tiktoken.Encoding(name, pat_str=pat_str, mergeable_ranks=ranks, special_tokens=special))
        except (ValueError, TypeError):
            pass  # unreadable: parse the original and rewrite it
    enc = tiktoken.get_encoding(name)
    write_cached(cache, (enc._pat_str, enc._mergeable_ranks, enc._special_tokens))
    return enc


def _lean(enc: Any) -> Any:
    """``enc`` without its Python copy of the ranks: the Rust encoder it built holds its own, and
    encoding, decoding and counting use only that. The copy is ~25 MiB for o200k (200k bytes keys
    and int values), a fifth of a hosted run's memory; only pickling an encoding would need it."""
    enc._mergeable_ranks = {}
    return enc


def count_text(text: str, model: str = "") -> int:
    """Tokens in a piece of text for ``model`` (an estimate for non-OpenAI models)."""
    return len(_encoding(encoding_name_for(model)).encode(text, disallowed_special=()))


def encode(text: str, model: str = "") -> list[int]:
    """The token ids of ``text`` for ``model`` (the encoding :func:`count_text` counts with)."""
    return list(_encoding(encoding_name_for(model)).encode(text, disallowed_special=()))


def cut_text(text: str, max_tokens: int, model: str = "") -> tuple[str, bool]:
    """The first ``max_tokens`` tokens of ``text``, and whether anything was cut: what a provider
    sends back when the output limit stops an answer (``finish_reason: length``)."""
    enc = _encoding(encoding_name_for(model))
    ids = enc.encode(text, disallowed_special=())
    if len(ids) <= max_tokens:
        return text, False
    return enc.decode(ids[:max_tokens]), True


#: Texts at least this long have their count kept (the last few): a request's messages are counted
#: for the budget's estimate and again for usage when a backend does not report it (a fake, a local
#: model), and a long one (a reviewer's digest of 1,000 steps) takes milliseconds each time.
_KEEP_COUNT_CHARS = 2048
_KEPT_COUNTS = 8
_counts: dict[tuple[str, str], int] = {}
_counts_lock = threading.Lock()


def _count(enc: Any, name: str, text: str) -> int:
    """Tokens in ``text`` by ``enc`` (named ``name``), a long text's count kept for the next ask."""
    if len(text) < _KEEP_COUNT_CHARS:
        return len(enc.encode(text, disallowed_special=()))
    key = (name, text)
    n = _counts.get(key)
    if n is None:
        n = len(enc.encode(text, disallowed_special=()))
        with _counts_lock:  # requests are counted in worker threads too
            if len(_counts) >= _KEPT_COUNTS:
                del _counts[next(iter(_counts))]  # the oldest
            _counts[key] = n
    return n


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "") if isinstance(part, Mapping) else str(part) for part in content
        )
    return json.dumps(content, default=str)


def count_messages(
    messages: Iterable[Mapping[str, Any]],
    model: str = "",
    *,
    tools: list[dict[str, Any]] | None = None,
    extra: str = "",
) -> int:
    """Estimate the input tokens of a chat request before it is sent."""
    name = encoding_name_for(model)
    enc = _encoding(name)
    total = 3  # every reply is primed with <|start|>assistant<|message|>
    for msg in messages:
        total += _TOKENS_PER_MESSAGE
        total += _count(enc, name, _content_text(msg.get("content")))
        if msg.get("tool_calls"):
            total += len(enc.encode(json.dumps(msg["tool_calls"], default=str), disallowed_special=()))
    if tools:
        total += len(enc.encode(json.dumps(tools), disallowed_special=()))
    if extra:
        total += len(enc.encode(extra, disallowed_special=()))
    return total
