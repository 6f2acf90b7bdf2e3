"""Test isolation: no real model requests, no user config, no AGENT_* leaking in."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Subprocesses inherit this; in-process code reads it through routing.requests_allowed().
os.environ["AGENT_ALLOW_MODEL_REQUESTS"] = "0"
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

from agentcli.models import routing

routing.ALLOW_MODEL_REQUESTS = False


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("AGENT_") and name != "AGENT_ALLOW_MODEL_REQUESTS":
            monkeypatch.delenv(name)
    xdg = tmp_path_factory.mktemp("xdg")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    yield


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty workspace root, made the current directory."""
    ws = tmp_path / "ws"
    ws.mkdir()
    monkeypatch.chdir(ws)
    return ws


@pytest.fixture
def allow_model_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opt in to real model requests (loopback servers, the local model)."""
    monkeypatch.setenv("AGENT_ALLOW_MODEL_REQUESTS", "1")
