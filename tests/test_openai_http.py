"""OpenAI-compatible servers over plain HTTP: a whole `agent run` against one imports no litellm,
needs no key, and a refused connection or an unknown model is one line naming the cause."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from httpkit import MODEL, ModelServer
from pytest_httpserver import HTTPServer

PROBE = ("import sys, atexit\n"
         "atexit.register(lambda: print('LITELLM_IMPORTED=%s' % ('litellm' in sys.modules), file=sys.stderr))\n"
         "from agentcli.cli.app import main\n"
         "sys.argv = ['agent', *sys.argv[1:]]\n"
         "main()\n")

PLAN = {"steps": {"s1": {"call": {"tool": "list_files", "args": {"pattern": "*.md"}}, "depends_on": [],
                         "title": "list the markdown files"}}}
VERDICT = {"outcome": "complete", "answer": "notes.md", "reason": ""}


def agent(ws: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AGENT_", "OPENAI_"))}
    return subprocess.run([sys.executable, "-c", PROBE, *args], cwd=ws, env={**base, **env}, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    d = tmp_path / "ws"
    d.mkdir()
    (d / "notes.md").write_text("# notes\n")
    return d


@pytest.mark.parametrize("transport", ["auto", "litellm"])
def test_a_run_on_a_keyless_server_completes_and_auto_imports_no_litellm(
        ws: Path, httpserver: HTTPServer, transport: str) -> None:
    server = ModelServer(httpserver).add(PLAN, VERDICT)
    env = {**server.env(AGENT_PLANNER__SURVEY_CALLS="0", AGENT_LLM__TRANSPORT=transport),
           "AGENT_ALLOW_MODEL_REQUESTS": "1"}
    if transport == "litellm":
        env["OPENAI_API_KEY"] = "sk-test-0000"  # litellm's OpenAI client refuses to send without one
    r = agent(ws, env, "run", "--yes", "--json", "list the markdown files")
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["status"] == "COMPLETE"
    assert f"LITELLM_IMPORTED={transport == 'litellm'}" in r.stderr
    assert len(server.bodies) == 2 and server.bodies[0]["model"] == MODEL.split("/", 1)[1]
    if transport == "auto":
        assert server.headers[0]["Authorization"] == "Bearer sk-no-key-required"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_refused_connection_is_one_line_naming_host_and_port_and_not_retried(ws: Path) -> None:
    port = _free_port()
    env = {"AGENT_MODEL": MODEL, "AGENT_API_BASE": f"http://127.0.0.1:{port}/v1", "AGENT_MEMORY__ENABLED": "false",
           "AGENT_ALLOW_MODEL_REQUESTS": "1", "AGENT_LLM__BACKOFF_BASE_SECONDS": "0"}
    r = agent(ws, env, "ask", "hello")
    assert r.returncode != 0
    err = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and f"127.0.0.1:{port}" in err[0] and "connection refused" in err[0]
    assert "attempts" not in err[0] and "Traceback" not in r.stderr


def test_an_unknown_model_is_one_line_naming_it(ws: Path, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/chat/completions", method="POST").respond_with_json(
        {"error": {"message": "model 'qwen-typo' not found"}}, status=404)
    env = {"AGENT_MODEL": "openai/qwen-typo", "AGENT_API_BASE": httpserver.url_for("/v1"),
           "AGENT_MEMORY__ENABLED": "false", "AGENT_ALLOW_MODEL_REQUESTS": "1",
           "AGENT_BUDGET__ALLOW_UNKNOWN_PRICE": "true"}
    r = agent(ws, env, "ask", "hello")
    assert r.returncode != 0
    err = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "qwen-typo" in err[0] and "404" in err[0] and "not found" in err[0]
    assert len(httpserver.log) == 1  # not retried


def test_the_price_map_is_kept_in_the_user_cache_and_a_broken_copy_is_rebuilt(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agentcli.models import openai_http

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    openai_http._model_map.cache_clear()
    try:
        first = openai_http.model_info("openai/gpt-4o-mini")
        [kept] = (tmp_path / "agentcli" / "price-map").iterdir()
        # Only what model_info can return: bare names and openai/ ones, not the other providers'.
        table = openai_http._model_map()
        assert first["input_cost_per_token"] > 0 and all("/" not in k or k.startswith("openai/") for k in table)
        openai_http._model_map.cache_clear()
        assert openai_http.model_info("openai/gpt-4o-mini") == first  # read back from the kept copy
        kept.write_bytes(b"not marshal")
        openai_http._model_map.cache_clear()
        assert openai_http.model_info("openai/gpt-4o-mini") == first and kept.read_bytes() != b"not marshal"
    finally:
        openai_http._model_map.cache_clear()
