"""Health checks behind `agent doctor`: each returns ok or a reason, none prints."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from agentcli.config import Config, Settings
from agentcli.errors import AgentError


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    #: Works, but the user should know (shown as ``warn``; the doctor still exits 0).
    warn: bool = False


def _timed(name: str, fn: Callable[[], str]) -> Check:
    t0 = time.perf_counter()
    try:
        detail = fn()
    except AgentError as e:
        return Check(name, False, e.one_line())
    except Exception as e:  # a check must report, never crash the doctor
        return Check(name, False, f"{type(e).__name__}: {' '.join(str(e).split())[:300]}")
    ms = (time.perf_counter() - t0) * 1000
    return Check(name, True, f"{detail} ({ms:.0f} ms)")


def check_data_dir(settings: Settings) -> str:
    d = settings.ensure_data_dir()
    with tempfile.NamedTemporaryFile(dir=d, prefix=".doctor-", delete=True) as f:
        f.write(b"ok")
        f.flush()
        os.fsync(f.fileno())
    return f"{d} is writable"


def check_model(config: Config, model: str) -> Check:
    """``model`` as a run would call it: reachable (the server at ``api_base`` accepts connections),
    known and keyed (without one), loadable (a local model); a warning, never ``ok``, when its
    price is unknown."""
    from agentcli.models.client import LLMClient
    from agentcli.models.preflight import model_readiness
    from agentcli.models.routing import backend_kind

    name = f"model {model}"
    t0 = time.perf_counter()
    client = LLMClient(config)
    try:
        warning = model_readiness(client, model)
        kind = backend_kind(model)
        if kind == "fake":
            detail = f"{model} is an in-package fake"
        elif kind == "local":
            from agentcli.models.local import loader as local_loader

            path = local_loader.resolve_model_path(model)
            local_loader.load(model)
            detail = f"{model} loads from {path.name} ({client.profile(model).planner_style} planner)"
        elif config.api_base and client.profile(model).uses_api_base:
            from agentcli.models.litellm import endpoint

            detail = f"{model} via {endpoint(config.api_base)}, which accepts connections"
        else:
            detail = f"{model}: known to litellm, credentials present"
    except AgentError as e:
        return Check(name, False, e.one_line())
    except Exception as e:  # a check must report, never crash the doctor
        return Check(name, False, f"{type(e).__name__}: {' '.join(str(e).split())[:300]}")
    ms = (time.perf_counter() - t0) * 1000
    if warning:
        return Check(name, True, f"{detail}; {warning}", warn=True)
    return Check(name, True, f"{detail} ({ms:.0f} ms)")


def check_tokenizer() -> str:
    from agentcli.models import tokens

    n = tokens.count_text("def hello(): return 'world'", "gpt-4o-mini")
    m = tokens.count_text("def hello(): return 'world'", "")
    return f"o200k_base and cl100k_base load offline ({n}/{m} tokens)"


def check_memory(settings: Settings) -> str:
    """The memory store opens (and, on object storage, answers) with the configured credentials."""
    from agentcli.memory import open_memory

    return open_memory(settings).check_connection()


def check_sandbox(settings: Settings) -> str:
    """Which OS sandbox commands run in; a failure when the mode needs one and none works."""
    from agentcli.tools.sandbox import Sandbox, SandboxUnavailable, protections, sandbox_status

    cfg = settings.config.sandbox
    if cfg.mode == "off":
        return "off (sandbox.mode = off): commands run unconfined"
    try:
        sb = Sandbox.from_config(cfg, settings.workspace, settings.data_dir)
    except SandboxUnavailable as exc:
        raise RuntimeError(f"{exc}; run_shell and MCP servers are refused") from None
    return f"{sb.describe()} ({sandbox_status().backend}; {'; '.join(protections(cfg))})"


def check_secrets(settings: Settings, environ: Mapping[str, str] | None = None) -> Check:
    """Whether every secret from a secret source is long enough to be masked by value (a warning
    names those that are not: they still work, but would show in records and prompts)."""
    from agentcli.config import short_secrets
    from agentcli.redact import MIN_SECRET_LEN, secret_values

    short = short_secrets(settings, environ)
    if short:
        return Check("secrets", True, f"{', '.join(short)}: shorter than {MIN_SECRET_LEN} characters, so not "
                     "masked in records, prompts or output; use a longer secret", warn=True)
    return Check("secrets", True, f"{len(secret_values(environ))} secret values masked by value, "
                 "credential formats by pattern")


def run_checks(load: Callable[[], Settings], default_workspace: Path,
               environ: Mapping[str, str] | None = None) -> list[Check]:
    """All checks, in order. A broken config is reported and the rest run on defaults."""
    return list(iter_checks(load, default_workspace, environ))


def iter_checks(load: Callable[[], Settings], default_workspace: Path,
                environ: Mapping[str, str] | None = None) -> Iterator[Check]:
    """:func:`run_checks` one at a time, each as it is done (a model that loads or a server that
    is slow to answer is shown as what is being checked, not as a silent wait)."""
    try:
        settings = load()
        files = ", ".join(str(f) for f in settings.files) or "defaults only"
        yield Check("config", True, f"valid ({files})")
    except AgentError as e:
        yield Check("config", False, e.one_line())
        settings = Settings(config=Config(), workspace=default_workspace.resolve())
    # A workspace that is not there is never made by a check (its data dir, its memory).
    missing = None if settings.workspace.is_dir() else (
        f"not checked: the workspace {settings.workspace} is not a directory")
    if missing:
        yield Check("data dir", False, missing)
    else:
        yield _timed("data dir", lambda: check_data_dir(settings))
    yield _timed("sandbox", lambda: check_sandbox(settings))
    cfg = settings.config
    models = dict.fromkeys([cfg.model, cfg.model_for("planner"), cfg.model_for("executor"),
                            cfg.model_for("reviewer")])
    for model in models:
        yield check_model(cfg, model)
    yield check_secrets(settings, environ)
    yield _timed("tokenizer", check_tokenizer)
    yield Check("memory", False, missing) if missing else _timed("memory", lambda: check_memory(settings))
